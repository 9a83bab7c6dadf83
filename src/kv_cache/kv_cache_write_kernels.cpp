// The row loops of write_slots, compiled once per ISA level with Highway's foreach_target
// (AVX-512, AVX2, and the portable baseline) and picked at run time by write_slots_for. The
// contract is in kv_cache_write_kernels.h.
//
// The baseline target runs the scalar conversions of dtype_convert.h element by element; the
// SIMD targets compute the same bits with vector integer operations (bfloat16, fp8), the F16C
// conversions (float16; exact round to nearest even, with signalling-NaN payloads restored on
// the way in) and a rounding float-to-int conversion (int8). kv_cache_write_test.cpp compares
// every level against a naive writer, on special values too.

// Optimized even in debug builds; the ISA levels compiled (see the header).
#include "common/hwy_kernel_targets.h"  // IWYU pragma: keep

#undef HWY_TARGET_INCLUDE
// foreach_target.h re-includes this file by name (src/kv_cache/CMakeLists.txt gives this
// translation unit its own folder as an include directory) and must come first.
// clang-format off
#define HWY_TARGET_INCLUDE "kv_cache_write_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "kv_cache_write_kernels.h"
#include "pagedkv/common/dtype_convert.h"

HWY_BEFORE_NAMESPACE();
namespace pagedkv::kv_write_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------------------------
// Scalar reference: one element at a time, exactly dtype.h. The baseline target uses it for
// whole rows; SIMD targets for int8 rows whose scale is not a normal float (see QuantizeInt8).

template <DType In>
HWY_INLINE float LoadScalar(const char* src, int32_t i) {
  if constexpr (In == DType::kFloat32) {
    float f;
    std::memcpy(&f, src + 4 * static_cast<size_t>(i), 4);
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, src + 2 * static_cast<size_t>(i), 2);
    if constexpr (In == DType::kBFloat16) return bf16_to_float(h);
    return detail::fp16_to_float_inline(h);
  }
}

// Round half to even for |x| < 2^22 without a libm call (adding 1.5 * 2^23 leaves no fraction
// bits, so the FPU rounds in its default nearest-even mode).
HWY_INLINE float RoundHalfEvenSmall(float x) { return (x + 0x1.8p23f) - 0x1.8p23f; }

template <DType In>
void QuantizeInt8Scalar(const char* src, char* dst, int32_t dim, float* scale_out) {
  // max|x| over the bit patterns: for finite floats the order of |x| is the unsigned order of
  // (bits & 0x7fffffff).
  uint32_t amax_bits = 0;
  for (int32_t i = 0; i < dim; ++i) {
    amax_bits = std::max(amax_bits, std::bit_cast<uint32_t>(LoadScalar<In>(src, i)) & 0x7fffffffu);
  }
  const float amax = std::bit_cast<float>(amax_bits);
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int32_t i = 0; i < dim; ++i) {
    const float q = std::clamp(RoundHalfEvenSmall(LoadScalar<In>(src, i) * inv), -127.0f, 127.0f);
    // q is NaN only for 0 * inf (a zero in a row whose inverse scale overflows): code 0.
    dst[i] = static_cast<char>(q == q ? static_cast<int8_t>(q) : 0);
  }
  *scale_out = amax / 127.0f;
}

template <DType In, DType Out>
void ConvertRowScalar(const char* src, char* dst, int32_t dim, float fp8_scale, float* scale_out) {
  if constexpr (Out == DType::kInt8) {
    QuantizeInt8Scalar<In>(src, dst, dim, scale_out);
  } else {
    for (int32_t i = 0; i < dim; ++i) {
      const float x = LoadScalar<In>(src, i);
      if constexpr (Out == DType::kFloat32) {
        std::memcpy(dst + 4 * static_cast<size_t>(i), &x, 4);
      } else if constexpr (Out == DType::kFp8E4M3) {
        dst[i] = static_cast<char>(detail::float_to_fp8_e4m3_inline(x / fp8_scale));
      } else {
        const uint16_t h =
            Out == DType::kBFloat16 ? float_to_bf16(x) : detail::float_to_fp16_inline(x);
        std::memcpy(dst + 2 * static_cast<size_t>(i), &h, 2);
      }
    }
  }
}

#if HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR

template <DType In, DType Out, int32_t kDim, bool kBf16Hw>
HWY_INLINE void ConvertRow(const char* src, char* dst, int32_t dim, float fp8_scale,
                           float* scale_out) {
  ConvertRowScalar<In, Out>(src, dst, kDim > 0 ? kDim : dim, fp8_scale, scale_out);
}

#else  // SIMD targets

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using DU = hn::RebindToUnsigned<DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;
using VU = hn::Vec<DU>;

// Lanes(DF) consecutive elements of a row, widened to float.
template <DType In>
HWY_INLINE VF LoadF(const char* src) {
  const DF df;
  if constexpr (In == DType::kFloat32) {
    return hn::LoadU(df, reinterpret_cast<const float*>(src));
  } else {
    const DU du;
    const hn::Rebind<uint16_t, DF> d16;
    const auto h = hn::LoadU(d16, reinterpret_cast<const uint16_t*>(src));
    if constexpr (In == DType::kBFloat16) {
      return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, h)));
    } else {
      const hn::Rebind<hwy::float16_t, DF> df16;
      const VF f = hn::PromoteTo(df, hn::BitCast(df16, h));
      // F16C quiets signalling NaNs; dtype.h keeps every NaN payload as it is.
      const auto is_nan = hn::IsNaN(f);
      if (HWY_LIKELY(hn::AllFalse(df, is_nan))) return f;
      const VU w = hn::PromoteTo(du, h);
      const VU nan = hn::Or(
          hn::Or(hn::ShiftLeft<16>(hn::And(w, hn::Set(du, 0x8000))), hn::Set(du, 0x7f800000u)),
          hn::ShiftLeft<13>(hn::And(w, hn::Set(du, 0x3ff))));
      return hn::IfThenElse(is_nan, hn::BitCast(df, nan), f);
    }
  }
}

// float_to_bf16 of every lane, in the low 16 bits of each 32-bit lane.
HWY_INLINE VI Bf16Bits(VF v) {
  const DU du;
  const DI di;
  const VU u = hn::BitCast(du, v);
  const VU odd = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1));
  const VU rounded = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du, 0x7fff), odd)));
  const VU quiet_nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du, 0x40));
  const auto is_nan =
      hn::Gt(hn::BitCast(di, hn::And(u, hn::Set(du, 0x7fffffffu))), hn::Set(di, 0x7f800000));
  return hn::BitCast(di, hn::IfThenElse(hn::RebindMask(du, is_nan), quiet_nan, rounded));
}

// float_to_fp8_e4m3 of every lane. Normal and subnormal codes come from one float addition:
// with c = 2^(max(e, -6) + 20) (e the exponent of |x|), |x| + c rounds |x| to the fp8 grid
// (3 mantissa bits, or multiples of 2^-9 below 2^-6), nearest even, and its low bits are the
// rounded significand in grid steps, m in [0, 16]. The code is (max(e, -6) + 6) * 8 + m; a
// carry into the next binade (m = 16) lands on the right code by itself.
HWY_INLINE VI Fp8Codes(VF x) {
  const DF df;
  const DI di;
  const VI u = hn::BitCast(di, x);
  const VI abs = hn::And(u, hn::Set(di, 0x7fffffff));
  // |x| >= 448 (infinity too) saturates to 448 = code 0x7e. NaN clamps there as well and is
  // told apart below: (abs + 0x7fffff) >> 31 is 1 exactly for NaN.
  const VI a = hn::Min(abs, hn::Set(di, 0x43e00000));
  const VI c = hn::Add(hn::Max(hn::And(a, hn::Set(di, 0x7f800000)), hn::Set(di, 121 << 23)),
                       hn::Set(di, 20 << 23));
  const VI m = hn::Sub(hn::BitCast(di, hn::Add(hn::BitCast(df, a), hn::BitCast(df, c))), c);
  // c >> 20 = (max(e, -6) + 147) * 8 (float bias 127 + 20), so (c >> 20) - 1128 is the
  // (max(e, -6) + 6) * 8 of the code.
  const VI code = hn::Add(m, hn::Sub(hn::ShiftRight<20>(c), hn::Set(di, 1128)));
  const DU du;
  const VU nan = hn::ShiftRight<31>(hn::BitCast(du, hn::Add(abs, hn::Set(di, 0x7fffff))));
  const VU sign = hn::And(hn::ShiftRight<24>(hn::BitCast(du, u)), hn::Set(du, 0x80));
  return hn::Or(code, hn::BitCast(di, hn::Or(nan, sign)));
}

// Nearest-even integer of every lane (the rounding mode of MXCSR, as dtype.h's scalar rounding);
// |v| < 2^31.
HWY_INLINE VI RoundToInt(VF v) {
#if HWY_TARGET == HWY_AVX3
  return VI{_mm512_cvtps_epi32(v.raw)};
#elif HWY_TARGET == HWY_AVX2
  return VI{_mm256_cvtps_epi32(v.raw)};
#else
  return hn::NearestInt(v);
#endif
}

// Stores the low 8 / 16 bits of every lane (each lane's value fits them).
HWY_INLINE void StoreLow8(VI v, char* dst) {
#if HWY_TARGET == HWY_AVX3
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(v.raw));  // vpmovdb
#else
  const hn::Rebind<uint8_t, DF> d8;
  hn::StoreU(hn::DemoteTo(d8, hn::And(v, hn::Set(DI(), 0xff))), d8,
             reinterpret_cast<uint8_t*>(dst));
#endif
}

HWY_INLINE void StoreLow16(VI v, char* dst) {
#if HWY_TARGET == HWY_AVX3
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_cvtepi32_epi16(v.raw));  // vpmovdw
#else
  const hn::Rebind<uint16_t, DF> d16;
  hn::StoreU(hn::DemoteTo(d16, v), d16, reinterpret_cast<uint16_t*>(dst));
#endif
}

// x / scale, the division of dtype.h's fp8 conversion. For a power-of-two scale whose inverse
// is a normal float, x * (1 / scale) is the same exact scaling with the same rounding, and a
// multiplication is several times cheaper than a division.
struct Fp8Scale {
  VF scale;
  VF inverse;
  bool exact_inverse;
  explicit Fp8Scale(float s) : scale(hn::Set(DF(), s)), inverse(hn::Set(DF(), 1.0f / s)) {
    const uint32_t bits = std::bit_cast<uint32_t>(s);
    const uint32_t exp = (bits >> 23) & 0xffu;
    exact_inverse = (bits & 0x807fffffu) == 0 && exp >= 1 && exp <= 253;
  }
  HWY_INLINE VF Apply(VF x) const {
    return exact_inverse ? hn::Mul(x, inverse) : hn::Div(x, scale);
  }
};

#if HWY_TARGET == HWY_AVX3
// AVX512-BF16's VCVTNEPS2BF16 rounds to nearest even and quiets NaNs exactly as float_to_bf16
// does, but flushes subnormal inputs to zero: a vector holding one takes the integer path.
// The instruction is written as assembly: its intrinsic would need every function it is inlined
// through compiled for AVX512-BF16, and the AVX-512 target runs on CPUs without it too (this
// path is taken only at Isa::kAvx512Bf16).
HWY_INLINE void StoreBf16Hw(VF v, char* dst) {
  if (HWY_UNLIKELY(_mm512_fpclass_ps_mask(v.raw, 0x20) != 0)) {  // 0x20: subnormal
    StoreLow16(Bf16Bits(v), dst);
    return;
  }
  __m256i h;
  asm("vcvtneps2bf16 %1, %0" : "=v"(h) : "v"(v.raw));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), h);
}
#endif

// Stores the lanes of v converted to Out (float32, float16, bfloat16 or fp8) at dst. kBf16Hw:
// bfloat16 through AVX512-BF16 (AVX-512 target, in functions compiled for it).
template <DType Out, bool kBf16Hw>
HWY_INLINE void StoreF(VF v, const Fp8Scale& scale, char* dst) {
  const DF df;
  if constexpr (Out == DType::kFloat32) {
    hn::StoreU(v, df, reinterpret_cast<float*>(dst));
  } else if constexpr (Out == DType::kFloat16) {
    const hn::Rebind<hwy::float16_t, DF> df16;
    hn::StoreU(hn::DemoteTo(df16, v), df16, reinterpret_cast<hwy::float16_t*>(dst));
  } else if constexpr (Out == DType::kBFloat16) {
#if HWY_TARGET == HWY_AVX3
    if constexpr (kBf16Hw) {
      StoreBf16Hw(v, dst);
      return;
    }
#endif
    StoreLow16(Bf16Bits(v), dst);
  } else {
    static_assert(Out == DType::kFp8E4M3);
    StoreLow8(Fp8Codes(scale.Apply(v)), dst);
  }
}

// Runs fn(src, dst) on every whole vector of a row of kDim (> 0) or dim elements (InSize /
// OutSize bytes each); a partial last vector runs on a zero-padded copy of its elements.
template <size_t InSize, size_t OutSize, int32_t kDim, class Fn>
HWY_INLINE void ForEachVector(const char* src, char* dst, int32_t dim, const Fn& fn) {
  const size_t n = kDim > 0 ? static_cast<size_t>(kDim) : static_cast<size_t>(dim);
  constexpr size_t N = hn::MaxLanes(DF());
  size_t i = 0;
  for (; i + N <= n; i += N) fn(src + i * InSize, dst + i * OutSize);
  if (i < n) {
    alignas(64) char in[HWY_MAX_BYTES] = {};
    alignas(64) char out[HWY_MAX_BYTES];
    std::memcpy(in, src + i * InSize, (n - i) * InSize);
    fn(in, out);
    if (dst != nullptr) std::memcpy(dst + i * OutSize, out, (n - i) * OutSize);
  }
}

template <DType In, int32_t kDim>
HWY_INLINE void QuantizeInt8(const char* src, char* dst, int32_t dim, float* scale_out) {
  constexpr size_t kIn = In == DType::kFloat32 ? 4 : 2;
  const DI di;
  const DF df;
  VI vmax = hn::Zero(di);
  ForEachVector<kIn, 1, kDim>(src, nullptr, dim, [&](const char* s, char*) {
    vmax = hn::Max(vmax, hn::And(hn::BitCast(di, LoadF<In>(s)), hn::Set(di, 0x7fffffff)));
  });
  const float amax = std::bit_cast<float>(hn::GetLane(hn::MaxOfLanes(di, vmax)));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  // With a finite inv, |x * inv| <= 127 (1 + 2^-24)^2 < 127.5: rounding to the nearest integer
  // needs no clamp. An infinite inv (amax below 127 / FLT_MAX) or a NaN takes the scalar path,
  // whose clamp and conversion handle infinite and NaN products.
  if (HWY_UNLIKELY(!(inv <= std::numeric_limits<float>::max()))) {
    QuantizeInt8Scalar<In>(src, dst, kDim > 0 ? kDim : dim, scale_out);
    return;
  }
  const VF vinv = hn::Set(df, inv);
  ForEachVector<kIn, 1, kDim>(src, dst, dim, [&](const char* s, char* d) {
    StoreLow8(RoundToInt(hn::Mul(LoadF<In>(s), vinv)), d);
  });
  *scale_out = amax / 127.0f;
}

template <DType In, DType Out, int32_t kDim, bool kBf16Hw>
HWY_INLINE void ConvertRow(const char* src, char* dst, int32_t dim, float fp8_scale,
                           float* scale_out) {
  constexpr size_t kIn = In == DType::kFloat32 ? 4 : 2;
  if constexpr (Out == DType::kInt8) {
    QuantizeInt8<In, kDim>(src, dst, dim, scale_out);
  } else {
    constexpr size_t kOut = Out == DType::kFloat32 ? 4 : (Out == DType::kFp8E4M3 ? 1 : 2);
    const Fp8Scale scale(fp8_scale);
    ForEachVector<kIn, kOut, kDim>(src, dst, dim, [&scale](const char* s, char* d) {
      StoreF<Out, kBf16Hw>(LoadF<In>(s), scale, d);
    });
  }
}

#endif  // SIMD targets

// ---------------------------------------------------------------------------------------------
// Row operations and the loops over tokens and heads.

// Input dtype == cache dtype: the row's element codes, copied. Head rows are short (64..2048
// bytes): copies of a fixed size compile to inline vector moves.
template <size_t kBytes>
struct CopyRow {
  size_t bytes;
  HWY_INLINE void operator()(const char* src, char* dst, float*, float) const {
    std::memcpy(dst, src, kBytes > 0 ? kBytes : bytes);
  }
};

template <DType In, DType Out, int32_t kDim, bool kBf16Hw>
struct ConvertRowOp {
  int32_t dim;
  HWY_INLINE void operator()(const char* src, char* dst, float* scale, float fp8_scale) const {
    ConvertRow<In, Out, kDim, kBf16Hw>(src, dst, dim, fp8_scale, scale);
  }
};

// The rows of all heads of one token: `row_bytes` apart in the input, `head_bytes` apart in the
// cache, int8 scales `scale_step` apart (scale null otherwise).
template <class RowOp>
HWY_INLINE void WriteHeads(const RowOp& row, const char* src, size_t row_bytes, char* dst,
                           size_t head_bytes, float* scale, int64_t scale_step, float fp8_scale,
                           int32_t heads) {
  for (int32_t h = 0; h < heads; ++h) {
    row(src, dst, scale, fp8_scale);
    src += row_bytes;
    dst += head_bytes;
    if (scale != nullptr) scale += scale_step;
  }
}

// Token by token, K then V of every head: the input is read once, in order.
template <class RowOp>
HWY_INLINE void WriteTokenMajor(const WritePlan& p, int64_t slot_begin, int64_t slot_end,
                                const RowOp& row) {
  const size_t in_token = static_cast<size_t>(p.heads) * p.in_row_bytes;
  const bool int8 = p.k_scales != nullptr;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t s = p.slots[t];
    if (s < slot_begin || s >= slot_end) continue;
    const size_t in_off = static_cast<size_t>(t) * in_token;
    const size_t out_off = static_cast<size_t>(s) * p.slot_bytes;
    const int64_t scale_off = s * p.scale_slot_stride;
    WriteHeads(row, p.key + in_off, p.in_row_bytes, p.k_base + out_off, p.head_bytes,
               int8 ? p.k_scales + scale_off : nullptr, p.scale_head_stride, p.k_scale, p.heads);
    WriteHeads(row, p.value + in_off, p.in_row_bytes, p.v_base + out_off, p.head_bytes,
               int8 ? p.v_scales + scale_off : nullptr, p.scale_head_stride, p.v_scale, p.heads);
  }
}

// Blocks of p.block_tokens tokens, head by head: K rows of head 0 of the block's tokens, then
// head 1, ..., then the V rows likewise.
template <class RowOp>
HWY_INLINE void WriteBlocks(const WritePlan& p, int64_t slot_begin, int64_t slot_end,
                            const RowOp& row) {
  const size_t in_token = static_cast<size_t>(p.heads) * p.in_row_bytes;
  for (int64_t b0 = 0; b0 < p.tokens; b0 += p.block_tokens) {
    const int64_t b1 = std::min(p.tokens, b0 + p.block_tokens);
    for (int32_t kv = 0; kv < 2; ++kv) {
      const char* in = kv == 0 ? p.key : p.value;
      char* out = kv == 0 ? p.k_base : p.v_base;
      float* scales = kv == 0 ? p.k_scales : p.v_scales;
      const float fp8_scale = kv == 0 ? p.k_scale : p.v_scale;
      for (int32_t h = 0; h < p.heads; ++h) {
        for (int64_t t = b0; t < b1; ++t) {
          const int64_t s = p.slots[t];
          if (s < slot_begin || s >= slot_end) continue;
          float* scale = scales != nullptr
                             ? scales + s * p.scale_slot_stride + h * p.scale_head_stride
                             : nullptr;
          row(in + static_cast<size_t>(t) * in_token + static_cast<size_t>(h) * p.in_row_bytes,
              out + static_cast<size_t>(s) * p.slot_bytes + static_cast<size_t>(h) * p.head_bytes,
              scale, fp8_scale);
        }
      }
    }
  }
}

template <class RowOp>
HWY_INLINE void WriteSlotsWith(const WritePlan& p, int64_t slot_begin, int64_t slot_end,
                               const RowOp& row) {
  if (p.block_tokens > 1) return WriteBlocks(p, slot_begin, slot_end, row);
  WriteTokenMajor(p, slot_begin, slot_end, row);
}

// Rows of the common head sizes get loops of a fixed trip count.
template <DType In, DType Out, bool kBf16Hw = false>
void WriteConvertedRows(const WritePlan& p, int64_t lo, int64_t hi) {
  switch (p.dim) {
    case 64: return WriteSlotsWith(p, lo, hi, ConvertRowOp<In, Out, 64, kBf16Hw>{p.dim});
    case 128: return WriteSlotsWith(p, lo, hi, ConvertRowOp<In, Out, 128, kBf16Hw>{p.dim});
    default: return WriteSlotsWith(p, lo, hi, ConvertRowOp<In, Out, 0, kBf16Hw>{p.dim});
  }
}

void WriteCopies(const WritePlan& p, int64_t lo, int64_t hi) {
  switch (p.in_row_bytes) {
    case 128: return WriteSlotsWith(p, lo, hi, CopyRow<128>{128});
    case 256: return WriteSlotsWith(p, lo, hi, CopyRow<256>{256});
    case 512: return WriteSlotsWith(p, lo, hi, CopyRow<512>{512});
    default: return WriteSlotsWith(p, lo, hi, CopyRow<0>{p.in_row_bytes});
  }
}

template <DType In>
void WriteConverted(const WritePlan& p, int64_t lo, int64_t hi) {
  switch (p.out) {
    case DType::kFloat32: return WriteConvertedRows<In, DType::kFloat32>(p, lo, hi);
    case DType::kFloat16: return WriteConvertedRows<In, DType::kFloat16>(p, lo, hi);
    case DType::kBFloat16: return WriteConvertedRows<In, DType::kBFloat16>(p, lo, hi);
    case DType::kInt8: return WriteConvertedRows<In, DType::kInt8>(p, lo, hi);
    case DType::kFp8E4M3: return WriteConvertedRows<In, DType::kFp8E4M3>(p, lo, hi);
  }
}

void WriteSlots(const WritePlan& p, int64_t lo, int64_t hi) {
  if (p.in == p.out) return WriteCopies(p, lo, hi);
  switch (p.in) {
    case DType::kFloat32: return WriteConverted<DType::kFloat32>(p, lo, hi);
    case DType::kFloat16: return WriteConverted<DType::kFloat16>(p, lo, hi);
    case DType::kBFloat16: return WriteConverted<DType::kBFloat16>(p, lo, hi);
    default: return;  // write_slots accepts float inputs only
  }
}

#if HWY_TARGET == HWY_AVX3
// Isa::kAvx512Bf16: conversions into bfloat16 with AVX512-BF16 (StoreBf16Hw).
void WriteSlotsBf16Hw(const WritePlan& p, int64_t lo, int64_t hi) {
  if (p.out != DType::kBFloat16 || p.in == p.out) return WriteSlots(p, lo, hi);
  if (p.in == DType::kFloat32)
    return WriteConvertedRows<DType::kFloat32, DType::kBFloat16, true>(p, lo, hi);
  return WriteConvertedRows<DType::kFloat16, DType::kBFloat16, true>(p, lo, hi);
}
#endif

WriteSlotsFn Table(bool bf16_hw) {
#if HWY_TARGET == HWY_AVX3
  if (bf16_hw) return &WriteSlotsBf16Hw;
#endif
  (void)bf16_hw;
  return &WriteSlots;
}

}  // namespace HWY_NAMESPACE
}  // namespace pagedkv::kv_write_detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pagedkv::kv_write_detail {

WriteSlotsFn write_slots_for(Isa isa) {
  const int64_t cpu = hwy::SupportedTargets();
  isa = std::min(isa, detected_isa());
#if HWY_TARGETS & HWY_AVX3
  if (isa >= Isa::kAvx512 && (cpu & HWY_AVX3) != 0) {
    return N_AVX3::Table(isa >= Isa::kAvx512Bf16);
  }
#endif
#if HWY_TARGETS & HWY_AVX2
  if (isa >= Isa::kAvx2 && (cpu & HWY_AVX2) != 0) return N_AVX2::Table(false);
#endif
  (void)cpu;
  return HWY_STATIC_DISPATCH(Table)(false);
}

}  // namespace pagedkv::kv_write_detail
#endif  // HWY_ONCE
