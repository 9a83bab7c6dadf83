// The FMA ceiling of a core: independent accumulator chains of register-resident multiply-adds,
// more than latency x pipes on current x86 cores and few enough to stay in registers (16 of the
// 32 AVX-512 registers; 12 of the 16 AVX2 ones, where 16 chains would spill). Each call of
// fma_loop(avx512, iters) runs the 512-bit or the 256-bit loop and does fma_loop_flops(avx512,
// iters) FLOPs. Benchmarks report their FLOPS against it.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace pagedkv::bench {

inline constexpr int kFmaChains512 = 16, kFmaChains256 = 12;

#define PAGEDKV_FMA_LOOP(V, SET, FMA, LANES, CHAINS)                                   \
  V acc[CHAINS];                                                                       \
  for (int i = 0; i < CHAINS; ++i) acc[i] = SET(1.0f + 1e-7f * static_cast<float>(i)); \
  const V a = SET(0.999999f), b = SET(1e-7f);                                          \
  for (int64_t n = 0; n < iters; ++n)                                                  \
    for (V & x : acc) x = FMA(x, a, b);                                                \
  float sum = 0;                                                                       \
  for (const V& x : acc) {                                                             \
    float lanes[LANES];                                                                \
    std::memcpy(lanes, &x, sizeof(lanes));                                             \
    sum += lanes[0];                                                                   \
  }                                                                                    \
  return sum

__attribute__((target("avx512f"))) inline float fma_loop512(int64_t iters) {
  PAGEDKV_FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16, kFmaChains512);
}
__attribute__((target("avx2,fma"))) inline float fma_loop256(int64_t iters) {
  PAGEDKV_FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8, kFmaChains256);
}
#undef PAGEDKV_FMA_LOOP

inline float fma_loop(bool avx512, int64_t iters) {
  return avx512 ? fma_loop512(iters) : fma_loop256(iters);
}
inline double fma_loop_flops(bool avx512, int64_t iters) {
  return 2.0 * (avx512 ? 16 * kFmaChains512 : 8 * kFmaChains256) * static_cast<double>(iters);
}

}  // namespace pagedkv::bench
