// What the page layout costs the decode score phase: the attention kernel's own 16-dot-product
// score block (paged_attention_simd-inl.h, AVX-512) over K stored as the cache stores it (each
// token's head_dim values together, so every score ends in a horizontal reduction) against the
// same scores over K stored transposed within each 16-token page (head_dim rows of 16 tokens:
// lanes are tokens, a query value is broadcast, no reduction), and the kernel's P.V pass. No
// key walk, no prefetch, no softmax: only the arithmetic and its loads. One thread, float32,
// head_dim 128, 4 query rows (the Llama-3-8B group), pages in order, K in a working set sized to
// stream from L1, L2 or L3 (from DRAM the kernel depends on its prefetches, which this leaves out).
//
//   score/rows/<KiB>         the kernel's block (DotKeys<4>: 4 keys x 4 rows, 45-op tree)
//   score/transposed/<KiB>   the transposed page, 4 rows x 16 tokens per pass
//   pv/rows/<KiB>            the kernel's P.V pass (PvRowGroup<4>) over V of that size: no
//                            reduction in any layout, so the second half of decode's FLOPs
//   read/<KiB>               loads of the same bytes, no arithmetic: the level's read rate
//   peak/fma/<isa>           register-resident FMAs on one thread
//
// FLOPS counts 2 x head_dim per (query row, key); FLOPS / peak/fma is the fraction of the
// compute ceiling. The ISA level is active_isa()'s (PAGEDKV_ISA caps it); rows it cannot run
// (score/rows below AVX-512) are skipped.
//
//   build/bench/score_layout_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only

// Highway compiles the kernels below once per ISA level, like the library's kernels.
// clang-format off
#include "common/hwy_kernel_targets.h"  // IWYU pragma: keep
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "score_layout_bench.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <algorithm>
#include <cstdint>

#include "paged_attention_kernels.h"
#include "paged_attention_simd-inl.h"

#ifndef PAGEDKV_BENCH_SCORE_LAYOUT_KERNELS
#define PAGEDKV_BENCH_SCORE_LAYOUT_KERNELS
namespace pagedkv::bench {
// The shapes: head_dim, query rows (the Llama-3-8B group), tokens per page, keys per chunk.
constexpr int32_t kDim = 128, kRows = 4, kPage = 16, kChunk = attention_detail::kChunk;

// One ISA level's kernels; score_rows returns false where the kernel's block does not exist.
struct ScoreKernels {
  bool (*score_rows)(const float* q, const float* k, int64_t n, float* s);
  bool (*score_transposed)(const float* q, const float* kt, int64_t n, float* s);
  float (*read_all)(const float* p, int64_t n);
  void (*pv)(const float* prob, const float* v, const int32_t* pages, int64_t n, float* acc);
};
}  // namespace pagedkv::bench
#endif

HWY_BEFORE_NAMESPACE();
namespace pagedkv::bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[r * kChunk + j] = dot(q row r, key j) for keys [0, n) in row layout, a chunk at a time, by
// the kernel's block. False where the block does not exist (below AVX-512).
bool ScoreRows(const float* q, const float* k, int64_t n, float* s) {
#if HWY_TARGET == HWY_AVX3
  for (int64_t c = 0; c < n; c += kChunk) {
    for (int32_t j = 0; j < kChunk && c + j < n; j += 4) {
      const float* keys[4];
      for (int i = 0; i < 4; ++i) keys[i] = k + (c + j + i) * kDim;
      attention_detail::HWY_NAMESPACE::DotKeys<4, float>(q, kRows, kDim, keys, s + j);
    }
  }
  return true;
#else
  (void)q, (void)k, (void)n, (void)s;
  return false;
#endif
}

// The same scores over pages stored transposed: page p holds kt[p][d][t] for its 16 tokens.
// Two interleaved sets of accumulators (even and odd d) keep 8 FMA chains in flight.
bool ScoreTransposed(const float* q, const float* kt, int64_t n, float* s) {
  const hn::ScalableTag<float> df;
  const int32_t N = static_cast<int32_t>(hn::Lanes(df));
  for (int64_t p = 0; p < n / kPage; ++p) {
    const float* page = kt + p * kDim * kPage;
    float* out = s + (p * kPage) % kChunk;
    for (int32_t t = 0; t < kPage; t += N) {
      auto a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (int32_t d = 0; d < kDim; d += 2) {
        const auto k0 = hn::LoadU(df, page + d * kPage + t);
        const auto k1 = hn::LoadU(df, page + (d + 1) * kPage + t);
        a0 = hn::MulAdd(hn::Set(df, q[d]), k0, a0);
        a1 = hn::MulAdd(hn::Set(df, q[kDim + d]), k0, a1);
        a2 = hn::MulAdd(hn::Set(df, q[2 * kDim + d]), k0, a2);
        a3 = hn::MulAdd(hn::Set(df, q[3 * kDim + d]), k0, a3);
        b0 = hn::MulAdd(hn::Set(df, q[d + 1]), k1, b0);
        b1 = hn::MulAdd(hn::Set(df, q[kDim + d + 1]), k1, b1);
        b2 = hn::MulAdd(hn::Set(df, q[2 * kDim + d + 1]), k1, b2);
        b3 = hn::MulAdd(hn::Set(df, q[3 * kDim + d + 1]), k1, b3);
      }
      hn::StoreU(hn::Add(a0, b0), df, out + t);
      hn::StoreU(hn::Add(a1, b1), df, out + kChunk + t);
      hn::StoreU(hn::Add(a2, b2), df, out + 2 * kChunk + t);
      hn::StoreU(hn::Add(a3, b3), df, out + 3 * kChunk + t);
    }
  }
  return true;
}

// acc[r][d] = sum over keys of prob[r * kChunk + key % kChunk] * V[key][d], a chunk at a time,
// by the kernel's P.V pass over a single-head float32 cache (kHND) with the given page table.
void PvRowsOf(const float* prob, const float* v, const int32_t* pages, int64_t n, float* acc) {
  attention_detail::KernelParams p;
  p.kv.num_pages = n / kPage;
  p.kv.page_size = kPage;
  p.kv.num_kv_heads = 1;
  p.kv.head_dim = kDim;
  p.kv.k_data = p.kv.v_data = const_cast<float*>(v);
  p.st = p.kv.strides();
  p.head_dim = kDim;
  p.group = kRows;
  attention_detail::TileDesc t;
  t.pages = pages;
  t.key_end = static_cast<int32_t>(n);
  for (int32_t c = 0; c < n; c += kChunk) {
    const int32_t end = static_cast<int32_t>(std::min<int64_t>(c + kChunk, n));
    attention_detail::HWY_NAMESPACE::PvRowGroup<kRows, float>(p, t, prob, c, c, end, acc, nullptr);
  }
}

// Sum of n floats by full-width loads (4 independent sums).
float ReadAll(const float* p, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto a = hn::Zero(df), b = a, c = a, d = a;
  for (int64_t i = 0; i + 4 * N <= n; i += 4 * N) {
    a = hn::Add(a, hn::LoadU(df, p + i));
    b = hn::Add(b, hn::LoadU(df, p + i + N));
    c = hn::Add(c, hn::LoadU(df, p + i + 2 * N));
    d = hn::Add(d, hn::LoadU(df, p + i + 3 * N));
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a, b), hn::Add(c, d))));
}

ScoreKernels Table() { return {&ScoreRows, &ScoreTransposed, &ReadAll, &PvRowsOf}; }

}  // namespace HWY_NAMESPACE
}  // namespace pagedkv::bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "fma_peak.h"
#include "pagedkv/common/cpu_info.h"
#include "random_data.h"

namespace pagedkv::bench {
namespace {

// The kernels of the ISA level active_isa() allows (PAGEDKV_ISA caps it, as for the library).
ScoreKernels kernels() {
  const Isa isa = active_isa();
  const int64_t cpu = hwy::SupportedTargets();
#if HWY_TARGETS & HWY_AVX3
  if (isa >= Isa::kAvx512 && (cpu & HWY_AVX3) != 0) return N_AVX3::Table();
#endif
#if HWY_TARGETS & HWY_AVX2
  if (isa >= Isa::kAvx2 && (cpu & HWY_AVX2) != 0) return N_AVX2::Table();
#endif
  (void)isa, (void)cpu;
  return HWY_STATIC_DISPATCH(Table)();
}

// FLOPS of a row that does 2 x head_dim x 4 rows per key, and the K (or V) bytes it reads.
void report(benchmark::State& state, int64_t keys) {
  const double flops = 2.0 * kDim * kRows * static_cast<double>(keys);
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.SetBytesProcessed(state.iterations() * keys * kDim * 4);
}

// Whether s holds the scores of the last chunk's keys (what the last call left), against
// plain float64 dot products: both layouts must compute the same thing to be compared.
bool scores_match(const std::vector<float>& q, const std::vector<float>& rows, int64_t keys,
                  const std::vector<float>& s) {
  const int64_t first = (keys - 1) / kChunk * kChunk;
  for (int32_t r = 0; r < kRows; ++r)
    for (int64_t j = first; j < keys; ++j) {
      double dot = 0;
      for (int32_t d = 0; d < kDim; ++d) dot += double{q[r * kDim + d]} * rows[j * kDim + d];
      if (std::abs(s[r * kChunk + (j - first)] - dot) > 1e-4 * (1 + std::abs(dot))) return false;
    }
  return true;
}

// K of `kib` KiB in both layouts (the same values), scored once per iteration.
void BM_Score(benchmark::State& state, bool transposed, int64_t kib) {
  const int64_t keys = kib * 1024 / (kDim * 4);
  const std::vector<float> q = random_floats(int64_t{kRows} * kDim, 1);
  const std::vector<float> rows = random_floats(keys * kDim, 2);
  std::vector<float> kt(rows.size());
  for (int64_t j = 0; j < keys; ++j)
    for (int32_t d = 0; d < kDim; ++d)
      kt[(j / kPage * kDim + d) * kPage + j % kPage] = rows[j * kDim + d];
  std::vector<float> s(int64_t{kRows} * kChunk);
  const ScoreKernels kern = kernels();
  auto* score = transposed ? kern.score_transposed : kern.score_rows;
  const float* k = transposed ? kt.data() : rows.data();
  if (!score(q.data(), k, keys, s.data())) {
    state.SkipWithError("the kernel's score block needs AVX-512");
    return;
  }
  if (!scores_match(q, rows, keys, s)) {
    state.SkipWithError("scores differ from a plain dot product");
    return;
  }
  for (auto _ : state) {
    score(q.data(), k, keys, s.data());
    benchmark::DoNotOptimize(s.data());
    benchmark::ClobberMemory();
  }
  report(state, keys);
}

// P.V of 4 rows over V of `kib` KiB, pages in order.
void BM_Pv(benchmark::State& state, int64_t kib) {
  const int64_t keys = kib * 1024 / (kDim * 4);
  const std::vector<float> prob = random_floats(int64_t{kRows} * kChunk, 4);
  const std::vector<float> v = random_floats(keys * kDim, 5);
  std::vector<int32_t> pages(keys / kPage);
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = static_cast<int32_t>(i);
  std::vector<float> acc(int64_t{kRows} * kDim);
  auto* pv = kernels().pv;
  for (auto _ : state) {
    pv(prob.data(), v.data(), pages.data(), keys, acc.data());
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  report(state, keys);
}

void BM_Read(benchmark::State& state, int64_t kib) {
  const std::vector<float> data = random_floats(kib * 256, 3);
  auto* read_all = kernels().read_all;
  for (auto _ : state) {
    benchmark::DoNotOptimize(read_all(data.data(), kib * 256));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kib * 1024);
}

void BM_FmaPeak(benchmark::State& state, Isa isa) {
  if (active_isa() < isa) {
    state.SkipWithError("ISA not available");
    return;
  }
  constexpr int64_t kIters = 1 << 20;
  float sink = 0;
  for (auto _ : state) {
    int64_t iters = kIters;
    benchmark::DoNotOptimize(iters);  // a call per iteration, not one hoisted out of the loop
    sink += fma_loop(isa >= Isa::kAvx512, iters);
  }
  benchmark::DoNotOptimize(sink);
  state.counters["FLOPS"] = benchmark::Counter(fma_loop_flops(isa >= Isa::kAvx512, kIters),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (const int64_t kib : {32, 256, 2048, 8192}) {
    benchmark::RegisterBenchmark(fmt::format("score/rows/{}", kib).c_str(), BM_Score, false, kib);
    benchmark::RegisterBenchmark(fmt::format("score/transposed/{}", kib).c_str(), BM_Score, true,
                                 kib);
    benchmark::RegisterBenchmark(fmt::format("pv/rows/{}", kib).c_str(), BM_Pv, kib);
    benchmark::RegisterBenchmark(fmt::format("read/{}", kib).c_str(), BM_Read, kib);
  }
  for (const Isa isa : {Isa::kAvx512, Isa::kAvx2})
    benchmark::RegisterBenchmark(fmt::format("peak/fma/{}", isa_name(isa)).c_str(), BM_FmaPeak,
                                 isa);
}

}  // namespace
}  // namespace pagedkv::bench

int main(int argc, char** argv) {
  pagedkv::isa_cap_from_env();
  pagedkv::bench::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
#endif  // HWY_ONCE
