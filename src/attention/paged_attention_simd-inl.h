// SIMD building blocks of the paged-attention kernels (paged_attention_kernels.cpp), compiled
// once per Highway target: element loads and dequantization, walking a head's keys through
// the page table, and the register-tiled dot-product / P.V micro-kernels of both kernel
// shapes. Every block accumulates in a fixed order that depends only on its arguments.
//
// Included inside Highway's per-target passes (foreach_target), hence the toggle guard
// instead of #pragma once.

// Per-target include guard (Highway convention).
#if defined(PAGEDKV_SRC_PAGED_ATTENTION_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef PAGEDKV_SRC_PAGED_ATTENTION_SIMD_INL_H_
#undef PAGEDKV_SRC_PAGED_ATTENTION_SIMD_INL_H_
#else
#define PAGEDKV_SRC_PAGED_ATTENTION_SIMD_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "paged_attention_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace pagedkv::attention_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// Cache elements -> float lanes.

template <DType T>
struct ElemOf;
template <>
struct ElemOf<DType::kFloat32> {
  using type = float;
};
template <>
struct ElemOf<DType::kFloat16> {
  using type = hwy::float16_t;
};
template <>
struct ElemOf<DType::kBFloat16> {
  using type = hwy::bfloat16_t;
};
template <>
struct ElemOf<DType::kInt8> {
  using type = int8_t;
};
template <>
struct ElemOf<DType::kFp8E4M3> {
  using type = uint8_t;
};

HWY_INLINE VF LoadF(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF LoadF(DF df, const hwy::bfloat16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), p));
}
HWY_INLINE VF LoadF(DF df, const hwy::float16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(), p));
}
HWY_INLINE VF LoadF(DF df, const int8_t* p) {
  const DI di;
  return hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(hn::Rebind<int8_t, DF>(), p)));
}
// fp8 e4m3fn through the float16 bit pattern: the sign-extended byte shifted left by 7 puts the
// sign in bit 15 (and 14, cleared), the exponent in bits 13-10 and the mantissa in bits 9-7, a
// float16 with exponent bias 15 instead of 7. Its value is the fp8 value times 2^-8, exactly,
// for normals and subnormals alike; kFp8LoadUnit folds the 2^8 into the scale (SlotScale), so
// a scaled result rounds exactly as value * scale would. 0x7f/0xff (NaN) would land on a finite
// float16 and are mapped to NaN explicitly. Highway's scalar float16 conversion has no NaN, so
// the scalar target builds the float's fields directly.
constexpr float kFp8LoadUnit = 256.0f;
HWY_INLINE VF LoadF(DF df, const uint8_t* p) {
#if HWY_TARGET == HWY_SCALAR
  const hn::Rebind<uint32_t, DF> du;
  const auto x = hn::PromoteTo(du, hn::LoadU(hn::Rebind<uint8_t, DF>(), p));
  const auto mag = hn::And(x, hn::Set(du, 0x7fu));
  const auto bits =
      hn::Or(hn::ShiftLeft<20>(mag), hn::ShiftLeft<24>(hn::And(x, hn::Set(du, 0x80u))));
  const VF v = hn::Mul(hn::BitCast(df, bits), hn::Set(df, 0x1p112f));  // 2^(120 - 8)
  const auto is_nan = hn::RebindMask(df, hn::Eq(mag, hn::Set(du, 0x7fu)));
  return hn::IfThenElse(is_nan, hn::Set(df, std::numeric_limits<float>::quiet_NaN()), v);
#else
  const hn::Rebind<int16_t, DF> d16;
  const auto x =
      hn::PromoteTo(d16, hn::LoadU(hn::Rebind<int8_t, DF>(), reinterpret_cast<const int8_t*>(p)));
  const auto h = hn::And(hn::ShiftLeft<7>(x), hn::Set(d16, int16_t{-0x4001}));  // clear bit 14
  const auto nan_code = hn::Set(d16, int16_t{0x3F80});  // where 0x7f / 0xff land
  const auto nan_half = hn::Set(d16, int16_t{0x7E00});
  const auto fixed = hn::IfThenElse(hn::Eq(hn::And(h, nan_code), nan_code), nan_half, h);
  return hn::PromoteTo(df, hn::BitCast(hn::Rebind<hwy::float16_t, DF>(), fixed));
#endif
}

// AVX-512 only: score tiles of at most this many rows read bfloat16 keys in even/odd halves
// against queries in ToEvenOdd order (PrepareRowDot, DotAllRows, DotBlock). Wider tiles score
// 2 keys per block and keep the plain order: the split measured slower there.
constexpr int32_t kEvenOddMaxRows = 4;

#if HWY_TARGET == HWY_AVX3
// bfloat16 values in pairs of vectors: one 512-bit load holds 32 of them; the even-indexed ones
// widen to float by a shift (lane j: value 2j), the odd ones by clearing the low half of each
// 32-bit lane (lane j: value 2j + 1). That is 2 ops per 32 values where widening each half
// takes 4. Only the lanes' order differs, so each output element still accumulates the same
// products in the same order; StoreEvenOdd puts the elements back in place.
HWY_INLINE void LoadBf16EvenOdd(const hwy::bfloat16_t* p, __m512& even, __m512& odd) {
  const __m512i x = _mm512_loadu_si512(p);
  even = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
  odd = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(-65536)));  // 0xFFFF0000
}
// Query rows for bfloat16 keys: each full block of 32 values becomes its 16 even-indexed values
// then its 16 odd ones, the lanes LoadBf16EvenOdd gives the keys (a last block of 16 stays).
HWY_INLINE void ToEvenOdd(float* row, int32_t D) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int32_t d = 0; d + 32 <= D; d += 32) {
    const __m512 x = _mm512_loadu_ps(row + d), y = _mm512_loadu_ps(row + d + 16);
    _mm512_storeu_ps(row + d, _mm512_permutex2var_ps(x, even, y));
    _mm512_storeu_ps(row + d + 16, _mm512_permutex2var_ps(x, odd, y));
  }
}
// out[2j] = even[j], out[2j + 1] = odd[j] for j < 16.
HWY_INLINE void StoreEvenOdd(__m512 even, __m512 odd, float* out) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  _mm512_storeu_ps(out, _mm512_permutex2var_ps(even, lo, odd));
  _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(even, hi, odd));
}
#endif

// Calls f(column, run_length, first_slot) for each run of keys [a, b) that lies in one page.
template <class F>
HWY_INLINE void ForEachRun(const PagedKVView& kv, const int32_t* pages, int32_t a, int32_t b,
                           const F& f) {
  const int32_t ps = kv.page_size;
  for (int32_t k = a; k < b;) {
    const int32_t off = k % ps;
    const int32_t len = std::min(ps - off, b - k);
    f(k - a, len, int64_t{pages[k / ps]} * ps + off);
    k += len;
  }
}

// Per-slot dequantization factor for K (is_k) or V, applied to what LoadF returns.
template <DType T>
HWY_INLINE float SlotScale(const PagedKVView& kv, bool is_k, const float* scales, int64_t i,
                           int64_t stride) {
  if constexpr (T == DType::kInt8) return scales[i * stride];
  if constexpr (T == DType::kFp8E4M3) return (is_k ? kv.k_scale : kv.v_scale) * kFp8LoadUnit;
  (void)kv, (void)is_k, (void)scales, (void)i, (void)stride;
  return 1.0f;
}

// Walks a head's keys [key, key_end) in position order, tracking (page, offset) without
// divisions, and the K element offset (and with kScales the int8 scale index) by one add per
// key within a page. Pages past the one of key_end - 1 are never read.
template <bool kScales = false>
struct KeyCursor {
  KVStrides st;
  const int32_t* pages;
  int32_t page_size, head, page_idx, off, last_page;
  int64_t elem = 0;   // st.k_elem(slot, head) while page_idx <= last_page
  int64_t scale = 0;  // kScales: st.scale_index(slot, head) likewise

  KeyCursor(const KernelParams& p, const int32_t* pg, int32_t h, int32_t key, int32_t key_end)
      : st(p.st),
        pages(pg),
        page_size(p.kv.page_size),
        head(h),
        page_idx(key / p.kv.page_size),
        off(key % p.kv.page_size),
        last_page((key_end - 1) / p.kv.page_size) {
    if (key < key_end) Locate();
  }
  // Element offset of the K vector (V: + st.v_offset in v_base()).
  int64_t k_elem() const { return elem; }
  int64_t scale_index() const {
    static_assert(kScales);
    return scale;
  }
  void next() {
    if (++off < page_size) {
      elem += st.slot_stride;
      if constexpr (kScales) scale += st.scale_slot_stride;
      return;
    }
    off = 0;
    if (++page_idx <= last_page) Locate();
  }

 private:
  void Locate() {
    const int64_t slot = int64_t{pages[page_idx]} * page_size + off;
    elem = st.k_elem(slot, head);
    if constexpr (kScales) scale = st.scale_index(slot, head);
  }
};

// Pages are scattered, so the hardware prefetcher stops at every page boundary; decode
// prefetches the rows it will read next into L2 itself.
HWY_INLINE void PrefetchRow(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 2);
}

// Keys [k0, k1) of `chunk` that the tile reads.
struct ChunkRange {
  int32_t k0, k1;
};
HWY_INLINE ChunkRange RangeOf(const TileDesc& t, int32_t chunk) {
  return {std::max(chunk * kChunk, t.key_begin), std::min(chunk * kChunk + kChunk, t.key_end)};
}

// Keys [lo, hi) a query at `pos` sees (absolute positions).
HWY_INLINE int32_t VisibleLo(const KernelParams& p, int32_t pos) {
  return p.window > 0 ? std::max(0, pos - p.window + 1) : 0;
}

HWY_INLINE const float* QueryRow(const KernelParams& p, int64_t token, int32_t head, float* tmp) {
  const int64_t off = (token * p.num_q_heads + head) * p.head_dim;
  if (!p.query_bf16) return static_cast<const float*>(p.query) + off;
  const uint16_t* src = static_cast<const uint16_t*>(p.query) + off;
  for (int32_t d = 0; d < p.head_dim; ++d) tmp[d] = bf16_to_float(src[d]);
  return tmp;
}

// out[i * kChunk] = f * dot(q row i, k) for NR consecutive query rows.
// even_odd: q rows in ToEvenOdd order (bfloat16 keys of a tile of at most kEvenOddMaxRows rows).
template <int NR, typename E>
HWY_INLINE void DotRows(const float* q, int32_t D, const E* k, float f, float* out, bool even_odd) {
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  VF acc[NR];
  for (int i = 0; i < NR; ++i) acc[i] = hn::Zero(df);
  int32_t d = 0;
#if HWY_TARGET == HWY_AVX3
  if constexpr (std::is_same_v<E, hwy::bfloat16_t>) {
    for (; even_odd && d + 32 <= D; d += 32) {
      __m512 ke, ko;
      LoadBf16EvenOdd(k + d, ke, ko);
      for (int i = 0; i < NR; ++i) {
        const float* qi = q + int64_t{i} * D + d;
        acc[i].raw = _mm512_fmadd_ps(_mm512_loadu_ps(qi), ke, acc[i].raw);
        acc[i].raw = _mm512_fmadd_ps(_mm512_loadu_ps(qi + 16), ko, acc[i].raw);
      }
    }
  }
#else
  (void)even_odd;
#endif
  for (; d < D; d += N) {
    const VF kv = LoadF(df, k + d);
    for (int i = 0; i < NR; ++i)
      acc[i] = hn::MulAdd(hn::LoadU(df, q + int64_t{i} * D + d), kv, acc[i]);
  }
  for (int i = 0; i < NR; ++i) out[i * kChunk] = hn::GetLane(hn::SumOfLanes(df, acc[i])) * f;
}

template <typename E>
HWY_INLINE void DotAllRows(const float* q, int32_t R, int32_t D, const E* k, float f, float* out) {
  const bool eo =
      HWY_TARGET == HWY_AVX3 && std::is_same_v<E, hwy::bfloat16_t> && R <= kEvenOddMaxRows;
  int32_t r = 0;
  for (; r + 8 <= R; r += 8) DotRows<8>(q + int64_t{r} * D, D, k, f, out + r * kChunk, eo);
  const float* qr = q + int64_t{r} * D;
  float* o = out + r * kChunk;
  switch (R - r) {
    case 7: DotRows<7>(qr, D, k, f, o, eo); break;
    case 6: DotRows<6>(qr, D, k, f, o, eo); break;
    case 5: DotRows<5>(qr, D, k, f, o, eo); break;
    case 4: DotRows<4>(qr, D, k, f, o, eo); break;
    case 3: DotRows<3>(qr, D, k, f, o, eo); break;
    case 2: DotRows<2>(qr, D, k, f, o, eo); break;
    case 1: DotRows<1>(qr, D, k, f, o, eo); break;
    default: break;
  }
}

#if HWY_TARGET == HWY_AVX3
// 16 dot products at once, NK keys x NR query rows (NK * NR == 16), reduced together by a
// shuffle tree (45 ops instead of 16 separate 8-op reductions). The tree sends input vector
// c * 4 + b to lane b * 4 + c; DotSlot places dot (r, key) where it lands in lane r * NK + key,
// which makes each row's NK scores contiguous. Scores are stored unscaled: factors are
// applied per column afterwards (ScaleColumns).
template <int NK>
constexpr int DotSlot(int r, int i) {
  return ((r * NK + i) % 4) * 4 + (r * NK + i) / 4;
}

template <int NK>
HWY_INLINE void ReduceStore(const __m512 (&acc)[16], int32_t nrows, float* out) {
  __m512 w[8], z[4], u[2];
  for (int i = 0; i < 8; ++i)
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * i], acc[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(acc[2 * i], acc[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)
    z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i) {
    const __m512d a = _mm512_castps_pd(z[2 * i]), b = _mm512_castps_pd(z[2 * i + 1]);
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  const __m512 y =
      _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x88), _mm512_shuffle_ps(u[0], u[1], 0xDD));
  if constexpr (NK == 16) {
    _mm512_storeu_ps(out, y);
  } else if constexpr (NK == 8) {
    _mm256_storeu_ps(out, _mm512_castps512_ps256(y));
    if (nrows > 1) _mm256_storeu_ps(out + kChunk, _mm512_extractf32x8_ps(y, 1));
  } else if constexpr (NK == 4) {
    _mm_storeu_ps(out, _mm512_castps512_ps128(y));
    if (nrows > 1) _mm_storeu_ps(out + kChunk, _mm512_extractf32x4_ps(y, 1));
    if (nrows > 2) _mm_storeu_ps(out + 2 * kChunk, _mm512_extractf32x4_ps(y, 2));
    if (nrows > 3) _mm_storeu_ps(out + 3 * kChunk, _mm512_extractf32x4_ps(y, 3));
  } else {
    const __m128 x[4] = {_mm512_castps512_ps128(y), _mm512_extractf32x4_ps(y, 1),
                         _mm512_extractf32x4_ps(y, 2), _mm512_extractf32x4_ps(y, 3)};
    for (int b = 0; b < 4; ++b) {
      if (2 * b < nrows) _mm_storel_pi(reinterpret_cast<__m64*>(out + 2 * b * kChunk), x[b]);
      if (2 * b + 1 < nrows)
        _mm_storeh_pi(reinterpret_cast<__m64*>(out + (2 * b + 1) * kChunk), x[b]);
    }
  }
}

// 16 dot products at once: NK keys x NR query rows (NK * NR == 16).
//   q    NR query rows [dim] (a short group repeats a row; only rows < nrows are stored)
//   k    NK key rows;  out[r * kChunk + i] = dot(q row r, key i)
template <int NK, int NR, int VR, typename E>
HWY_INLINE void DotBlock(const float* const* q, int32_t D, const E* const* k, float* out) {
  static_assert(NK * NR == 16 && VR >= 1 && VR <= NR);
  const DF df;
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  // Each of the NK + VR vectors of a step is loaded once (a 512-bit load per FMA would bind
  // before the FMAs): the smaller side is held in registers while the larger side streams.
  // Rows past VR (a short last group) are not computed; their accumulators stay zero.
  // bfloat16 keys of tiles of at most kEvenOddMaxRows rows (RowDotScoreBlocks gives exactly
  // those tiles blocks of NR <= 4 rows, wider ones 8): blocks of 32 values in even/odd halves,
  // queries likewise.
  int32_t d = 0;
  if constexpr (std::is_same_v<E, hwy::bfloat16_t> && NR <= kEvenOddMaxRows) {
    for (; d + 32 <= D; d += 32) {
      __m512 qe[VR], qo[VR];  // VR <= NR <= 4 <= NK: the query side stays in registers
      for (int r = 0; r < VR; ++r) {
        qe[r] = _mm512_loadu_ps(q[r] + d);
        qo[r] = _mm512_loadu_ps(q[r] + d + 16);
      }
      for (int i = 0; i < NK; ++i) {
        __m512 ke, ko;
        LoadBf16EvenOdd(k[i] + d, ke, ko);
        for (int r = 0; r < VR; ++r) {
          __m512& a = acc[DotSlot<NK>(r, i)];
          a = _mm512_fmadd_ps(qo[r], ko, _mm512_fmadd_ps(qe[r], ke, a));
        }
      }
    }
  }
  for (; d < D; d += 16) {
    if constexpr (VR <= NK) {
      __m512 qv[VR];
      for (int r = 0; r < VR; ++r) qv[r] = _mm512_loadu_ps(q[r] + d);
      for (int i = 0; i < NK; ++i) {
        const __m512 kv = LoadF(df, k[i] + d).raw;
        for (int r = 0; r < VR; ++r)
          acc[DotSlot<NK>(r, i)] = _mm512_fmadd_ps(qv[r], kv, acc[DotSlot<NK>(r, i)]);
      }
    } else {
      __m512 kv[NK];
      for (int i = 0; i < NK; ++i) kv[i] = LoadF(df, k[i] + d).raw;
      for (int r = 0; r < VR; ++r) {
        const __m512 qv = _mm512_loadu_ps(q[r] + d);
        for (int i = 0; i < NK; ++i)
          acc[DotSlot<NK>(r, i)] = _mm512_fmadd_ps(qv, kv[i], acc[DotSlot<NK>(r, i)]);
      }
    }
  }
  ReduceStore<NK>(acc, VR, out);
}

// The same with AVX512-BF16 pair dot products, for bfloat16 queries over a bfloat16 cache
// (products of two bf16 values are exact in float32; no conversion of K). Rows past VR are
// not computed, as in DotBlock.
//   q    NR raw bf16 query rows [dim];  k  NK bf16 key rows;  out = dot (unscaled)
#define PAGEDKV_BF16_TARGET __attribute__((target(HWY_TARGET_STR ",avx512bf16")))
template <int NK, int NR, int VR>
PAGEDKV_BF16_TARGET HWY_INLINE void DotBlockBf16(const uint16_t* const* q, int32_t D,
                                                 const uint16_t* const* k, float* out) {
  static_assert(NK * NR == 16 && VR >= 1 && VR <= NR);
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  for (int32_t d = 0; d < D; d += 32) {
    const __mmask32 m = D - d >= 32 ? ~__mmask32{0} : __mmask32{0xFFFF};
    auto load = [m](const uint16_t* p) {
      return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, p));
    };
    if constexpr (VR <= NK) {  // as in DotBlock: every vector of a step loaded once
      __m512bh qv[VR];
      for (int r = 0; r < VR; ++r) qv[r] = load(q[r] + d);
      for (int i = 0; i < NK; ++i) {
        const __m512bh kv = load(k[i] + d);
        for (int r = 0; r < VR; ++r)
          acc[DotSlot<NK>(r, i)] = _mm512_dpbf16_ps(acc[DotSlot<NK>(r, i)], qv[r], kv);
      }
    } else {
      __m512bh kv[NK];
      for (int i = 0; i < NK; ++i) kv[i] = load(k[i] + d);
      for (int r = 0; r < VR; ++r) {
        const __m512bh qv = load(q[r] + d);
        for (int i = 0; i < NK; ++i)
          acc[DotSlot<NK>(r, i)] = _mm512_dpbf16_ps(acc[DotSlot<NK>(r, i)], qv, kv[i]);
      }
    }
  }
  ReduceStore<NK>(acc, VR, out);
}

// Scores of NK keys for rows [r0, r0 + 16 / NK) of the tile (the last group computes only
// the rows it has), bf16 pair dots.
template <int NK, int VR = 16 / NK>
PAGEDKV_BF16_TARGET HWY_INLINE void DotRowGroupBf16(const uint16_t* q, int32_t R, int32_t D,
                                                    int32_t r0, const uint16_t* const* k,
                                                    float* out) {
  constexpr int NR = 16 / NK;
  if constexpr (VR > 1) {
    if (R - r0 < VR) return DotRowGroupBf16<NK, VR - 1>(q, R, D, r0, k, out);
  }
  const uint16_t* rows[NR];
  for (int r = 0; r < NR; ++r) rows[r] = q + int64_t{std::min(r0 + r, R - 1)} * D;
  DotBlockBf16<NK, NR, VR>(rows, D, k, out + int64_t{r0} * kChunk);
}

template <int NK>
PAGEDKV_BF16_TARGET void DotKeysBf16(const uint16_t* q, int32_t R, int32_t D,
                                     const uint16_t* const* k, float* out) {
  for (int32_t r0 = 0; r0 < R; r0 += 16 / NK) DotRowGroupBf16<NK>(q, R, D, r0, k, out);
}
#undef PAGEDKV_BF16_TARGET

// Scores of NK consecutive keys for every row of the tile, in groups of NR rows (the last
// group computes only the rows it has).
template <int NK, typename E, int VR = 16 / NK>
HWY_INLINE void DotRowGroup(const float* q, int32_t R, int32_t D, int32_t r0, const E* const* k,
                            float* out) {
  constexpr int NR = 16 / NK;
  if constexpr (VR > 1) {
    if (R - r0 < VR) return DotRowGroup<NK, E, VR - 1>(q, R, D, r0, k, out);
  }
  const float* rows[NR];
  for (int r = 0; r < NR; ++r) rows[r] = q + int64_t{std::min(r0 + r, R - 1)} * D;
  DotBlock<NK, NR, VR>(rows, D, k, out + int64_t{r0} * kChunk);
}

template <int NK, typename E>
HWY_INLINE void DotKeys(const float* q, int32_t R, int32_t D, const E* const* k, float* out) {
  for (int32_t r0 = 0; r0 < R; r0 += 16 / NK) DotRowGroup<NK, E>(q, R, D, r0, k, out);
}
#endif

// Prefetches the K rows of keys [first, key_end) of a tile, one row per Step(). A chunk's P.V
// pass reads V rows the score pass already prefetched and issues no memory traffic of its
// own; stepping this once per key there starts the next chunk's K rows instead of leaving
// memory idle (used where memory binds: float32 caches).
template <typename E>
struct NextKeyPrefetch {
  const E* kbase;
  int64_t row_bytes;
  int32_t key, key_end;
  KeyCursor<> cur;

  NextKeyPrefetch(const KernelParams& p, const TileDesc& t, int32_t first)
      : kbase(static_cast<const E*>(p.kv.k_data)),
        row_bytes(int64_t{p.head_dim} * static_cast<int64_t>(sizeof(E))),
        key(first),
        key_end(t.key_end),
        cur(p, t.pages, t.kv_head, first, t.key_end) {}
  HWY_INLINE void Step() {
    if (key >= key_end) return;
    PrefetchRow(kbase + cur.k_elem(), row_bytes);
    cur.next();
    ++key;
  }
};

// acc[i, d0 .. d0 + NV * N) = sum over keys [a, b) of P[i, key] * V[key, d0 ..]; `next`, if
// set, steps once per key.
template <int NR, int NV, typename E>
HWY_INLINE void PvRows(const KernelParams& p, const TileDesc& t, const float* prob, int32_t k0,
                       int32_t a, int32_t b, int32_t d0, float* acc, NextKeyPrefetch<E>* next) {
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  const PagedKVView& kv = p.kv;
  const KVStrides& st = p.st;
  const E* vbase = static_cast<const E*>(kv.v_base());
  // AVX-512 bfloat16 V: vectors 2m and 2m + 1 hold the even and odd elements of values
  // [32m, 32m + 32) (LoadBf16EvenOdd); an odd NV's last vector is loaded as usual.
  constexpr int kPairs = HWY_TARGET == HWY_AVX3 && std::is_same_v<E, hwy::bfloat16_t> ? NV / 2 : 0;
  VF sum[NR][NV];
  for (int i = 0; i < NR; ++i)
    for (int v = 0; v < NV; ++v) sum[i][v] = hn::Zero(df);
  ForEachRun(kv, t.pages, a, b, [&](int32_t j0, int32_t len, int64_t slot) {
    const E* vp = vbase + st.v_elem(slot, t.kv_head) + d0;
    const float* pc = prob + (a - k0) + j0;
    for (int32_t i = 0; i < len; ++i, vp += st.slot_stride, ++pc) {
      if (next) next->Step();
      VF x[NV];
#if HWY_TARGET == HWY_AVX3
      if constexpr (kPairs > 0) {
        for (int m = 0; m < kPairs; ++m)
          LoadBf16EvenOdd(vp + 2 * m * N, x[2 * m].raw, x[2 * m + 1].raw);
      }
#endif
      for (int v = 2 * kPairs; v < NV; ++v) x[v] = LoadF(df, vp + v * N);
      for (int r = 0; r < NR; ++r) {
        const VF pr = hn::Set(df, pc[r * kChunk]);
        for (int v = 0; v < NV; ++v) sum[r][v] = hn::MulAdd(pr, x[v], sum[r][v]);
      }
    }
  });
  for (int r = 0; r < NR; ++r) {
    float* out = acc + int64_t{r} * p.head_dim + d0;
#if HWY_TARGET == HWY_AVX3
    for (int m = 0; m < kPairs; ++m)
      StoreEvenOdd(sum[r][2 * m].raw, sum[r][2 * m + 1].raw, out + 2 * m * N);
#endif
    for (int v = 2 * kPairs; v < NV; ++v) hn::StoreU(sum[r][v], df, out + v * N);
  }
}

// P.V of NR rows, a pass per few vectors of V; `next` (if set) steps in the first pass.
template <int NR, typename E>
HWY_INLINE void PvRowGroup(const KernelParams& p, const TileDesc& t, const float* prob, int32_t k0,
                           int32_t a, int32_t b, float* acc, NextKeyPrefetch<E>* next) {
  const int32_t N = static_cast<int32_t>(hn::Lanes(DF()));
  const int32_t D = p.head_dim;
  for (int32_t d0 = 0; d0 < D;) {
    NextKeyPrefetch<E>* const pass_next = d0 == 0 ? next : nullptr;
    // Up to 4 rows: 4 vectors of V per pass; more rows: 2 (NR * NV accumulators in registers).
    // With 32 registers, up to 7 rows of float, float16 or bfloat16 V also take 4 and 8 rows
    // 3; 5-7 rows of int8 or fp8 V take 3 (their conversion needs registers of its own).
    const int32_t left = (D - d0) / N;
    constexpr bool kAvx3 = HWY_TARGET == HWY_AVX3;
    constexpr bool kWide = sizeof(E) >= 2;
    if constexpr (NR <= 4 || (kAvx3 && NR <= 7 && kWide)) {
      if (left >= 4) {
        PvRows<NR, 4, E>(p, t, prob, k0, a, b, d0, acc, pass_next);
        d0 += 4 * N;
        continue;
      }
    }
    if constexpr (kAvx3 && NR > 4 && (kWide ? NR == 8 : NR <= 7)) {
      if (left >= 3) {
        PvRows<NR, 3, E>(p, t, prob, k0, a, b, d0, acc, pass_next);
        d0 += 3 * N;
        continue;
      }
    }
    if (left >= 2) {
      PvRows<NR, 2, E>(p, t, prob, k0, a, b, d0, acc, pass_next);
      d0 += 2 * N;
    } else {
      PvRows<NR, 1, E>(p, t, prob, k0, a, b, d0, acc, pass_next);
      d0 += N;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pagedkv::attention_detail
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
