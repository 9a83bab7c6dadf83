#include "pagedkv/kv_cache/kv_cache_write.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <limits>

#include "kv_cache_write_kernels.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/slot_ranges.h"

namespace pagedkv {

namespace {

using kv_write_detail::WritePlan;

// Threads a write uses at most (the slot ranges live on the stack).
constexpr int kMaxWriteThreads = 64;

// Bytes (read + written) per thread below which a write stays on fewer threads. With the OpenMP
// workers spinning (as between the kernels of a forward pass) a fork costs a few hundred ns;
// Llama-3-8B / Qwen2-7B decodes (256-512 KiB) measured 0.7 -> 0.9-1.2 of a 2-thread memcpy on
// 2 threads, while 16-64 KiB writes measured slower on 2 threads than on one.
constexpr size_t kMinParallelBytes = size_t{64} << 10;

// kHND: the rows of one token sit at the same offset of their head planes, and the planes lie a
// multiple of 4 KiB apart, so a token's 2 * heads rows compete for the same L1 sets. Writing
// blocks of tokens head by head spreads them (WritePlan::block_tokens). Measured (1 thread,
// ratio to memcpy; bench/kv_write_bench.cpp):
//   - scattered slots (decodes), 4+ heads, blocks of 8: 0.55-0.75 -> 0.8-1.0 (Llama-3-8B,
//     Qwen2-7B; every dtype no slower); 2 heads: slower;
//   - runs of consecutive slots (prefills), copies (input dtype == cache dtype), pages of 64+
//     slots and tokens of at most 2 KiB, blocks of 16: 0.6-0.7 -> 0.7-0.85; with pages of 16,
//     4 KiB tokens (8 x 128 float32) or converting writes, token by token measured faster.
constexpr int64_t kDecodeBlock = 8;
constexpr int32_t kMinDecodeBlockHeads = 4;
constexpr int64_t kRunBlock = 16;
constexpr int32_t kMinRunBlockPage = 64;
constexpr size_t kMaxRunBlockTokenBytes = 2048;

// True when the slots mostly do not continue the previous token's slot (average run < 4).
bool scattered_slots(std::span<const int64_t> slots) {
  int64_t breaks = 0;
  for (size_t t = 1; t < slots.size(); ++t) breaks += slots[t] != slots[t - 1] + 1 ? 1 : 0;
  return 4 * breaks > static_cast<int64_t>(slots.size());
}

int64_t block_tokens(const PagedKVView& v, DType input, std::span<const int64_t> slots) {
  if (v.layout != KVLayout::kHND) return 0;
  if (scattered_slots(slots)) return v.num_kv_heads >= kMinDecodeBlockHeads ? kDecodeBlock : 0;
  const size_t token_bytes =
      static_cast<size_t>(v.num_kv_heads) * static_cast<size_t>(v.head_dim) * dtype_size(input);
  const bool copy = input == v.dtype;
  return copy && v.page_size >= kMinRunBlockPage && token_bytes <= kMaxRunBlockTokenBytes
             ? kRunBlock
             : 0;
}

WritePlan make_plan(const PagedKVView& v, const ConstTokenTensor& key,
                    const ConstTokenTensor& value, std::span<const int64_t> slots) {
  const KVStrides st = v.strides();
  const size_t es = dtype_size(v.dtype);
  WritePlan p;
  p.key = static_cast<const char*>(key.data);
  p.value = static_cast<const char*>(value.data);
  p.slots = slots.data();
  p.tokens = key.rows;
  p.k_base = static_cast<char*>(v.k_data);
  p.v_base = static_cast<char*>(v.v_base()) + static_cast<size_t>(st.v_offset) * es;
  p.k_scales = v.dtype == DType::kInt8 ? v.k_scales : nullptr;
  p.v_scales = v.dtype == DType::kInt8 ? v.v_scales : nullptr;
  p.slot_bytes = static_cast<size_t>(st.slot_stride) * es;
  p.head_bytes = static_cast<size_t>(st.head_stride) * es;
  p.scale_slot_stride = st.scale_slot_stride;
  p.scale_head_stride = st.scale_head_stride;
  p.in = key.dtype;
  p.out = v.dtype;
  p.heads = v.num_kv_heads;
  p.dim = v.head_dim;
  p.in_row_bytes = static_cast<size_t>(v.head_dim) * dtype_size(key.dtype);
  p.k_scale = v.k_scale;
  p.v_scale = v.v_scale;
  p.block_tokens = block_tokens(v, key.dtype, slots);
  return p;
}

kv_write_detail::WriteSlotsFn slots_fn(Isa isa) {
  static const kv_write_detail::WriteSlotsFn fns[] = {
      kv_write_detail::write_slots_for(Isa::kScalar), kv_write_detail::write_slots_for(Isa::kAvx2),
      kv_write_detail::write_slots_for(Isa::kAvx512),
      kv_write_detail::write_slots_for(Isa::kAvx512Bf16)};
  return fns[static_cast<int>(isa)];
}

int write_threads(const WritePlan& p, const PagedKVView& v) {
  const size_t bytes = static_cast<size_t>(p.tokens) * 2 * static_cast<size_t>(p.heads) *
                       (p.in_row_bytes + static_cast<size_t>(p.dim) * dtype_size(v.dtype));
  const auto by_bytes = static_cast<int64_t>(bytes / kMinParallelBytes);
  return static_cast<int>(
      std::clamp<int64_t>(std::min<int64_t>(omp_get_max_threads(), by_bytes), 1, kMaxWriteThreads));
}

// Slot ranges of about equal token counts, one per thread (see slot_ranges.h).
void split_slots(std::span<const int64_t> slots, int n, std::span<int64_t> bounds) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = -1;
  for (int64_t s : slots) {
    if (s < 0) continue;
    lo = std::min(lo, s);
    hi = std::max(hi, s);
  }
  // Runs of consecutive slots (a prefill's pages) go in whole: one integer division per run
  // instead of per token, which at 2048 tokens cost about as much as half the copy.
  SlotRanges ranges(std::min(lo, hi), hi);
  int64_t run_start = -1, run_len = 0;
  for (int64_t s : slots) {
    if (s < 0) continue;
    if (run_len > 0 && s == run_start + run_len) {
      ++run_len;
      continue;
    }
    if (run_len > 0) ranges.add_run(run_start, run_len);
    run_start = s;
    run_len = 1;
  }
  if (run_len > 0) ranges.add_run(run_start, run_len);
  ranges.cut(n, 1, bounds);
}

}  // namespace

void check_write_inputs(const PagedKVView& v, ConstTokenTensor key, ConstTokenTensor value) {
  v.validate();
  key.check("key");
  value.check("value");
  for (const auto* t : {&key, &value}) {
    const char* name = t == &key ? "key" : "value";
    PAGEDKV_CHECK_ARG(
        t->dtype == DType::kFloat32 || t->dtype == DType::kFloat16 || t->dtype == DType::kBFloat16,
        "{} dtype must be float32, float16 or bfloat16, got {}", name, dtype_name(t->dtype));
    PAGEDKV_CHECK_ARG(t->heads == v.num_kv_heads && t->dim == v.head_dim,
                      "{} is [{}, {}, {}], the cache needs [*, num_kv_heads {}, head_dim {}]", name,
                      t->rows, t->heads, t->dim, v.num_kv_heads, v.head_dim);
  }
  PAGEDKV_CHECK_ARG(key.dtype == value.dtype, "key dtype {} != value dtype {}",
                    dtype_name(key.dtype), dtype_name(value.dtype));
  PAGEDKV_CHECK_ARG(key.rows == value.rows, "key has {} tokens, value {}", key.rows, value.rows);
}

void write_slots(const PagedKVView& v, ConstTokenTensor key, ConstTokenTensor value,
                 std::span<const int64_t> slot_mapping) {
  check_write_inputs(v, key, value);
  PAGEDKV_CHECK_ARG(static_cast<int64_t>(slot_mapping.size()) == key.rows,
                    "slot_mapping has {} entries, key/value have {} tokens", slot_mapping.size(),
                    key.rows);
  const int64_t num_slots = v.num_slots();
  for (size_t t = 0; t < slot_mapping.size(); ++t) {
    PAGEDKV_CHECK_RANGE(slot_mapping[t] < num_slots,
                        "slot_mapping[{}] = {} outside [0, {}) (negative = skip)", t,
                        slot_mapping[t], num_slots);
  }
  const WritePlan p = make_plan(v, key, value, slot_mapping);
  const kv_write_detail::WriteSlotsFn write = slots_fn(active_isa());
  const int threads = write_threads(p, v);
  if (threads <= 1) {
    write(p, 0, std::numeric_limits<int64_t>::max());
    return;
  }
  std::array<int64_t, kMaxWriteThreads + 1> bounds{};
  split_slots(slot_mapping, threads, bounds);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int i = 0; i < threads; ++i)
    write(p, bounds[static_cast<size_t>(i)], bounds[static_cast<size_t>(i) + 1]);
}

}  // namespace pagedkv
