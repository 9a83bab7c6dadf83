// pagedkv/kv_cache/kv_layout.h - how one layer's paged keys/values sit in memory, as a non-owning view
// that writes and attention kernels share (FlashInfer's paged_kv_t idea).
//
// Layouts:
//   kHND (seed 004): key pages and value pages are two arrays, each
//        [num_kv_heads, num_pages, page_size, head_dim].
//   kNHD (seed 003, ragged): one combined array [num_pages * page_size, 2 * num_kv_heads,
//        head_dim]; combined head 2h holds K of kv head h, 2h+1 holds V of kv head h
//        (interleaved, as vLLM's ragged paged attention stores them).
// Scales (quantized dtypes only):
//   kInt8: one float scale per (token slot, kv head) for K and one for V (symmetric,
//          scale = max|x| / 127, value = code * scale).
//          kHND: k_scales / v_scales [num_kv_heads, num_pages, page_size];
//          kNHD: k_scales / v_scales [num_pages * page_size, num_kv_heads].
//   kFp8E4M3: one float scale per tensor for K and one for V (value = fp8 * scale), as vLLM's
//          k_scale / v_scale; the caller chooses them (default 1.0).
//
// Invariants: all counts > 0; element offsets use int64 (caches beyond 2^31 bytes work).
#pragma once

#include <cstdint>

#include "pagedkv/common/dtype.h"

namespace pagedkv {

enum class KVLayout : uint8_t { kHND, kNHD };

struct PagedKVView {
  KVLayout layout = KVLayout::kHND;
  DType dtype = DType::kFloat32;
  int64_t num_pages = 0;
  int32_t page_size = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  void* k_data = nullptr;      // kHND: key pages; kNHD: the combined K/V array
  void* v_data = nullptr;      // kHND: value pages; kNHD: nullptr
  float* k_scales = nullptr;   // kInt8 only (see above)
  float* v_scales = nullptr;   // kInt8 only
  float k_scale = 1.0f;        // kFp8E4M3 only
  float v_scale = 1.0f;        // kFp8E4M3 only

  int64_t num_slots() const { return num_pages * page_size; }

  // Element index (not bytes) of the first element of the K (or V) vector for `slot`
  // (= page * page_size + offset) and kv head `head`, within k_data (or v_data for kHND;
  // within k_data for kNHD).
  int64_t k_elem(int64_t slot, int32_t head) const {
    if (layout == KVLayout::kHND) {
      const int64_t page = slot / page_size, off = slot % page_size;
      return ((int64_t{head} * num_pages + page) * page_size + off) * head_dim;
    }
    return (slot * 2 * num_kv_heads + 2 * int64_t{head}) * head_dim;
  }
  int64_t v_elem(int64_t slot, int32_t head) const {
    if (layout == KVLayout::kHND) return k_elem(slot, head);
    return k_elem(slot, head) + head_dim;
  }
  void* v_base() const { return layout == KVLayout::kHND ? v_data : k_data; }
  // Index into k_scales / v_scales for kInt8.
  int64_t scale_index(int64_t slot, int32_t head) const {
    if (layout == KVLayout::kHND) {
      const int64_t page = slot / page_size, off = slot % page_size;
      return (int64_t{head} * num_pages + page) * page_size + off;
    }
    return slot * num_kv_heads + head;
  }
};

}  // namespace pagedkv
