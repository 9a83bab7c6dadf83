// Shared helpers of the kv_cache tests: random inputs, sentinel-filled caches, byte snapshots
// and a deliberately naive reference writer with its own index arithmetic (it does not use
// PagedKVView's offset helpers, so a wrong offset there cannot hide).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "pagedkv/common/dtype.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"
#include "pagedkv/kv_cache/token_tensor.h"

namespace pagedkv::testing {

// A dense [rows, heads, dim] input in one of the input dtypes, owning its bytes.
struct HostTokens {
  std::vector<uint8_t> bytes;
  DType dtype = DType::kFloat32;
  int64_t rows = 0;
  int32_t heads = 0;
  int32_t dim = 0;

  ConstTokenTensor tensor() const { return {bytes.data(), dtype, rows, heads, dim}; }
  float at(int64_t r, int32_t h, int32_t d) const {
    const size_t i = (static_cast<size_t>(r) * heads + h) * dim + d;
    switch (dtype) {
      case DType::kFloat32: {
        float f;
        std::memcpy(&f, bytes.data() + 4 * i, 4);
        return f;
      }
      case DType::kBFloat16:
      case DType::kFloat16: {
        uint16_t b;
        std::memcpy(&b, bytes.data() + 2 * i, 2);
        return dtype == DType::kBFloat16 ? bf16_to_float(b) : fp16_to_float(b);
      }
      default: return 0.0f;
    }
  }
};

inline HostTokens random_tokens(std::mt19937& rng, DType dtype, int64_t rows, int32_t heads,
                                int32_t dim, float scale = 3.0f) {
  HostTokens t;
  t.dtype = dtype;
  t.rows = rows;
  t.heads = heads;
  t.dim = dim;
  const size_t n = static_cast<size_t>(rows) * heads * dim;
  t.bytes.resize(n * dtype_size(dtype));
  std::normal_distribution<float> dist(0.0f, scale);
  for (size_t i = 0; i < n; ++i) {
    const float x = dist(rng);
    if (dtype == DType::kFloat32) {
      std::memcpy(t.bytes.data() + 4 * i, &x, 4);
    } else if (dtype == DType::kBFloat16) {
      const uint16_t b = float_to_bf16(x);
      std::memcpy(t.bytes.data() + 2 * i, &b, 2);
    } else if (dtype == DType::kFloat16) {
      const uint16_t b = float_to_fp16(x);
      std::memcpy(t.bytes.data() + 2 * i, &b, 2);
    } else {
      t.bytes[i] = static_cast<uint8_t>(rng());
    }
  }
  return t;
}

inline PagedKVCacheMetadata small_metadata(KVLayout layout, DType dtype, int32_t page_size,
                                           int64_t num_pages, int32_t heads, int32_t dim,
                                           int32_t layers = 1) {
  PagedKVCacheMetadata md;
  md.batch_size = 4;
  md.num_hidden_layers = layers;
  md.max_sequences = page_size * static_cast<int32_t>(num_pages - 1);
  md.num_pages_per_sequence = static_cast<int32_t>(num_pages - 1);
  md.num_pages_per_layer = num_pages;
  md.page_size = page_size;
  md.num_kv_heads = heads;
  md.kv_head_dim_size = dim;
  md.hbm_utilization = 0.5;
  md.dtype = dtype;
  md.layout = layout;
  md.validate();
  return md;
}

// Byte copies of one layer's arrays.
struct CacheBytes {
  std::vector<uint8_t> k, v;
  std::vector<float> ks, vs;
  bool operator==(const CacheBytes&) const = default;
};

inline size_t array_bytes(const PagedKVCache& c) {
  return static_cast<size_t>(c.elements_per_array()) * dtype_size(c.metadata().dtype);
}

inline CacheBytes snapshot(const PagedKVCache& c, int32_t layer = 0) {
  const PagedKVView v = c.view(layer);
  CacheBytes b;
  const size_t n = array_bytes(c);
  const auto* k = static_cast<const uint8_t*>(v.k_data);
  b.k.assign(k, k + n);
  if (v.v_data != nullptr) {
    const auto* vv = static_cast<const uint8_t*>(v.v_data);
    b.v.assign(vv, vv + n);
  }
  if (v.k_scales != nullptr) {
    const auto s = static_cast<size_t>(c.scales_per_array());
    b.ks.assign(v.k_scales, v.k_scales + s);
    b.vs.assign(v.v_scales, v.v_scales + s);
  }
  return b;
}

// Fills every array of the layer with random bytes (scales with random floats).
inline void fill_sentinel(PagedKVCache& c, std::mt19937& rng, int32_t layer = 0) {
  const PagedKVView v = c.view(layer);
  const size_t n = array_bytes(c);
  for (void* p : {v.k_data, v.v_data}) {
    if (p == nullptr) continue;
    auto* b = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(rng());
  }
  if (v.k_scales != nullptr) {
    std::uniform_real_distribution<float> d(-9.0f, 9.0f);
    for (int64_t i = 0; i < c.scales_per_array(); ++i) {
      v.k_scales[i] = d(rng);
      v.v_scales[i] = d(rng);
    }
  }
}

// The reference writer: one token's K and V rows into slot `slot` of the snapshot.
struct NaiveWriter {
  PagedKVCacheMetadata md;
  float k_scale = 1.0f;
  float v_scale = 1.0f;

  size_t k_index(int64_t slot, int32_t h, int32_t d, bool is_value) const {
    const int64_t ps = md.page_size, H = md.num_kv_heads, D = md.kv_head_dim_size;
    if (md.layout == KVLayout::kHND) {
      const int64_t page = slot / ps, off = slot % ps;
      return static_cast<size_t>(((h * md.num_pages_per_layer + page) * ps + off) * D + d);
    }
    return static_cast<size_t>((slot * 2 * H + 2 * h + (is_value ? 1 : 0)) * D + d);
  }
  size_t scale_index(int64_t slot, int32_t h) const {
    const int64_t ps = md.page_size;
    if (md.layout == KVLayout::kHND) {
      return static_cast<size_t>((h * md.num_pages_per_layer + slot / ps) * ps + slot % ps);
    }
    return static_cast<size_t>(slot * md.num_kv_heads + h);
  }

  void write_row(CacheBytes& out, const HostTokens& in, int64_t t, int32_t h, int64_t slot,
                 bool is_value) const {
    std::vector<uint8_t>& arr = (md.layout == KVLayout::kHND && is_value) ? out.v : out.k;
    const int32_t D = md.kv_head_dim_size;
    const DType cd = md.dtype;
    const size_t es = dtype_size(cd);
    if (in.dtype == cd) {  // raw copy of the codes
      for (int32_t d = 0; d < D; ++d) {
        const size_t src = ((static_cast<size_t>(t) * in.heads + h) * D + d) * es;
        std::memcpy(&arr[k_index(slot, h, d, is_value) * es], &in.bytes[src], es);
      }
      return;
    }
    if (cd == DType::kInt8) {
      float amax = 0.0f;
      for (int32_t d = 0; d < D; ++d) amax = std::max(amax, std::fabs(in.at(t, h, d)));
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int32_t d = 0; d < D; ++d) {
        const float q = std::clamp(std::nearbyint(in.at(t, h, d) * inv), -127.0f, 127.0f);
        arr[k_index(slot, h, d, is_value)] = static_cast<uint8_t>(static_cast<int8_t>(q));
      }
      (is_value ? out.vs : out.ks)[scale_index(slot, h)] = amax / 127.0f;
      return;
    }
    for (int32_t d = 0; d < D; ++d) {
      const float x = in.at(t, h, d);
      uint8_t* dst = &arr[k_index(slot, h, d, is_value) * es];
      if (cd == DType::kFloat32) {
        std::memcpy(dst, &x, 4);
      } else if (cd == DType::kBFloat16) {
        const uint16_t b = float_to_bf16(x);
        std::memcpy(dst, &b, 2);
      } else if (cd == DType::kFloat16) {
        const uint16_t b = float_to_fp16(x);
        std::memcpy(dst, &b, 2);
      } else {
        *dst = float_to_fp8_e4m3(x / (is_value ? v_scale : k_scale));
      }
    }
  }

  void write_token(CacheBytes& out, const HostTokens& key, const HostTokens& value, int64_t t,
                   int64_t slot) const {
    for (int32_t h = 0; h < md.num_kv_heads; ++h) {
      write_row(out, key, t, h, slot, false);
      write_row(out, value, t, h, slot, true);
    }
  }
};

inline constexpr DType kAllCacheDtypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16,
                                            DType::kInt8, DType::kFp8E4M3};
inline constexpr DType kInputDtypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};
inline constexpr KVLayout kLayouts[] = {KVLayout::kHND, KVLayout::kNHD};
inline constexpr int32_t kPageSizes[] = {1, 16, 32, 128};

}  // namespace pagedkv::testing
