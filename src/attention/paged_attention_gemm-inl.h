// The gemm kernel shape of paged attention (prefill tiles: q_len * group >= kGemmMinRows), one
// KV chunk at a time: K/V rows as floats, S^T = K . Q^T over query lanes, a per-lane softmax
// with the causal / sliding-window mask, then P.V. Included by paged_attention_kernels.cpp
// inside Highway's per-target passes, after paged_attention_simd-inl.h (whose loads and helpers
// it uses), hence the toggle guard instead of #pragma once.
//
//   q   [dim, Rp]        scaled queries, transposed (query lanes contiguous; Rp: rows padded to
//                        a multiple of the lane count)
//   s   [kChunk, Rp]     S^T, then P^T
//   krow/vrow [kChunk]   float rows of K and V (the cache itself for float32)

// Per-target include guard (Highway convention).
#if defined(PAGEDKV_SRC_PAGED_ATTENTION_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef PAGEDKV_SRC_PAGED_ATTENTION_GEMM_INL_H_
#undef PAGEDKV_SRC_PAGED_ATTENTION_GEMM_INL_H_
#else
#define PAGEDKV_SRC_PAGED_ATTENTION_GEMM_INL_H_
#endif

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <algorithm>

#include "paged_attention_kernels.h"
#include "paged_attention_simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace pagedkv::attention_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Register tile: kMR rows x (up to 2 vectors) of accumulators (32 registers on AVX-512, else 16).
constexpr int kMR = HWY_TARGET == HWY_AVX3 ? 8 : 4;

// S^T[j, r0 .. r0 + NV * N) for NJ keys: sum over d of K[j, d] * Qt[d, r].
template <int NJ, int NV>
HWY_INLINE void QkBlock(const float* const* krow, const float* qt, int32_t Rp, int32_t D,
                        float* out) {
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  VF acc[NJ][NV];
  for (int i = 0; i < NJ; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = hn::Zero(df);
  for (int32_t d = 0; d < D; ++d) {
    VF q[NV];
    for (int v = 0; v < NV; ++v) q[v] = hn::LoadU(df, qt + int64_t{d} * Rp + v * N);
    for (int i = 0; i < NJ; ++i) {
      const VF k = hn::Set(df, krow[i][d]);
      for (int v = 0; v < NV; ++v) acc[i][v] = hn::MulAdd(k, q[v], acc[i][v]);
    }
  }
  for (int i = 0; i < NJ; ++i)
    for (int v = 0; v < NV; ++v) hn::StoreU(acc[i][v], df, out + int64_t{i} * Rp + v * N);
}

// QkBlock for nj keys, 1 <= nj <= NJ (kMR by default).
template <int NV, int NJ = kMR>
HWY_INLINE void QkKeys(int32_t nj, const float* const* krow, const float* qt, int32_t Rp, int32_t D,
                       float* out) {
  if constexpr (NJ > 1) {
    if (nj < NJ) return QkKeys<NV, NJ - 1>(nj, krow, qt, Rp, D, out);
  }
  QkBlock<NJ, NV>(krow, qt, Rp, D, out);
}

// acc[r0 + i, d0 .. d0 + NV * N) = sum over keys j in [a, b) of P^T[j, r0 + i] * V[j, d0 ..].
template <int NR, int NV>
HWY_INLINE void PvBlock(const float* pt, int32_t Rp, const float* const* vrow, int32_t a, int32_t b,
                        int32_t d0, float* acc, int32_t D) {
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  VF sum[NR][NV];
  for (int i = 0; i < NR; ++i)
    for (int v = 0; v < NV; ++v) sum[i][v] = hn::Zero(df);
  for (int32_t j = a; j < b; ++j) {
    VF x[NV];
    for (int v = 0; v < NV; ++v) x[v] = hn::LoadU(df, vrow[j] + d0 + v * N);
    const float* pj = pt + int64_t{j} * Rp;
    for (int i = 0; i < NR; ++i) {
      const VF pr = hn::Set(df, pj[i]);
      for (int v = 0; v < NV; ++v) sum[i][v] = hn::MulAdd(pr, x[v], sum[i][v]);
    }
  }
  for (int i = 0; i < NR; ++i)
    for (int v = 0; v < NV; ++v) hn::StoreU(sum[i][v], df, acc + int64_t{i} * D + d0 + v * N);
}

template <int NR>
HWY_INLINE void PvRowsGemm(const float* pt, int32_t Rp, const float* const* vrow, int32_t a,
                           int32_t b, float* acc, int32_t D) {
  const int32_t N = static_cast<int32_t>(hn::Lanes(DF()));
  int32_t d0 = 0;
  for (; d0 + 2 * N <= D; d0 += 2 * N) PvBlock<NR, 2>(pt, Rp, vrow, a, b, d0, acc, D);
  if (d0 < D) PvBlock<NR, 1>(pt, Rp, vrow, a, b, d0, acc, D);
}

HWY_INLINE int32_t PaddedRows(int32_t rows) {
  const int32_t N = static_cast<int32_t>(hn::Lanes(DF()));
  return (rows + N - 1) / N * N;
}

void PrepareGemm(const KernelParams& p, const TileDesc& t, KernelScratch& s) {
  const int32_t G = p.group, D = p.head_dim, R = t.rows(G), Rp = PaddedRows(R);
  for (int32_t r = 0; r < Rp; ++r) {
    if (r < R) {
      const float* src = QueryRow(p, t.token_begin + r / G, t.kv_head * G + r % G, s.kf);
      for (int32_t d = 0; d < D; ++d) s.q[int64_t{d} * Rp + r] = src[d] * p.scale;
      s.row_pos[r] = t.first_pos + r / G;
    } else {
      for (int32_t d = 0; d < D; ++d) s.q[int64_t{d} * Rp + r] = 0.0f;
      s.row_pos[r] = -1;  // padding: sees no key
    }
  }
}

// Union of the keys rows [r0, r1) see, clipped to [k0, k1) (rows are sorted by position).
HWY_INLINE ChunkRange RowsRange(const KernelParams& p, const TileDesc& t, int32_t r0, int32_t r1,
                                int32_t k0, int32_t k1) {
  const int32_t R = t.rows(p.group);
  r1 = std::min(r1, R);
  if (r0 >= r1) return {k0, k0};
  const int32_t first = t.first_pos + r0 / p.group, last = t.first_pos + (r1 - 1) / p.group;
  return {std::max(k0, VisibleLo(p, first)), std::min(k1, last + 1)};
}

// Key row j of the chunk as floats, for keys [k0, k1): s.krow[j] / s.vrow[j] point into the
// cache itself for float32, else at rows dequantized into s.kf / s.vf.
template <DType T>
HWY_INLINE void GemmLoadKV(const KernelParams& p, const TileDesc& t, int32_t k0, int32_t k1,
                           KernelScratch& s) {
  using E = typename ElemOf<T>::type;
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  const PagedKVView& kv = p.kv;
  const KVStrides& st = p.st;
  const int32_t D = p.head_dim, h = t.kv_head;
  const E* kbase = static_cast<const E*>(kv.k_data);
  const E* vbase = static_cast<const E*>(kv.v_base());
  ForEachRun(kv, t.pages, k0, k1, [&](int32_t j0, int32_t len, int64_t slot) {
    const E* kp = kbase + st.k_elem(slot, h);
    const E* vp = vbase + st.v_elem(slot, h);
    if constexpr (T == DType::kFloat32) {
      for (int32_t i = 0; i < len; ++i) {
        s.krow[j0 + i] = kp + i * st.slot_stride;
        s.vrow[j0 + i] = vp + i * st.slot_stride;
      }
      return;
    }
    const int64_t si = T == DType::kInt8 ? st.scale_index(slot, h) : 0;
    for (int32_t i = 0; i < len; ++i) {
      float* kd = s.kf + int64_t{j0 + i} * D;
      float* vd = s.vf + int64_t{j0 + i} * D;
      const E* ks = kp + i * st.slot_stride;
      const E* vs = vp + i * st.slot_stride;
      if constexpr (dtype_is_quantized(T)) {
        const int64_t ss = st.scale_slot_stride;
        const VF fk = hn::Set(df, SlotScale<T>(kv, true, kv.k_scales + si, i, ss));
        const VF fv = hn::Set(df, SlotScale<T>(kv, false, kv.v_scales + si, i, ss));
        for (int32_t d = 0; d < D; d += N) {
          hn::StoreU(hn::Mul(LoadF(df, ks + d), fk), df, kd + d);
          hn::StoreU(hn::Mul(LoadF(df, vs + d), fv), df, vd + d);
        }
      } else {
        for (int32_t d = 0; d < D; d += N) {
          hn::StoreU(LoadF(df, ks + d), df, kd + d);
          hn::StoreU(LoadF(df, vs + d), df, vd + d);
        }
      }
      s.krow[j0 + i] = kd;
      s.vrow[j0 + i] = vd;
    }
  });
}

// S^T = K . Q^T over key blocks x lane blocks that some row sees.
HWY_INLINE void GemmScores(const KernelParams& p, const TileDesc& t, int32_t k0, int32_t k1,
                           KernelScratch& s) {
  const int32_t N = static_cast<int32_t>(hn::Lanes(DF()));
  const int32_t D = p.head_dim, R = t.rows(p.group), Rp = PaddedRows(R), n = k1 - k0;
  for (int32_t j = 0; j < n; j += kMR) {
    const int32_t nj = std::min(kMR, n - j);
    for (int32_t r = 0; r < R; r += 2 * N) {
      const ChunkRange vis = RowsRange(p, t, r, r + 2 * N, k0, k1);
      if (k0 + j >= vis.k1 || k0 + j + nj <= vis.k0) continue;
      float* out = s.s + int64_t{j} * Rp + r;
      if (r + 2 * N <= Rp) {
        QkKeys<2>(nj, s.krow + j, s.q + r, Rp, D, out);
      } else {
        QkKeys<1>(nj, s.krow + j, s.q + r, Rp, D, out);
      }
    }
  }
}

// The query lanes (positions `pos`, window floor `pos_lo`) that see key `key`:
// pos_lo < key <= pos. The one causal / sliding-window mask of the gemm shape.
HWY_INLINE hn::Mask<DF> KeyVisible(int32_t key, hn::Vec<DI> pos, hn::Vec<DI> pos_lo) {
  const DF df;
  const auto kv_pos = hn::Set(DI(), key);
  return hn::RebindMask(df, hn::And(hn::Not(hn::Gt(kv_pos, pos)), hn::Gt(kv_pos, pos_lo)));
}

// Softmax of the lane block of rows [r, r + N) over the keys of its enclosing row group of
// max(N, kMR) rows, so that every P value the P.V blocks read is written.
HWY_INLINE void GemmSoftmaxLanes(const KernelParams& p, const TileDesc& t, int32_t r, int32_t k0,
                                 int32_t k1, KernelScratch& s, float* m, float* l) {
  const DF df;
  const DI di;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  const int32_t R = t.rows(p.group), Rp = PaddedRows(R);
  const int32_t group_rows = std::max(N, kMR);
  const int32_t g0 = r / group_rows * group_rows;
  const ChunkRange vis = RowsRange(p, t, g0, g0 + group_rows, k0, k1);
  const bool cap = p.soft_cap > 0.0f;
  const VF vcap = hn::Set(df, p.soft_cap), inv_cap = hn::Set(df, 1.0f / p.soft_cap);
  const VF neg_inf = hn::Set(df, kNegInf);
  const auto pos = hn::LoadU(di, s.row_pos + r);
  const auto pos_lo = hn::Sub(pos, hn::Set(di, p.window > 0 ? p.window : (1 << 30)));
  VF vmax = neg_inf;
  for (int32_t key = vis.k0; key < vis.k1; ++key) {
    float* row = s.s + int64_t{key - k0} * Rp + r;
    VF x = hn::LoadU(df, row);
    if (cap) {
      x = hn::Mul(vcap, hn::Tanh(df, hn::Mul(x, inv_cap)));
      hn::StoreU(x, df, row);
    }
    vmax = hn::Max(vmax, hn::IfThenElse(KeyVisible(key, pos, pos_lo), x, neg_inf));
  }
  VF vsum = hn::Zero(df);
  for (int32_t key = vis.k0; key < vis.k1; ++key) {
    float* row = s.s + int64_t{key - k0} * Rp + r;
    const VF e = hn::IfThenElseZero(KeyVisible(key, pos, pos_lo),
                                    hn::Exp(df, hn::Sub(hn::LoadU(df, row), vmax)));
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, df, row);
  }
  float lane_m[16], lane_l[16];
  hn::StoreU(vmax, df, lane_m);
  hn::StoreU(vsum, df, lane_l);
  for (int32_t i = 0; i < N && r + i < R; ++i) {
    m[r + i] = lane_m[i];
    l[r + i] = lane_l[i];
  }
}

// PvRowsGemm for nr rows, 1 <= nr <= NR (kMR by default).
template <int NR = kMR>
HWY_INLINE void PvRowsGemmUpTo(int32_t nr, const float* pt, int32_t Rp, const float* const* vrow,
                               int32_t a, int32_t b, float* out, int32_t D) {
  if constexpr (NR > 1) {
    if (nr < NR) return PvRowsGemmUpTo<NR - 1>(nr, pt, Rp, vrow, a, b, out, D);
  }
  PvRowsGemm<NR>(pt, Rp, vrow, a, b, out, D);
}

// O = P . V per block of kMR rows over the keys the block sees.
HWY_INLINE void GemmPv(const KernelParams& p, const TileDesc& t, int32_t k0, int32_t k1,
                       const KernelScratch& s, float* acc) {
  const int32_t D = p.head_dim, R = t.rows(p.group), Rp = PaddedRows(R);
  for (int32_t r = 0; r < R; r += kMR) {
    const int32_t nr = std::min(kMR, R - r);
    const ChunkRange vis = RowsRange(p, t, r, r + nr, k0, k1);
    float* out = acc + int64_t{r} * D;
    const int32_t a = vis.k0 - k0, b = vis.k1 - k0;
    PvRowsGemmUpTo(nr, s.s + r, Rp, s.vrow, a, b, out, D);
  }
}

// One chunk of a gemm tile: K/V as floats, S^T, softmax across query lanes, P.V.
template <DType T>
void ChunkGemm(const KernelParams& p, const TileDesc& t, int32_t chunk, float* state,
               KernelScratch& s) {
  const int32_t N = static_cast<int32_t>(hn::Lanes(DF()));
  const auto [k0, k1] = RangeOf(t, chunk);
  const int32_t R = t.rows(p.group);
  GemmLoadKV<T>(p, t, k0, k1, s);
  GemmScores(p, t, k0, k1, s);
  for (int32_t r = 0; r < R; r += N) GemmSoftmaxLanes(p, t, r, k0, k1, s, state, state + R);
  GemmPv(p, t, k0, k1, s, state + 2 * R);
}

}  // namespace HWY_NAMESPACE
}  // namespace pagedkv::attention_detail
HWY_AFTER_NAMESPACE();

#endif  // PAGEDKV_SRC_PAGED_ATTENTION_GEMM_INL_H_
