// pagedkv/common/dtype.h - element types of the KV cache and scalar conversions to/from float.
//
// bfloat16 and float16 are stored as uint16_t bit patterns, fp8 (OCP e4m3fn, as vLLM's
// "fp8_e4m3") and int8 as 8-bit codes. Conversions round to nearest even and saturate fp8 to
// +-448 (e4m3fn has no infinity; NaN stays NaN).
//
// Example:
//   uint16_t b = pagedkv::float_to_bf16(1.5f);   float f = pagedkv::bf16_to_float(b);
//   uint8_t q = pagedkv::float_to_fp8_e4m3(0.3f); float g = pagedkv::fp8_e4m3_to_float(q);
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pagedkv {

enum class DType : uint8_t { kFloat32, kFloat16, kBFloat16, kInt8, kFp8E4M3 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);      // "float32", "float16", "bfloat16", "int8", "fp8_e4m3"
DType parse_dtype(std::string_view name);  // throws InvalidArgument
constexpr bool dtype_is_quantized(DType t) { return t == DType::kInt8 || t == DType::kFp8E4M3; }

inline float bf16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t{b} << 16); }
inline uint16_t float_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float fp16_to_float(uint16_t h);
uint16_t float_to_fp16(float f);
float fp8_e4m3_to_float(uint8_t v);
uint8_t float_to_fp8_e4m3(float f);
inline constexpr float kFp8E4M3Max = 448.0f;

}  // namespace pagedkv
