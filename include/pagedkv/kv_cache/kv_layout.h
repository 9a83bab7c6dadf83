// pagedkv/kv_cache/kv_layout.h - how one layer's paged keys/values sit in memory, as a non-owning
// view that writes and attention kernels share (FlashInfer's paged_kv_t idea). The view owns its
// contract: validate() checks it once per call of a write or of paged_attention, and strides()
// is the one place that knows where the vector of a (slot, kv head) lies.
//
// Example:
//   pagedkv::PagedKVView v = cache.view(layer);       // or filled in over caller-owned arrays
//   v.validate();                                     // InvalidArgument naming the bad field
//   const pagedkv::KVStrides st = v.strides();
//   // slot = page * page_size + offset; K of (slot, head) at element st.k_elem(slot, head) of
//   // k_data, V at st.v_elem(slot, head) of v_base(), int8 scales at st.scale_index(slot, head).
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
// Contract (validate(); InvalidArgument whose message names the field, its value and the limit):
//   layout, dtype              known enum values
//   num_pages, page_size,      > 0, and the elements of one array fit int64 offsets (caches
//   num_kv_heads, head_dim     beyond 2^31 bytes work)
//   k_data                     set
//   v_data                     set for kHND
//   k_scales, v_scales         set for kInt8
//   k_scale, v_scale           finite and > 0 for kFp8E4M3
// A field its layout or dtype does not use is ignored, never checked: a float32 view with
// k_scale 0, or a kNHD view with v_data set, is valid. Kernels may add limits of their own
// (paged_attention: head_dim a multiple of 16, at most 1024).
#pragma once

#include <cstdint>

#include "pagedkv/common/dtype.h"

namespace pagedkv {

enum class KVLayout : uint8_t { kHND, kNHD };

// Element strides of one layout (all in elements, not bytes). Offsets are affine in
// (slot, head) for both layouts (kHND: page * page_size + offset == slot within a head plane).
struct KVStrides {
  int64_t slot_stride;        // kHND: head_dim;              kNHD: 2 * num_kv_heads * head_dim
  int64_t head_stride;        // kHND: num_slots * head_dim;  kNHD: 2 * head_dim
  int64_t v_offset;           // kHND: 0 (V in v_data);       kNHD: head_dim (V after K)
  int64_t scale_slot_stride;  // kHND: 1;                     kNHD: num_kv_heads
  int64_t scale_head_stride;  // kHND: num_slots;             kNHD: 1

  // First element of the K vector of (slot, head) in k_data.
  int64_t k_elem(int64_t slot, int32_t head) const {
    return slot * slot_stride + head * head_stride;
  }
  // First element of the V vector of (slot, head) in v_base().
  int64_t v_elem(int64_t slot, int32_t head) const { return k_elem(slot, head) + v_offset; }
  // Index of the int8 scale of (slot, head) in k_scales / v_scales.
  int64_t scale_index(int64_t slot, int32_t head) const {
    return slot * scale_slot_stride + head * scale_head_stride;
  }
};

struct PagedKVView {
  KVLayout layout = KVLayout::kHND;
  DType dtype = DType::kFloat32;
  int64_t num_pages = 0;
  int32_t page_size = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  void* k_data = nullptr;     // kHND: [num_kv_heads, num_pages, page_size, head_dim] keys;
                              // kNHD: [num_pages * page_size, 2 * num_kv_heads, head_dim] K/V
  void* v_data = nullptr;     // kHND: [num_kv_heads, num_pages, page_size, head_dim] values;
                              // kNHD: unused
  float* k_scales = nullptr;  // kInt8: kHND [num_kv_heads, num_pages, page_size],
                              //        kNHD [num_pages * page_size, num_kv_heads]; else unused
  float* v_scales = nullptr;  // kInt8: as k_scales; else unused
  float k_scale = 1.0f;       // kFp8E4M3: K per-tensor scale; else unused
  float v_scale = 1.0f;       // kFp8E4M3: V per-tensor scale; else unused

  // Throws InvalidArgument unless the view meets the contract above.
  void validate() const;

  KVStrides strides() const {
    const int64_t d = head_dim;
    if (layout == KVLayout::kHND) return {d, num_slots() * d, 0, 1, num_slots()};
    return {2 * int64_t{num_kv_heads} * d, 2 * d, d, num_kv_heads, 1};
  }

  int64_t num_slots() const { return num_pages * page_size; }
  // The array holding V vectors: v_data (kHND) or the combined k_data (kNHD).
  void* v_base() const { return layout == KVLayout::kHND ? v_data : k_data; }

  // strides() shorthands for one-off lookups (hot loops keep a KVStrides instead).
  int64_t k_elem(int64_t slot, int32_t head) const { return strides().k_elem(slot, head); }
  int64_t v_elem(int64_t slot, int32_t head) const { return strides().v_elem(slot, head); }
  int64_t scale_index(int64_t slot, int32_t head) const {
    return strides().scale_index(slot, head);
  }
};

}  // namespace pagedkv
