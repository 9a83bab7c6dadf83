// pagedkv/kv_cache/token_tensor.h - a non-owning dense [rows, heads, dim] tensor of one DType: the
// new keys/values a cache write takes, the queries paged attention takes, the rows of a ragged
// cache. One template for both forms: ConstTokenTensor reads, TokenTensor may be written, and a
// TokenTensor converts to a ConstTokenTensor (never the other way).
//
// Example:
//   std::vector<float> q(tokens * 32 * 128);
//   auto query = pagedkv::ConstTokenTensor::f32(q.data(), tokens, 32, 128);
//   pagedkv::TokenTensor rows{cache.kv_pages(0), pagedkv::DType::kBFloat16, cache.num_slots(),
//                             2 * 8, 128};
//   pagedkv::ConstTokenTensor read_only = rows;
//   query.check("query");   // InvalidArgument naming "query", the field and its value
//
// Layout: row-major and dense; element (r, h, d) starts at byte
// ((r * heads + h) * dim + d) * dtype_size(dtype) of data. bfloat16 elements are uint16_t bit
// patterns, fp8_e4m3 elements uint8_t codes.
// Invariants (check()): dtype is known; rows >= 0; heads > 0; dim > 0; data is set when
// rows > 0. Callers add their own requirements (dtypes they take, shapes that must match).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "pagedkv/common/dtype.h"

namespace pagedkv {

template <class Void>
struct TokenTensorT {
  static_assert(std::is_same_v<Void, void> || std::is_same_v<Void, const void>,
                "TokenTensorT<void> (mutable) or TokenTensorT<const void> (read-only)");
  static constexpr bool kConst = std::is_const_v<Void>;
  using F32 = std::conditional_t<kConst, const float, float>;
  using U16 = std::conditional_t<kConst, const uint16_t, uint16_t>;
  using Byte = std::conditional_t<kConst, const char, char>;

  Void* data = nullptr;           // [rows, heads, dim] elements of dtype
  DType dtype = DType::kFloat32;  // element type of data
  int64_t rows = 0;               // tokens (or cache slots)
  int32_t heads = 0;              // heads per row
  int32_t dim = 0;                // elements per head

  static TokenTensorT f32(F32* p, int64_t rows, int32_t heads, int32_t dim) {
    return {p, DType::kFloat32, rows, heads, dim};
  }
  // p: bfloat16 bit patterns.
  static TokenTensorT bf16(U16* p, int64_t rows, int32_t heads, int32_t dim) {
    return {p, DType::kBFloat16, rows, heads, dim};
  }

  // A mutable tensor reads as a const one.
  operator TokenTensorT<const void>() const requires(!kConst) {
    return {data, dtype, rows, heads, dim};
  }

  // Throws InvalidArgument, naming `name`, unless the invariants above hold.
  void check(std::string_view name) const;

  int64_t elements() const { return rows * heads * dim; }
  // Bytes of one row (heads * dim elements).
  size_t row_bytes() const {
    return static_cast<size_t>(heads) * static_cast<size_t>(dim) * dtype_size(dtype);
  }
  // Rows [first, first + count) as a tensor over the same memory (caller keeps them in range).
  TokenTensorT rows_slice(int64_t first, int64_t count) const {
    return {static_cast<Byte*>(data) + static_cast<size_t>(first) * row_bytes(), dtype, count,
            heads, dim};
  }
};

using ConstTokenTensor = TokenTensorT<const void>;
using TokenTensor = TokenTensorT<void>;

}  // namespace pagedkv
