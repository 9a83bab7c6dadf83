// pagedkv/common/types.h - the small value types every component shares.
#pragma once

#include <cstdint>

namespace pagedkv {

// A page is an integer id into stable per-pool arrays; 0 is the pool's null page.
using PageId = int32_t;
// A token id as the model's tokenizer produces it.
using TokenId = int32_t;
// Index of a KV-cache group (one per distinct attention kind / page size).
using GroupId = int32_t;

inline constexpr PageId kNullPageId = 0;

// Ceiling division for non-negative integers.
template <typename T>
constexpr T cdiv(T a, T b) {
  return (a + b - 1) / b;
}

}  // namespace pagedkv
