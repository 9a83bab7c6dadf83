// pagedkv/model/llama_model.h - the reference Llama / Qwen2 forward pass over one ragged batch,
// reading and writing its keys and values through pagedkv's paged KV cache (rules 47-55).
//
// Example (one step; the engine builds the batch with model_io's ModelInputBuilder):
//   pagedkv::ModelWeights weights = pagedkv::ModelWeights::load("tiny");
//   pagedkv::LlamaModel model(weights, pagedkv::MatmulMode::kDeterministic);
//   pagedkv::PagedKVCache cache(model.kv_cache_metadata(/*num_pages=*/256, /*page_size=*/16,
//                                                      pagedkv::DType::kFloat32));
//   pagedkv::ForwardBatch batch{token_ids, positions, attention, slot_mapping, logits_indices};
//   std::vector<float> logits(logits_indices.size() * model.config().vocab_size);
//   model.forward(batch, cache, logits);      // logits [R, vocab]
//
// One forward pass (rule 55), every row of the batch independently except in attention:
//   x = embed_tokens[token_ids]
//   per layer: n = input_layernorm(x); q, k, v = projections of n (+ bias with attention_bias);
//              RoPE on q and k at `positions` (rule 53); k and v written to the layer's cache at
//              slot_mapping - all the layer's writes before its attention (rule 42); then
//              x += o_proj(paged_attention(q)) and x += down(silu(gate(n')) * up(n')) with
//              n' = post_attention_layernorm(x);
//   logits = lm_head(norm(x)) at logits_indices only (rule 48), float32.
//
// Contract
//   token_ids      [T] int32 | in [0, vocab_size)
//   positions      [T] int32 | >= 0; token i of request b sits at position
//                  seq_lens[b] - q_len_b + i (paged_attention's contract)
//   attention      qsl [B + 1], seq_lens [B], page table (paged_attention.h)
//   slot_mapping   [T] int64 | the cache slot of each token (negative: padding, not written)
//   logits_indices [R] int32 | rows of the batch whose logits are returned, each in [0, T)
//   logits         [R, vocab_size] float32, every element written
//   The cache's layers, kv heads and head_dim equal the model's (InvalidArgument otherwise).
//
// Invariants
//   - kDeterministic: every kernel reduces each output element in a fixed order that depends
//     neither on the batch nor on the thread count, so a request's logits are bitwise the same
//     alone, batched, chunked, resumed or served from cached pages (rule 49).
//   - Scratch buffers grow to the largest batch seen and are reused: no allocation per step
//     once warm.
// Not thread-safe (one model runner drives it); the weights must outlive the model.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/common/dtype.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"
#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"
#include "pagedkv/model/linear.h"
#include "pagedkv/model/model_config.h"
#include "pagedkv/model/model_weights.h"
#include "pagedkv/model/rope.h"

namespace pagedkv {

// The inputs of one forward pass (non-owning).
struct ForwardBatch {
  std::span<const int32_t> token_ids;       // [T]
  std::span<const int32_t> positions;       // [T]
  AttentionBatch attention;                 // qsl [B + 1], seq_lens [B], pages
  std::span<const int64_t> slot_mapping;    // [T]
  std::span<const int32_t> logits_indices;  // [R]
};

class LlamaModel {
 public:
  LlamaModel(const ModelWeights& weights, MatmulMode mode);

  const ModelConfig& config() const { return config_; }
  MatmulMode matmul_mode() const { return mode_; }
  int32_t vocab_size() const { return config_.vocab_size; }

  // The cache shape this model needs (HND layout), for num_pages pages of page_size tokens.
  PagedKVCacheMetadata kv_cache_metadata(int64_t num_pages, int32_t page_size, DType dtype,
                                         int32_t max_model_len) const;
  // Bytes of K + V (+ scales) one page holds over all layers.
  int64_t kv_bytes_per_page(int32_t page_size, DType dtype) const;

  // Runs the batch; writes logits [R, vocab]. Throws InvalidArgument / OutOfRange (shapes, ids,
  // a cache of another shape) before any cache write.
  void forward(const ForwardBatch& batch, PagedKVCache& cache, std::span<float> logits);

 private:
  struct Layer {
    const LayerWeights* weights;
    Linear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  };
  void check(const ForwardBatch& batch, const PagedKVCache& cache, size_t logits_size) const;
  void grow_scratch(int32_t num_tokens, int32_t num_logits);
  void run_layer(const Layer& layer, int32_t index, const ForwardBatch& batch, PagedKVCache& cache);

  const ModelWeights* weights_;
  ModelConfig config_;
  MatmulMode mode_;
  int32_t q_width_ = 0;   // num_attention_heads * head_dim
  int32_t kv_width_ = 0;  // num_key_value_heads * head_dim
  RotaryEmbedding rope_;
  std::vector<Layer> layers_;
  Linear lm_head_;
  AttentionWorkspace attention_workspace_;
  // Scratch, [capacity rows] each.
  int32_t token_capacity_ = 0;
  int32_t logits_capacity_ = 0;
  std::vector<float> x_, normed_, q_, k_, v_, attn_, proj_, gate_, up_, last_;
};

}  // namespace pagedkv
