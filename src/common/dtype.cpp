#include "pagedkv/common/dtype.h"

#include <array>
#include <bit>
#include <limits>

#include "pagedkv/common/dtype_convert.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

constexpr float fp8_e4m3_decode(uint8_t v) {
  const uint32_t sign = uint32_t{v & 0x80u} << 24;
  const uint32_t exp = (v >> 3) & 0xfu;
  const uint32_t mant = v & 0x7u;
  if ((v & 0x7fu) == 0x7fu) {
    return std::bit_cast<float>(sign | 0x7fc00000u);  // the only NaN codes: S.1111.111
  }
  if (exp == 0) {  // subnormal: mant * 2^-9, exact in float
    const float mag = static_cast<float>(mant) * 0x1p-9f;
    return sign ? -mag : mag;
  }
  // Rebias 7 -> 127 and widen the 3-bit mantissa to 23 bits.
  return std::bit_cast<float>(sign | ((exp + 120u) << 23) | (mant << 20));
}

constexpr std::array<float, 256> make_fp8_table() {
  std::array<float, 256> t{};
  for (int i = 0; i < 256; ++i)
    t[static_cast<size_t>(i)] = fp8_e4m3_decode(static_cast<uint8_t>(i));
  return t;
}

// Decoding is a table lookup: attention reads every cached element through it.
constexpr std::array<float, 256> kFp8Table = make_fp8_table();

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kFloat16:
    case DType::kBFloat16: return 2;
    case DType::kInt8:
    case DType::kFp8E4M3: return 1;
  }
  PAGEDKV_CHECK_ARG(false, "unknown dtype code {}", static_cast<int>(t));
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kInt8: return "int8";
    case DType::kFp8E4M3: return "fp8_e4m3";
  }
  PAGEDKV_CHECK_ARG(false, "unknown dtype code {}", static_cast<int>(t));
  return {};
}

// Accepts the canonical names of dtype_name() and the short spellings engines use on the
// command line ("fp32", "fp16", "half", "bf16", "fp8", "fp8_e4m3fn").
DType parse_dtype(std::string_view name) {
  if (name == "float32" || name == "fp32" || name == "float") return DType::kFloat32;
  if (name == "float16" || name == "fp16" || name == "half") return DType::kFloat16;
  if (name == "bfloat16" || name == "bf16") return DType::kBFloat16;
  if (name == "int8") return DType::kInt8;
  if (name == "fp8_e4m3" || name == "fp8" || name == "fp8_e4m3fn") return DType::kFp8E4M3;
  PAGEDKV_CHECK_ARG(
      false, "unknown dtype '{}' (expected float32, float16, bfloat16, int8 or fp8_e4m3)", name);
  return DType::kFloat32;
}

float fp16_to_float(uint16_t h) { return detail::fp16_to_float_inline(h); }

uint16_t float_to_fp16(float f) { return detail::float_to_fp16_inline(f); }

float fp8_e4m3_to_float(uint8_t v) { return kFp8Table[v]; }

uint8_t float_to_fp8_e4m3(float f) { return detail::float_to_fp8_e4m3_inline(f); }

}  // namespace pagedkv
