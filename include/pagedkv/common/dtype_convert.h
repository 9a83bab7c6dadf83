// Private to pagedkv: inline scalar conversions shared by dtype.cpp (the public, out-of-line
// entry points of dtype.h) and the write kernels, which call them per element and need them
// inlined. Semantics are documented in include/pagedkv/common/dtype.h.
#pragma once

#include <bit>
#include <cstdint>

namespace pagedkv::detail {

// Shifts `mant` right by `shift` (1..31) bits, rounding to nearest with ties to even.
inline constexpr uint32_t shift_round_nearest_even(uint32_t mant, int shift) {
  const uint32_t kept = mant >> shift;
  const uint32_t rem = mant & ((uint32_t{1} << shift) - 1);
  const uint32_t half = uint32_t{1} << (shift - 1);
  return kept + ((rem > half || (rem == half && (kept & 1u))) ? 1u : 0u);
}

inline float fp16_to_float_inline(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) {  // inf / NaN: keep the payload (a quiet NaN stays quiet)
    return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  }
  if (exp == 0) {
    if (mant == 0) return std::bit_cast<float>(sign);
    // Subnormal: normalise so that the leading one lands on bit 10.
    const int shift = std::countl_zero(mant) - 21;  // mant < 2^10 has >= 22 leading zeros
    mant = (mant << shift) & 0x3ffu;
    exp = static_cast<uint32_t>(1 - shift);
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
  }
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t float_to_fp16_inline(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) {  // NaN: keep the top payload bits, force quiet
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  }
  // 65520 (0x477ff000) is the midpoint between 65504 (max half, odd mantissa) and 2^16:
  // ties-to-even rounds it, and everything above, to infinity.
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a >= 0x38800000u) {  // >= 2^-14: normal half; rebias 127 -> 15 then round 13 bits away
    const uint32_t r = a - 0x38000000u;
    return static_cast<uint16_t>(sign | shift_round_nearest_even(r, 13));
  }
  // Subnormal half (code = value / 2^-24). Below 2^-25 (float exponent < 102) everything,
  // float subnormals included, rounds to zero; exactly 2^-25 ties to zero (even).
  const uint32_t exp = a >> 23;
  if (exp < 102) return sign;
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(sign | shift_round_nearest_even(mant, static_cast<int>(126 - exp)));
}

// Branch-free (selects only) so that loops over it vectorize.
inline uint8_t float_to_fp8_e4m3_inline(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7fffffffu;
  // Normal (|f| >= 2^-6): rebias 127 -> 7 and keep 3 mantissa bits, ties to even. Values just
  // under 448 round up to exactly 448 (0x7e), never into the NaN code.
  const uint32_t r = a - (120u << 23);
  const uint32_t normal = (r + 0x7ffffu + ((r >> 20) & 1u)) >> 20;
  // Subnormal: code = |f| * 2^9 rounded to nearest even (0..8; 8 is the smallest normal).
  // Adding 1.5 * 2^23 leaves no fraction bits, so the FPU rounds in nearest-even mode; below
  // 2^-10 everything (float subnormals included) rounds to zero and 2^-10 ties to zero.
  constexpr float kMagic = 0x1.8p23f;
  const uint32_t sub = std::bit_cast<uint32_t>(std::bit_cast<float>(a) * 512.0f + kMagic) -
                       std::bit_cast<uint32_t>(kMagic);
  uint32_t code = a >= 0x3c800000u ? normal : sub;
  code = a >= 0x43e00000u ? 0x7eu : code;  // saturate: +-448 and beyond, infinity included
  code = a > 0x7f800000u ? 0x7fu : code;   // NaN
  return static_cast<uint8_t>(sign | code);
}

}  // namespace pagedkv::detail
