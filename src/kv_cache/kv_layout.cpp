#include "pagedkv/kv_cache/kv_layout.h"

#include <cmath>
#include <limits>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

void check_counts(const PagedKVView& v) {
  PAGEDKV_CHECK_ARG(v.num_pages > 0, "PagedKVView.num_pages must be > 0, got {}", v.num_pages);
  PAGEDKV_CHECK_ARG(v.page_size > 0, "PagedKVView.page_size must be > 0, got {}", v.page_size);
  PAGEDKV_CHECK_ARG(v.num_kv_heads > 0, "PagedKVView.num_kv_heads must be > 0, got {}",
                    v.num_kv_heads);
  PAGEDKV_CHECK_ARG(v.head_dim > 0, "PagedKVView.head_dim must be > 0, got {}", v.head_dim);
  // Byte offsets of the largest array (kNHD: 2 * heads vectors per slot, 4-byte elements)
  // must not overflow int64.
  int64_t elems = 0;
  const bool overflow = __builtin_mul_overflow(v.num_pages, int64_t{v.page_size}, &elems) ||
                        __builtin_mul_overflow(elems, int64_t{2} * v.num_kv_heads, &elems) ||
                        __builtin_mul_overflow(elems, int64_t{v.head_dim} * 4, &elems);
  PAGEDKV_CHECK_ARG(!overflow,
                    "PagedKVView of num_pages {} x page_size {} x num_kv_heads {} x head_dim {} "
                    "exceeds int64 byte offsets (max {})",
                    v.num_pages, v.page_size, v.num_kv_heads, v.head_dim,
                    std::numeric_limits<int64_t>::max());
}

void check_scale(const char* field, float scale) {
  PAGEDKV_CHECK_ARG(std::isfinite(scale) && scale > 0.0f,
                    "PagedKVView.{} = {} must be finite and > 0 for an fp8_e4m3 view", field,
                    scale);
}

}  // namespace

void PagedKVView::validate() const {
  PAGEDKV_CHECK_ARG(layout == KVLayout::kHND || layout == KVLayout::kNHD,
                    "PagedKVView.layout has unknown code {} (HND = 0, NHD = 1)",
                    static_cast<int>(layout));
  PAGEDKV_CHECK_ARG(static_cast<int>(dtype) <= static_cast<int>(DType::kFp8E4M3),
                    "PagedKVView.dtype has unknown code {} (max {})", static_cast<int>(dtype),
                    static_cast<int>(DType::kFp8E4M3));
  check_counts(*this);
  PAGEDKV_CHECK_ARG(k_data != nullptr, "PagedKVView.k_data is null; a {} view needs its {} array",
                    layout == KVLayout::kHND ? "HND" : "NHD",
                    layout == KVLayout::kHND ? "key" : "combined K/V");
  PAGEDKV_CHECK_ARG(layout != KVLayout::kHND || v_data != nullptr,
                    "PagedKVView.v_data is null; an HND view needs its value array");
  if (dtype == DType::kInt8) {
    PAGEDKV_CHECK_ARG(k_scales != nullptr, "PagedKVView.k_scales is null; an int8 view needs it");
    PAGEDKV_CHECK_ARG(v_scales != nullptr, "PagedKVView.v_scales is null; an int8 view needs it");
  }
  if (dtype == DType::kFp8E4M3) {
    check_scale("k_scale", k_scale);
    check_scale("v_scale", v_scale);
  }
}

}  // namespace pagedkv
