// SIMD kernels of paged attention, compiled once per ISA level with Highway's foreach_target
// (AVX-512, AVX2, scalar) and picked at run time by kernels_for(active_isa()). The contract is
// in paged_attention_kernels.h; the shapes of each kernel are repeated above it. This file
// holds the row-dot per-chunk kernel (decode and short requests), the tile driver, the state
// merge and the dispatch table; the gemm shape (prefill tiles) is in paged_attention_gemm-inl.h
// and the register-tiled building blocks in paged_attention_simd-inl.h.
//
// Arithmetic order, which batch invariance depends on, is fixed by the tile alone: every score
// is one dot product accumulated over head_dim in order, every softmax sum runs over the
// chunk's columns in order, every P.V element accumulates over keys in order (terms of masked
// keys are exact zeros), and chunk states are merged in chunk order.

// Optimized even in debug builds; the ISA levels compiled (see the header).
#include "common/hwy_kernel_targets.h"  // IWYU pragma: keep

#undef HWY_TARGET_INCLUDE
// foreach_target.h re-includes this file by name; src/attention/CMakeLists.txt gives this one
// translation unit its own folder as an include directory for that.
// foreach_target.h must come first, before the headers it re-includes: no include sorting here.
// clang-format off
#define HWY_TARGET_INCLUDE "paged_attention_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "paged_attention_gemm-inl.h"
#include "paged_attention_kernels.h"
#include "paged_attention_simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace pagedkv::attention_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------------------------
// Row-dot shape (decode and short chunks).
//   q  [rows, dim]      scaled queries
//   s  [rows, kChunk]   scores, then probabilities (column j = key k0 + j)

void PrepareRowDot(const KernelParams& p, const TileDesc& t, KernelScratch& s) {
  const DF df;
  const int32_t G = p.group, D = p.head_dim;
  if (p.bf16_dot) {  // raw bf16 rows [rows, dim]; the scale is applied to the scores
    auto* q = reinterpret_cast<uint16_t*>(s.q);
    for (int32_t r = 0; r < t.rows(G); ++r) {
      const int64_t off = ((t.token_begin + r / G) * p.num_q_heads + t.kv_head * G + r % G) * D;
      std::memcpy(q + int64_t{r} * D, static_cast<const uint16_t*>(p.query) + off,
                  sizeof(uint16_t) * D);
    }
    return;
  }
  const VF vscale = hn::Set(df, p.scale);
  for (int32_t r = 0; r < t.rows(G); ++r) {
    const float* src = QueryRow(p, t.token_begin + r / G, t.kv_head * G + r % G, s.kf);
    float* dst = s.q + int64_t{r} * D;
    for (int32_t d = 0; d < D; d += static_cast<int32_t>(hn::Lanes(df)))
      hn::StoreU(hn::Mul(hn::LoadU(df, src + d), vscale), df, dst + d);
#if HWY_TARGET == HWY_AVX3
    if (p.kv.dtype == DType::kBFloat16 && t.rows(G) <= kEvenOddMaxRows) ToEvenOdd(dst, D);
#endif
  }
}

// Softmax of row `row` (columns [c_lo, c_hi) visible, n columns in the chunk) in place.
HWY_INLINE void SoftmaxRow(const KernelParams& p, float* row, int32_t n, int32_t c_lo, int32_t c_hi,
                           float* m, float* l) {
  const DF df;
  const DI di;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  const int32_t n_ceil = (n + N - 1) / N * N;
  if (c_lo >= c_hi) {
    std::fill(row, row + n_ceil, 0.0f);
    *m = kNegInf;
    *l = 0.0f;
    return;
  }
  const int32_t j_lo = c_lo / N * N;
  std::fill(row, row + j_lo, 0.0f);
  const auto lo = hn::Set(di, c_lo - 1), hi = hn::Set(di, c_hi);
  const VF neg_inf = hn::Set(df, kNegInf);
  VF vmax = neg_inf;
  const bool cap = p.soft_cap > 0.0f;
  const VF vcap = hn::Set(df, p.soft_cap), inv_cap = hn::Set(df, 1.0f / p.soft_cap);
  // Vectors wholly inside [c_lo, c_hi) need no mask (the common case for decode).
  auto inside = [&](int32_t j) { return j >= c_lo && j + N <= c_hi; };
  auto mask_at = [&](int32_t j) {
    const auto col = hn::Iota(di, j);
    return hn::RebindMask(df, hn::And(hn::Gt(col, lo), hn::Lt(col, hi)));
  };
  for (int32_t j = j_lo; j < c_hi; j += N) {
    VF x = hn::LoadU(df, row + j);
    if (cap) {
      x = hn::Mul(vcap, hn::Tanh(df, hn::Mul(x, inv_cap)));
      hn::StoreU(x, df, row + j);
    }
    vmax = hn::Max(vmax, inside(j) ? x : hn::IfThenElse(mask_at(j), x, neg_inf));
  }
  const float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const VF vm = hn::Set(df, mx);
  VF vsum = hn::Zero(df);
  int32_t j = j_lo;
  for (; j < c_hi; j += N) {
    VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, row + j), vm));
    if (!inside(j)) e = hn::IfThenElseZero(mask_at(j), e);
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, df, row + j);
  }
  std::fill(row + j, row + n_ceil, 0.0f);
  *m = mx;
  *l = hn::GetLane(hn::SumOfLanes(df, vsum));
}

// Walks the keys of a chunk for the score pass. The cursor `pf` runs `ahead` keys in front of
// `cur` and prefetches their K rows (and int8 scales); visiting a key also prefetches its V row
// for the P.V pass.
template <DType T>
struct ScoreWalk {
  using E = typename ElemOf<T>::type;
  const PagedKVView& kv;
  const E* kbase;
  const E* vbase;
  int64_t v_offset;
  int64_t row_bytes;
  int32_t pf_key;
  int32_t key_end;
  KeyCursor<T == DType::kInt8> pf;
  KeyCursor<T == DType::kInt8> cur;

  ScoreWalk(const KernelParams& p, const TileDesc& t, int32_t k0)
      : kv(p.kv),
        kbase(static_cast<const E*>(p.kv.k_data)),
        vbase(static_cast<const E*>(p.kv.v_base())),
        v_offset(p.st.v_offset),
        row_bytes(int64_t{p.head_dim} * static_cast<int64_t>(sizeof(E))),
        pf_key(std::min(k0 + Ahead(row_bytes), t.key_end)),
        key_end(t.key_end),
        pf(p, t.pages, t.kv_head, pf_key, t.key_end),
        cur(p, t.pages, t.kv_head, k0, t.key_end) {}

  static int32_t Ahead(int64_t row_bytes) {
    return static_cast<int32_t>(std::max<int64_t>(4, 8192 / row_bytes));
  }
  // The current key's K row, after the prefetches.
  HWY_INLINE const E* Visit() {
    if (pf_key < key_end) {
      PrefetchRow(kbase + pf.k_elem(), row_bytes);
      if constexpr (T == DType::kInt8) {  // per-slot scales live apart from the rows
        const int64_t si = pf.scale_index();
        __builtin_prefetch(kv.k_scales + si, 0, 2);
        __builtin_prefetch(kv.v_scales + si, 0, 2);
      }
      pf.next();
      ++pf_key;
    }
    const int64_t e = cur.k_elem();
    PrefetchRow(vbase + e + v_offset, row_bytes);
    return kbase + e;
  }
  // The current key's dequantization factor (int8: per slot; fp8: per tensor), else `plain`.
  HWY_INLINE float KeyScale(float plain) const {
    if constexpr (T == DType::kInt8) return kv.k_scales[cur.scale_index()];
    if constexpr (T == DType::kFp8E4M3) return kv.k_scale * kFp8LoadUnit;
    return plain;
  }
  // The current key's V dequantization factor (quantized caches only).
  HWY_INLINE float ValueScale() const {
    if constexpr (T == DType::kInt8) return kv.v_scales[cur.scale_index()];
    return kv.v_scale * kFp8LoadUnit;
  }
  HWY_INLINE void Next() { cur.next(); }
};

// Per-key factors of a chunk, recorded by the score pass and applied to whole columns of the
// scores (K) or probabilities (V) with vector multiplies. A column holds one product of the
// unscaled value and its factor, exactly as if the factor had been applied per element.
struct ColumnScales {
  float k[kChunk];  // applied to columns [0, k_end) (the blocked score path)
  float v[kChunk];  // quantized caches: every column
  int32_t k_end = 0;
};

// s[r, j] *= col[j] for rows [0, R) and columns [0, n).
HWY_INLINE void ScaleColumns(float* s, int32_t R, int32_t n, const float* col) {
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  for (int32_t r = 0; r < R; ++r) {
    float* row = s + int64_t{r} * kChunk;
    int32_t j = 0;
    for (; j + N <= n; j += N)
      hn::StoreU(hn::Mul(hn::LoadU(df, row + j), hn::LoadU(df, col + j)), df, row + j);
    for (; j < n; ++j) row[j] *= col[j];
  }
}

#if HWY_TARGET == HWY_AVX3
// Scores of the chunk's keys in blocks of NK keys x 16 / NK rows, NK chosen by the tile's row
// count (the arithmetic of a score depends only on the tile and the key's index in the chunk:
// batch invariant). The bf16 pair-dot path pads its last block by repeating a key; the extra
// columns lie past the chunk's keys and are never read. Returns the first key left unscored.
template <DType T>
int32_t RowDotScoreBlocks(const KernelParams& p, int32_t R, int32_t n, ScoreWalk<T>& walk,
                          KernelScratch& s, ColumnScales& cs) {
  using E = typename ElemOf<T>::type;
  const int32_t D = p.head_dim;
  const int nk = R == 1 ? 16 : R == 2 ? 8 : R <= 4 ? 4 : 2;
  const bool bf16_dot = T == DType::kBFloat16 && p.bf16_dot;
  const int32_t blocks_end = bf16_dot ? n : n / nk * nk;
  int32_t j = 0;
  for (; j < blocks_end; j += nk) {
    const E* krows[16];
    for (int i = 0; i < nk; ++i) {
      if (j + i >= n) {
        krows[i] = krows[i - 1];
        continue;
      }
      krows[i] = walk.Visit();
      cs.k[j + i] = walk.KeyScale(p.scale);
      if constexpr (dtype_is_quantized(T)) cs.v[j + i] = walk.ValueScale();
      walk.Next();
    }
    if constexpr (T == DType::kBFloat16) {
      if (bf16_dot) {
        const auto* q = reinterpret_cast<const uint16_t*>(s.q);
        const auto* const* kr = reinterpret_cast<const uint16_t* const*>(krows);
        switch (nk) {
          case 16: DotKeysBf16<16>(q, R, D, kr, s.s + j); break;
          case 8: DotKeysBf16<8>(q, R, D, kr, s.s + j); break;
          case 4: DotKeysBf16<4>(q, R, D, kr, s.s + j); break;
          default: DotKeysBf16<2>(q, R, D, kr, s.s + j); break;
        }
        continue;
      }
    }
    switch (nk) {
      case 16: DotKeys<16>(s.q, R, D, krows, s.s + j); break;
      case 8: DotKeys<8>(s.q, R, D, krows, s.s + j); break;
      case 4: DotKeys<4>(s.q, R, D, krows, s.s + j); break;
      default: DotKeys<2>(s.q, R, D, krows, s.s + j); break;
    }
  }
  // Float caches with float queries are scaled with the queries (PrepareRowDot), and their
  // blocked scores need no factor; quantized caches and bf16 pair dots take one per column.
  cs.k_end = dtype_is_quantized(T) || bf16_dot ? std::min(j, n) : 0;
  return j;
}
#endif

// s[r, j] = score of row r and key k0 + j. Each key row is loaded once for all rows of the tile.
template <DType T>
HWY_INLINE void RowDotScores(const KernelParams& p, const TileDesc& t, int32_t k0, int32_t k1,
                             KernelScratch& s, ColumnScales& cs) {
  const int32_t R = t.rows(p.group), D = p.head_dim;
  ScoreWalk<T> walk(p, t, k0);
  int32_t j = 0;
  cs.k_end = 0;
#if HWY_TARGET == HWY_AVX3
  j = RowDotScoreBlocks<T>(p, R, k1 - k0, walk, s, cs);
#endif
  for (; j < k1 - k0; ++j, walk.Next()) {
    const auto* k = walk.Visit();
    if constexpr (dtype_is_quantized(T)) cs.v[j] = walk.ValueScale();
    DotAllRows(s.q, R, D, k, walk.KeyScale(1.0f), s.s + j);
  }
  ScaleColumns(s.s, R, cs.k_end, cs.k);
}

// Softmax per row in place; row r sees [max(k0, lo), min(k1, pos + 1)).
HWY_INLINE void RowDotSoftmax(const KernelParams& p, const TileDesc& t, int32_t k0, int32_t k1,
                              KernelScratch& s, float* m, float* l) {
  const int32_t G = p.group;
  for (int32_t r = 0; r < t.rows(G); ++r) {
    const int32_t pos = t.first_pos + r / G;
    const int32_t c_lo = std::max(k0, VisibleLo(p, pos)) - k0;
    const int32_t c_hi = std::min(k1, pos + 1) - k0;
    SoftmaxRow(p, s.s + int64_t{r} * kChunk, k1 - k0, c_lo, c_hi, m + r, l + r);
  }
}

// Rows of a P.V group: each V vector loaded (and dequantized) once serves this many rows.
constexpr int32_t kPvGroupRows = HWY_TARGET == HWY_AVX3 ? 8 : 4;

// PvRowGroup for nr rows, 1 <= nr <= NR.
template <int NR, typename E>
HWY_INLINE void PvRowGroupUpTo(int32_t nr, const KernelParams& p, const TileDesc& t,
                               const float* prob, int32_t k0, int32_t a, int32_t b, float* acc,
                               NextKeyPrefetch<E>* next) {
  if constexpr (NR > 1) {
    if (nr < NR) return PvRowGroupUpTo<NR - 1, E>(nr, p, t, prob, k0, a, b, acc, next);
  }
  PvRowGroup<NR, E>(p, t, prob, k0, a, b, acc, next);
}

// acc = P.V in groups of kPvGroupRows rows over the keys any row of the group sees. Every
// element accumulates over keys in order whatever the grouping (a row's keys outside its own
// range carry exact zero probabilities), so the grouping does not change any result.
template <DType T>
HWY_INLINE void RowDotPv(const KernelParams& p, const TileDesc& t, int32_t k0, int32_t k1,
                         const KernelScratch& s, float* acc) {
  using E = typename ElemOf<T>::type;
  const int32_t G = p.group, D = p.head_dim, R = t.rows(G);
  // Where memory binds (float32 caches at group <= 4: at most 2 FLOPs per KV byte), the first
  // row group's pass starts the next chunk's K rows. A/B on this kernel: 1.1-1.3x faster decode
  // beyond the caches, 0.9-0.97x on cache-resident contexts; at group 7 and on 16-bit and 8-bit
  // caches (compute-bound) it measured slower, so those go without.
  NextKeyPrefetch<E> next(p, t, k1);
  NextKeyPrefetch<E>* first_next = T == DType::kFloat32 && G <= 4 ? &next : nullptr;
  for (int32_t r0 = 0; r0 < R; r0 += kPvGroupRows) {
    const int32_t nr = std::min(kPvGroupRows, R - r0);
    const int32_t a = std::max(k0, VisibleLo(p, t.first_pos + r0 / G));
    const int32_t b = std::min(k1, t.first_pos + (r0 + nr - 1) / G + 1);
    float* out = acc + int64_t{r0} * D;
    if (a >= b) {
      std::fill(out, out + int64_t{nr} * D, 0.0f);
      continue;
    }
    const float* prob = s.s + int64_t{r0} * kChunk;
    PvRowGroupUpTo<kPvGroupRows, E>(nr, p, t, prob, k0, a, b, out, r0 == 0 ? first_next : nullptr);
  }
}

// One chunk of a row-dot tile: scores, softmax, V scales, P.V (state layout in kernels.h).
template <DType T>
void ChunkRowDot(const KernelParams& p, const TileDesc& t, int32_t chunk, float* state,
                 KernelScratch& s) {
  const auto [k0, k1] = RangeOf(t, chunk);
  const int32_t R = t.rows(p.group);
  ColumnScales cs;
  RowDotScores<T>(p, t, k0, k1, s, cs);
  RowDotSoftmax(p, t, k0, k1, s, state, state + R);
  if constexpr (dtype_is_quantized(T)) ScaleColumns(s.s, R, k1 - k0, cs.v);
  RowDotPv<T>(p, t, k0, k1, s, state + 2 * R);
}

// ---------------------------------------------------------------------------------------------
// Tile driver: prepare queries, run chunks, merge, write the output.

template <template <DType> class Op, typename... Args>
HWY_INLINE void ByDType(DType dt, Args&&... args) {
  switch (dt) {
    case DType::kFloat32: Op<DType::kFloat32>::run(args...); break;
    case DType::kFloat16: Op<DType::kFloat16>::run(args...); break;
    case DType::kBFloat16: Op<DType::kBFloat16>::run(args...); break;
    case DType::kInt8: Op<DType::kInt8>::run(args...); break;
    case DType::kFp8E4M3: Op<DType::kFp8E4M3>::run(args...); break;
  }
}

template <DType T>
struct ChunkOp {
  static void run(const KernelParams& p, const TileDesc& t, int32_t chunk, float* state,
                  KernelScratch& s) {
    if (t.gemm) {
      ChunkGemm<T>(p, t, chunk, state, s);
    } else {
      ChunkRowDot<T>(p, t, chunk, state, s);
    }
  }
};

HWY_INLINE void Prepare(const KernelParams& p, const TileDesc& t, KernelScratch& s) {
  if (t.gemm) {
    PrepareGemm(p, t, s);
  } else {
    PrepareRowDot(p, t, s);
  }
}

HWY_INLINE void ResetState(float* run, int32_t R) {
  std::fill(run, run + R, kNegInf);
  std::fill(run + R, run + 2 * R, 0.0f);
}

// run <- merge(run, chunk). Both paths (whole tile and split chunks) merge through here.
void MergeState(float* run, const float* chunk, int32_t R, int32_t D) {
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  for (int32_t r = 0; r < R; ++r) {
    const float cm = chunk[r];
    if (cm == kNegInf) continue;
    float* acc = run + 2 * R + int64_t{r} * D;
    const float* cacc = chunk + 2 * R + int64_t{r} * D;
    const float rm = run[r];
    if (rm == kNegInf) {
      run[r] = cm;
      run[R + r] = chunk[R + r];
      std::memcpy(acc, cacc, sizeof(float) * D);
      continue;
    }
    const float mx = std::max(rm, cm);
    const float a = std::exp(rm - mx), b = std::exp(cm - mx);
    run[r] = mx;
    run[R + r] = run[R + r] * a + chunk[R + r] * b;
    const VF va = hn::Set(df, a), vb = hn::Set(df, b);
    for (int32_t d = 0; d < D; d += N)
      hn::StoreU(hn::MulAdd(hn::LoadU(df, acc + d), va, hn::Mul(hn::LoadU(df, cacc + d), vb)), df,
                 acc + d);
  }
}

void WriteOutput(const KernelParams& p, const TileDesc& t, const float* run) {
  const DF df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  const int32_t G = p.group, D = p.head_dim, R = t.rows(G);
  for (int32_t r = 0; r < R; ++r) {
    const VF inv = hn::Set(df, 1.0f / run[R + r]);
    const float* acc = run + 2 * R + int64_t{r} * D;
    float* dst = p.out + ((t.token_begin + r / G) * p.num_q_heads + t.kv_head * G + r % G) * D;
    for (int32_t d = 0; d < D; d += N)
      hn::StoreU(hn::Mul(hn::LoadU(df, acc + d), inv), df, dst + d);
  }
}

void RunChunk(const KernelParams& p, const TileDesc& t, int32_t chunk, float* state,
              KernelScratch& s) {
  Prepare(p, t, s);
  ByDType<ChunkOp>(p.kv.dtype, p, t, chunk, state, s);
}

void MergeChunks(const KernelParams& p, const TileDesc& t, const float* states, int32_t count,
                 KernelScratch& s) {
  const int32_t R = t.rows(p.group);
  ResetState(s.run_state, R);
  for (int32_t i = 0; i < count; ++i)
    MergeState(s.run_state, states + i * state_floats(R, p.head_dim), R, p.head_dim);
  WriteOutput(p, t, s.run_state);
}

void RunTile(const KernelParams& p, const TileDesc& t, KernelScratch& s) {
  const int32_t R = t.rows(p.group);
  Prepare(p, t, s);
  ResetState(s.run_state, R);
  for (int32_t c = t.chunk_begin; c < t.chunk_end; ++c) {
    ByDType<ChunkOp>(p.kv.dtype, p, t, c, s.chunk_state, s);
    MergeState(s.run_state, s.chunk_state, R, p.head_dim);
  }
  WriteOutput(p, t, s.run_state);
}

KernelTable Table(Isa isa) {
  return {isa, static_cast<int32_t>(hn::Lanes(DF())), &RunChunk, &MergeChunks, &RunTile};
}

}  // namespace HWY_NAMESPACE
}  // namespace pagedkv::attention_detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pagedkv::attention_detail {

KernelTable kernels_for(Isa isa) {
  const int64_t cpu = hwy::SupportedTargets();
#if HWY_TARGETS & HWY_AVX3
  if (isa >= Isa::kAvx512 && (cpu & HWY_AVX3) != 0) return N_AVX3::Table(Isa::kAvx512);
#endif
#if HWY_TARGETS & HWY_AVX2
  if (isa >= Isa::kAvx2 && (cpu & HWY_AVX2) != 0) return N_AVX2::Table(Isa::kAvx2);
#endif
  (void)cpu;
  return HWY_STATIC_DISPATCH(Table)(Isa::kScalar);
}

}  // namespace pagedkv::attention_detail
#endif  // HWY_ONCE
