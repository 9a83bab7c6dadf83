// pagedkv/kv_cache/paged_kv_cache.h - the storage of a paged KV cache: for every layer, key and
// value pages (plus int8 scales), laid out as kv_layout.h describes (seed 004's
// PagedAttentionCache: one view per layer).
//
// Example:
//   auto md = pagedkv::PagedKVCacheMetadata::create(cfg);
//   pagedkv::PagedKVCache cache(md);
//   pagedkv::PagedKVView v = cache.view(/*layer=*/3);     // hand to writes and attention
//   pagedkv::write_slots(v, key, value, slot_mapping);     // kv_cache_write.h
//
// Storage: one MappedRegion per layer (memory/mapped_region.h: zero-filled by the OS on first
// touch, so a cache sized to most of the machine's memory costs nothing until written; layers
// of 4 MiB or more are 2 MiB aligned and advised to use transparent huge pages), carved into
// 64-byte aligned arrays:
//   kHND: key pages and value pages [num_kv_heads, num_pages, page_size, head_dim] each.
//   kNHD: one array [num_pages * page_size, 2 * num_kv_heads, head_dim], K/V interleaved.
//
// Quantization (dtype_is_quantized):
//   int8     symmetric, one float scale per (token slot, kv head) for K and one for V:
//            scale = max|x| / 127, code = clamp(round_half_even(x * (127 / max|x|)), -127, 127),
//            value = code * scale (a zero row has scale 0 and codes 0). Error per element
//            <= scale / 2 (+ float rounding), i.e. <= max|x| / 254 of its row.
//   fp8_e4m3 one float scale per tensor for K and one for V, as vLLM's k_scale / v_scale:
//            code = float_to_fp8_e4m3(x / k_scale), value = fp8 * k_scale. Relative error
//            <= 2^-4 for |x / k_scale| in [2^-6, 448]; larger values saturate to 448 * k_scale.
//            The caller picks the scales (default 1.0) with set_fp8_scales before writing.
//
// Invariants (verify()): the metadata is valid; every layer has its arrays, 64-byte aligned,
// of the sizes above; fp8 scales are finite and > 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "pagedkv/kv_cache/kv_layout.h"
#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"

namespace pagedkv {

class PagedKVCache {
 public:
  // Allocates (lazily) num_hidden_layers layers of num_pages_per_layer pages. Throws
  // InvalidArgument if the metadata is invalid, CapacityError if the memory cannot be mapped.
  explicit PagedKVCache(const PagedKVCacheMetadata& metadata);
  ~PagedKVCache();
  PagedKVCache(const PagedKVCache&) = delete;
  PagedKVCache& operator=(const PagedKVCache&) = delete;
  PagedKVCache(PagedKVCache&&) noexcept;
  PagedKVCache& operator=(PagedKVCache&&) noexcept;

  const PagedKVCacheMetadata& metadata() const { return metadata_; }
  int32_t num_layers() const { return metadata_.num_hidden_layers; }
  int64_t num_pages() const { return metadata_.num_pages_per_layer; }
  int64_t num_slots() const { return metadata_.num_pages_per_layer * metadata_.page_size; }

  // The non-owning view of one layer (valid while the cache lives). OutOfRange on a bad layer.
  PagedKVView view(int32_t layer) const;

  // Raw arrays of one layer (shapes above). key_pages / value_pages need kHND and kv_pages
  // needs kNHD (StateError otherwise); k_scales / v_scales need int8 (StateError otherwise).
  void* key_pages(int32_t layer) const;
  void* value_pages(int32_t layer) const;
  void* kv_pages(int32_t layer) const;
  float* k_scales(int32_t layer) const;  // kHND [heads, pages, page_size]; kNHD [slots, heads]
  float* v_scales(int32_t layer) const;
  // Elements in one K (or V) array of a layer: heads * pages * page_size * head_dim (kHND), or
  // in the combined array: slots * 2 * heads * head_dim (kNHD).
  int64_t elements_per_array() const;
  // Floats in one scale array of a layer: slots * heads (int8 only, else 0).
  int64_t scales_per_array() const;

  // fp8 per-tensor scales (value = code * scale). Settable only on an fp8_e4m3 cache
  // (StateError otherwise); each must be finite and > 0 (InvalidArgument).
  float k_scale() const { return k_scale_; }
  float v_scale() const { return v_scale_; }
  void set_fp8_scales(float k_scale, float v_scale);

  // Bytes mapped for all layers (the OS backs them only once touched).
  int64_t mapped_bytes() const;

  // Walks every invariant (PAGEDKV_ASSERT).
  void verify() const;

 private:
  struct Layer;
  void* array(int32_t layer, size_t which) const;

  PagedKVCacheMetadata metadata_;
  std::vector<std::unique_ptr<Layer>> layers_;
  float k_scale_ = 1.0f;
  float v_scale_ = 1.0f;
};

}  // namespace pagedkv
