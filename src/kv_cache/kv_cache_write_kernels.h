// Internal contract between write_slots (kv_cache_write.cpp: checks, plan, threads) and its row
// loops, compiled once per ISA level in kv_cache_write_kernels.cpp (Highway foreach_target) and
// picked by write_units_for(active_isa()). Everything here is raw pointers that write_slots has
// already validated; nothing throws, nothing allocates.
//
// A call writes the tokens whose slot lies in [slot_begin, slot_end), in token order: threads
// given disjoint slot ranges write disjoint cache rows (and int8 scales) at once, and a slot
// written twice still keeps the later token, since one thread writes it both times.
//
// Every ISA level writes the same bytes: the conversions of dtype.h (round to nearest even,
// fp8 saturation, NaN payloads), int8 codes round(x * (127 / amax)) with scale amax / 127.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/dtype.h"
#include "pagedkv/kv_cache/kv_layout.h"

namespace pagedkv::kv_write_detail {

struct WritePlan {
  const char* key = nullptr;       // [tokens, heads, dim] elements of `in`
  const char* value = nullptr;     // [tokens, heads, dim] elements of `in`
  const int64_t* slots = nullptr;  // [tokens] cache slot of each token; < 0: skipped
  int64_t tokens = 0;
  char* k_base = nullptr;         // K of (slot 0, head 0): view.k_data
  char* v_base = nullptr;         // V of (slot 0, head 0): view.v_base() + v_offset elements
  float* k_scales = nullptr;      // int8 caches: view.k_scales; else unused
  float* v_scales = nullptr;      // int8 caches: view.v_scales; else unused
  size_t slot_bytes = 0;          // cache bytes from one slot to the next (KVStrides::slot_stride)
  size_t head_bytes = 0;          // cache bytes from one kv head to the next (head_stride)
  int64_t scale_slot_stride = 0;  // KVStrides::scale_slot_stride
  int64_t scale_head_stride = 0;  // KVStrides::scale_head_stride
  DType in = DType::kFloat32;     // input dtype (float32, float16, bfloat16)
  DType out = DType::kFloat32;    // cache dtype
  int32_t heads = 0;
  int32_t dim = 0;
  size_t in_row_bytes = 0;  // dim * dtype_size(in)
  float k_scale = 1.0f;     // fp8 caches: per-tensor scales (values are divided by them)
  float v_scale = 1.0f;
  // > 1: blocks of this many tokens are written head by head (for each head, the block's rows
  // in token order), which turns the rows of consecutive slots into one contiguous run per head
  // plane of a kHND cache. <= 1: token by token.
  int64_t block_tokens = 0;
};

// Writes K and V of every token whose slot lies in [slot_begin, slot_end) (slot_begin >= 0).
using WriteSlotsFn = void (*)(const WritePlan& plan, int64_t slot_begin, int64_t slot_end);

// The loops of the best target at or below `isa` that this CPU runs.
WriteSlotsFn write_slots_for(Isa isa);

}  // namespace pagedkv::kv_write_detail
