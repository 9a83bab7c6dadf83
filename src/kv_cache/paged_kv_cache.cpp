#include "pagedkv/kv_cache/paged_kv_cache.h"

#include <cmath>

#include "pagedkv/common/errors.h"
#include "pagedkv/memory/mapped_region.h"

namespace pagedkv {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kKeys = 0, kValues = 1, kKScales = 2, kVScales = 3, kNumArrays = 4;

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

// One lazily mapped region per layer (memory/mapped_region.h): zero pages on first touch, huge
// pages for large layers. The layer's arrays are carved from it, each 64-byte aligned.
struct PagedKVCache::Layer {
  MappedRegion region;
  void* arrays[kNumArrays] = {nullptr, nullptr, nullptr, nullptr};

  Layer(size_t total, const size_t (&sizes)[kNumArrays]) : region(total) {
    size_t off = 0;
    for (size_t i = 0; i < kNumArrays; ++i) {
      if (sizes[i] == 0) continue;
      arrays[i] = static_cast<char*>(region.data()) + off;
      off += round_up(sizes[i]);
    }
  }
};

PagedKVCache::PagedKVCache(const PagedKVCacheMetadata& metadata) : metadata_(metadata) {
  metadata_.validate();
  const size_t esize = dtype_size(metadata_.dtype);
  size_t sizes[kNumArrays] = {0, 0, 0, 0};
  if (metadata_.layout == KVLayout::kHND) {
    sizes[kKeys] = sizes[kValues] = static_cast<size_t>(elements_per_array()) * esize;
  } else {
    sizes[kKeys] = static_cast<size_t>(elements_per_array()) * esize;
  }
  if (metadata_.dtype == DType::kInt8) {
    sizes[kKScales] = sizes[kVScales] = static_cast<size_t>(scales_per_array()) * sizeof(float);
  }
  size_t total = 0;
  for (size_t s : sizes) total += round_up(s);
  layers_.reserve(static_cast<size_t>(metadata_.num_hidden_layers));
  for (int32_t l = 0; l < metadata_.num_hidden_layers; ++l) {
    layers_.push_back(std::make_unique<Layer>(total, sizes));
  }
}

PagedKVCache::~PagedKVCache() = default;
PagedKVCache::PagedKVCache(PagedKVCache&&) noexcept = default;
PagedKVCache& PagedKVCache::operator=(PagedKVCache&&) noexcept = default;

int64_t PagedKVCache::elements_per_array() const {
  const int64_t per_slot = int64_t{metadata_.num_kv_heads} * metadata_.kv_head_dim_size;
  const int64_t n = num_slots() * per_slot;
  return metadata_.layout == KVLayout::kHND ? n : 2 * n;
}

int64_t PagedKVCache::scales_per_array() const {
  return metadata_.dtype == DType::kInt8 ? num_slots() * metadata_.num_kv_heads : 0;
}

int64_t PagedKVCache::mapped_bytes() const {
  int64_t total = 0;
  for (const auto& layer : layers_) total += static_cast<int64_t>(layer->region.size());
  return total;
}

void* PagedKVCache::array(int32_t layer, size_t which) const {
  PAGEDKV_CHECK_RANGE(layer >= 0 && layer < num_layers(), "layer {} out of range [0, {})", layer,
                      num_layers());
  return layers_[static_cast<size_t>(layer)]->arrays[which];
}

PagedKVView PagedKVCache::view(int32_t layer) const {
  PagedKVView v;
  v.layout = metadata_.layout;
  v.dtype = metadata_.dtype;
  v.num_pages = metadata_.num_pages_per_layer;
  v.page_size = metadata_.page_size;
  v.num_kv_heads = metadata_.num_kv_heads;
  v.head_dim = metadata_.kv_head_dim_size;
  v.k_data = array(layer, kKeys);
  v.v_data = array(layer, kValues);  // nullptr for kNHD
  v.k_scales = static_cast<float*>(array(layer, kKScales));
  v.v_scales = static_cast<float*>(array(layer, kVScales));
  v.k_scale = k_scale_;
  v.v_scale = v_scale_;
  return v;
}

void* PagedKVCache::key_pages(int32_t layer) const {
  PAGEDKV_CHECK_STATE(metadata_.layout == KVLayout::kHND,
                      "key_pages needs the HND layout; this cache is {} (use kv_pages)",
                      kv_layout_name(metadata_.layout));
  return array(layer, kKeys);
}

void* PagedKVCache::value_pages(int32_t layer) const {
  PAGEDKV_CHECK_STATE(metadata_.layout == KVLayout::kHND,
                      "value_pages needs the HND layout; this cache is {} (use kv_pages)",
                      kv_layout_name(metadata_.layout));
  return array(layer, kValues);
}

void* PagedKVCache::kv_pages(int32_t layer) const {
  PAGEDKV_CHECK_STATE(metadata_.layout == KVLayout::kNHD,
                      "kv_pages needs the NHD layout; this cache is {} (use key_pages / "
                      "value_pages)",
                      kv_layout_name(metadata_.layout));
  return array(layer, kKeys);
}

float* PagedKVCache::k_scales(int32_t layer) const {
  PAGEDKV_CHECK_STATE(metadata_.dtype == DType::kInt8, "k_scales exist only for int8, not {}",
                      dtype_name(metadata_.dtype));
  return static_cast<float*>(array(layer, kKScales));
}

float* PagedKVCache::v_scales(int32_t layer) const {
  PAGEDKV_CHECK_STATE(metadata_.dtype == DType::kInt8, "v_scales exist only for int8, not {}",
                      dtype_name(metadata_.dtype));
  return static_cast<float*>(array(layer, kVScales));
}

void PagedKVCache::set_fp8_scales(float k_scale, float v_scale) {
  PAGEDKV_CHECK_STATE(metadata_.dtype == DType::kFp8E4M3,
                      "per-tensor k_scale / v_scale apply only to fp8_e4m3, not {}",
                      dtype_name(metadata_.dtype));
  PAGEDKV_CHECK_ARG(std::isfinite(k_scale) && k_scale > 0.0f,
                    "k_scale must be finite and > 0, got {}", k_scale);
  PAGEDKV_CHECK_ARG(std::isfinite(v_scale) && v_scale > 0.0f,
                    "v_scale must be finite and > 0, got {}", v_scale);
  k_scale_ = k_scale;
  v_scale_ = v_scale;
}

void PagedKVCache::verify() const {
  metadata_.validate();
  PAGEDKV_ASSERT(layers_.size() == static_cast<size_t>(metadata_.num_hidden_layers),
                 "{} layers allocated, metadata says {}", layers_.size(),
                 metadata_.num_hidden_layers);
  const bool hnd = metadata_.layout == KVLayout::kHND;
  const bool int8 = metadata_.dtype == DType::kInt8;
  const size_t esize = dtype_size(metadata_.dtype);
  const size_t need = round_up(static_cast<size_t>(elements_per_array()) * esize) * (hnd ? 2 : 1) +
                      round_up(static_cast<size_t>(scales_per_array()) * sizeof(float)) * 2;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = *layers_[l];
    PAGEDKV_ASSERT(layer.region.size() >= need, "layer {} maps {} bytes, needs {}", l,
                   layer.region.size(), need);
    const bool present[kNumArrays] = {true, hnd, int8, int8};
    for (size_t a = 0; a < kNumArrays; ++a) {
      PAGEDKV_ASSERT((layer.arrays[a] != nullptr) == present[a], "layer {} array {} presence", l,
                     a);
      PAGEDKV_ASSERT(reinterpret_cast<uintptr_t>(layer.arrays[a]) % kAlign == 0,
                     "layer {} array {} is not {}-byte aligned", l, a, kAlign);
    }
    view(static_cast<int32_t>(l)).validate();
  }
  PAGEDKV_ASSERT(std::isfinite(k_scale_) && k_scale_ > 0.0f, "k_scale {}", k_scale_);
  PAGEDKV_ASSERT(std::isfinite(v_scale_) && v_scale_ > 0.0f, "v_scale {}", v_scale_);
}

}  // namespace pagedkv
