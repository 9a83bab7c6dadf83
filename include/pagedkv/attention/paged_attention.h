// pagedkv/attention/paged_attention.h - CPU attention of a ragged batch (prefill chunks and decodes
// mixed) over the paged KV cache, reading every layout and dtype of PagedKVView.
//
// Request b owns query tokens [query_start_loc[b], query_start_loc[b + 1]); its context is
// seq_lens[b] tokens long, already written to the cache, and its q_len new tokens are the LAST
// q_len positions of that context: token i of the request sits at position
// seq_lens[b] - q_len + i and attends, causally, to keys at positions <= its own (and, with a
// sliding window w, only to keys in (position - w, position]).
//
// Example (two decodes and one 3-token prefill chunk, Llama-style GQA 32/8, head_dim 128):
//   pagedkv::PagedKVView kv = cache.view(layer);                // page_size 16
//   std::vector<int32_t> qsl = {0, 1, 2, 5}, lens = {40, 7, 3};
//   std::vector<int32_t> table = {4, 9, 2,   5, 0, 0,   8, 0, 0};     // [3, 3]
//   pagedkv::AttentionBatch batch{qsl, lens, pagedkv::PageTableRef::dense(table, 3)};
//   pagedkv::AttentionOptions opt{.scale = 1.0f / std::sqrt(128.0f)};
//   pagedkv::paged_attention(kv, pagedkv::ConstTokenTensor::f32(q.data(), 5, 32, 128),
//                            batch, opt, out);                    // out [5, 32, 128]
//
// Contract
//   kv     a PagedKVView meeting its contract (kv_layout.h: kv.validate(), the same checks
//          every cache write makes), any layout and dtype
//   query  [num_tokens, num_q_heads, head_dim]   float32 or bfloat16 (a ConstTokenTensor:
//                                                rows = num_tokens, heads = num_q_heads)
//   out    [num_tokens, num_q_heads, head_dim]   float32 (every element written)
//   query_start_loc [B + 1] | 0 first, non-decreasing, last == num_tokens
//   seq_lens        [B]     | q_len_b <= seq_lens[b]
//   page table: dense [B, max_pages_per_seq] or CSR (indptr [B + 1], indices [indptr[B]]);
//     request b needs cdiv(seq_lens[b], page_size) entries; the ids it reads must be in
//     [0, num_pages) (pages wholly outside a sliding window are never read nor checked).
//   q head i reads kv head i / (num_q_heads / num_kv_heads) (GQA; MQA when num_kv_heads == 1).
//   head_dim % 16 == 0 and <= 1024.
//
// Invariants (what tests check)
//   - Batch invariance: a request's output is bitwise identical whatever else is in the batch
//     and whatever the OpenMP thread count (and, with options.shape_invariant, whatever its own
//     number of query tokens). Keys are processed in chunks of kAttentionKvChunk
//     positions aligned to absolute position 0; each chunk yields a partial softmax state and
//     states are merged in chunk order, whether one thread does a request or several threads
//     share its chunks. Results differ (within rounding) between ISA levels, never within one.
//   - Validation (typed errors of errors.h, naming value and limit) runs before anything is
//     written to `out`; kernels below it work on raw pointers and never allocate.
//   - SIMD level = pagedkv::active_isa() at call time (scalar, AVX2, AVX-512, AVX512-BF16: at
//     that last level, bf16 queries over a bf16 cache get decode scores from bf16 pair dot
//     products, whose products are exact).
//   - Work is split over OpenMP threads (omp_get_max_threads()) by (request, kv head, query
//     tile), and by KV chunk when there are too few tiles; no allocation once the workspace
//     has grown to the largest call.
//
// Accuracy: against a float64 reference on the dequantized cache values, max |error| is at
// float32 rounding level (tests assert <= 5e-6 for |out| <= 1) for every dtype. Against the
// unquantized data (K, V, Q ~ U(-1, 1), head_dim 128), quantization adds at most about
// float16 3e-4, bfloat16 3e-3, int8 6e-3, fp8_e4m3 3e-2 (attention_quantization_test.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "pagedkv/common/dtype.h"
#include "pagedkv/kv_cache/kv_layout.h"
#include "pagedkv/kv_cache/token_tensor.h"

namespace pagedkv {

// Keys per softmax chunk (positions [c * kAttentionKvChunk, (c + 1) * kAttentionKvChunk)).
inline constexpr int32_t kAttentionKvChunk = 256;

// Which cache pages each request reads: a dense table or FlashInfer's CSR (indptr/indices).
struct PageTableRef {
  std::span<const int32_t> page_ids;  // dense: [B, row_stride]; CSR: [indptr[B]]
  std::span<const int32_t> indptr;    // CSR: [B + 1]; empty for a dense table
  int32_t row_stride = 0;             // dense: max pages per request

  // table [num_seqs, max_pages_per_seq] row-major.
  static PageTableRef dense(std::span<const int32_t> table, int32_t max_pages_per_seq) {
    return {table, {}, max_pages_per_seq};
  }
  // Request b's pages are indices[indptr[b] .. indptr[b + 1]).
  static PageTableRef csr(std::span<const int32_t> indptr, std::span<const int32_t> indices) {
    return {indices, indptr, 0};
  }
  bool is_csr() const { return !indptr.empty(); }
};

// The ragged batch: where each request's queries start, how long its context is, its pages.
struct AttentionBatch {
  std::span<const int32_t> query_start_loc;  // [B + 1]
  std::span<const int32_t> seq_lens;         // [B]
  PageTableRef pages;
};

struct AttentionOptions {
  float scale = 0.0f;          // softmax scale, finite and > 0 (usually 1 / sqrt(head_dim))
  int32_t sliding_window = 0;  // > 0: keys in (pos - window, pos]; 0: full causal attention
  float soft_cap = 0.0f;       // > 0: logits become cap * tanh(logit / cap); 0: off
  // true: every request runs the row-dot kernel shape, whatever its number of query tokens, so
  // a query's output is bitwise the same whether its request computes 1, 7 or 500 tokens in the
  // call (prefill chunking, a decode after a cached prefix: rule 49). false (default): requests
  // with q_len * group >= 16 run the faster gemm shape, whose rounding differs.
  bool shape_invariant = false;
};

// Reusable scratch (per-thread tiles, work lists, split-KV partial states). Buffers grow on the
// first calls and are then reused, so steady-state calls do not allocate. Not thread-safe: one
// workspace per concurrent caller.
class AttentionWorkspace {
 public:
  AttentionWorkspace();
  ~AttentionWorkspace();
  AttentionWorkspace(const AttentionWorkspace&) = delete;
  AttentionWorkspace& operator=(const AttentionWorkspace&) = delete;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Attention of every query token of `batch`; writes out [num_tokens, num_q_heads, head_dim].
// Throws InvalidArgument (shapes, dtypes, options, seq_lens < q_len, too few page entries) or
// OutOfRange (a page id read outside [0, kv.num_pages)); `out` is untouched on error.
void paged_attention(const PagedKVView& kv, const ConstTokenTensor& query,
                     const AttentionBatch& batch, const AttentionOptions& options,
                     std::span<float> out, AttentionWorkspace& workspace);

// Same, with a workspace owned by the calling thread (allocated once per thread).
void paged_attention(const PagedKVView& kv, const ConstTokenTensor& query,
                     const AttentionBatch& batch, const AttentionOptions& options,
                     std::span<float> out);

}  // namespace pagedkv
