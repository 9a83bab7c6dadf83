// SIMD kernel of Linear's deterministic mode, compiled once per ISA level with Highway's
// foreach_target (AVX-512, AVX2, scalar) and picked at run time by linear_block_for. The
// per-element operation sequence, which batch invariance depends on, is described in
// linear_kernels.h; nothing here may make it depend on the tile shape.

// Optimized even in debug builds; the ISA levels compiled (see the header).
#include "common/hwy_kernel_targets.h"  // IWYU pragma: keep

#undef HWY_TARGET_INCLUDE
// foreach_target.h re-includes this file by name; src/model/CMakeLists.txt gives this
// translation unit its own folder as an include directory for that.
// clang-format off
#define HWY_TARGET_INCLUDE "linear_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "linear_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace pagedkv::model_detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Tile shapes: kMainRows x kMainCols accumulators for full row tiles, and wider column tiles
// (kNarrowCols) when fewer rows are left, so a decode (rows == 1) still keeps enough
// independent FMA chains in flight. x is read as a memory operand of the FMA.
#if HWY_TARGET == HWY_AVX3
constexpr int kMainRows = 4, kMainCols = 4, kNarrowCols = 8;
#elif HWY_TARGET == HWY_AVX2
constexpr int kMainRows = 3, kMainCols = 4, kNarrowCols = 6;
#else
constexpr int kMainRows = 4, kMainCols = 4, kNarrowCols = 4;
#endif
constexpr int kMaxCols = kNarrowCols > kMainCols ? kNarrowCols : kMainCols;

// R rows x C weight rows of one block; see linear_kernels.h for the operation order.
template <int R, int C>
HWY_NOINLINE void Tile(const LinearArgs& a, int32_t r0, int32_t c0) {
  const DF d;
  const int32_t N = static_cast<int32_t>(hn::Lanes(d));
  const int32_t K = a.in;
  const float* xr[R];
  const float* wc[C];
  for (int r = 0; r < R; ++r) xr[r] = a.x + int64_t{r0 + r} * K;
  for (int c = 0; c < C; ++c) wc[c] = a.w + int64_t{c0 + c} * K;
  VF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::Zero(d);
  int32_t k = 0;
  for (; k + N <= K; k += N) {
    VF wv[C];
    for (int c = 0; c < C; ++c) wv[c] = hn::LoadU(d, wc[c] + k);
    for (int r = 0; r < R; ++r) {
      const VF xv = hn::LoadU(d, xr[r] + k);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(xv, wv[c], acc[r][c]);
    }
  }
  if (k < K) {  // the last partial vector, zero-padded (copied: no read past the row)
    const size_t tail = static_cast<size_t>(K - k);
    HWY_ALIGN float buf[hn::MaxLanes(d)] = {};
    VF wv[C];
    for (int c = 0; c < C; ++c) {
      std::memcpy(buf, wc[c] + k, tail * sizeof(float));
      wv[c] = hn::Load(d, buf);
    }
    for (int r = 0; r < R; ++r) {
      std::memcpy(buf, xr[r] + k, tail * sizeof(float));
      const VF xv = hn::Load(d, buf);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* yr = a.y + int64_t{r0 + r} * a.out + c0;
    for (int c = 0; c < C; ++c) {
      const float dot = hn::GetLane(hn::SumOfLanes(d, acc[r][c]));
      yr[c] = a.bias != nullptr ? a.bias[c0 + c] + dot : dot;
    }
  }
}

using TileFn = void (*)(const LinearArgs&, int32_t, int32_t);

template <int R, int... Cs>
constexpr auto RowOfTiles(std::integer_sequence<int, Cs...>) {
  return std::array<TileFn, sizeof...(Cs)>{&Tile<R, Cs + 1>...};
}

template <int... Rs>
constexpr auto TileTable(std::integer_sequence<int, Rs...>) {
  return std::array<std::array<TileFn, kMaxCols>, sizeof...(Rs)>{
      RowOfTiles<Rs + 1>(std::make_integer_sequence<int, kMaxCols>())...};
}

// kTiles[R - 1][C - 1] = Tile<R, C>.
constexpr auto kTiles = TileTable(std::make_integer_sequence<int, kMainRows>());

void Block(const LinearArgs& a, int32_t r0, int32_t r1, int32_t c0, int32_t c1) {
  for (int32_t r = r0; r < r1;) {
    const int32_t R = std::min<int32_t>(kMainRows, r1 - r);
    const int32_t width = R == kMainRows ? kMainCols : kNarrowCols;
    for (int32_t c = c0; c < c1;) {
      const int32_t C = std::min<int32_t>(width, c1 - c);
      kTiles[R - 1][C - 1](a, r, c);
      c += C;
    }
    r += R;
  }
}

LinearBlockFn BlockFn() { return &Block; }

}  // namespace HWY_NAMESPACE
}  // namespace pagedkv::model_detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pagedkv::model_detail {

LinearBlockFn linear_block_for(Isa isa) {
  const int64_t cpu = hwy::SupportedTargets();
#if HWY_TARGETS & HWY_AVX3
  if (isa >= Isa::kAvx512 && (cpu & HWY_AVX3) != 0) return N_AVX3::BlockFn();
#endif
#if HWY_TARGETS & HWY_AVX2
  if (isa >= Isa::kAvx2 && (cpu & HWY_AVX2) != 0) return N_AVX2::BlockFn();
#endif
  (void)cpu;
  return HWY_STATIC_DISPATCH(BlockFn)();
}

}  // namespace pagedkv::model_detail
#endif  // HWY_ONCE
