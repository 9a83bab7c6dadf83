// Linear (pagedkv/model/linear.h) on the projection shapes of SmolLM-135M (hidden 576, 9 q
// heads / 3 kv heads of 64, intermediate 1536, vocab 49152) and 1 to 512 rows.
//
//   linear/<in>x<out>/rows<R>/fast             kFast (rows > 8: oneDNN matmul on the weight
//                                              in "ba" layout, primitive per call)
//   linear/<in>x<out>/rows<R>/onednn_prebuilt  the same primitive built outside the timing
//                                              (what the per-call descriptor costs)
//   linear/<in>x<out>/rows<R>/openblas         OpenBLAS sgemm (rows == 1: sgemv), W^T by the
//                                              call, omp_get_max_threads() OpenBLAS threads:
//                                              the alternative kFast was measured against
//   linear/<in>x<out>/rows<R>/deterministic    kDeterministic: the batch-invariant kernel
//
// Counters: GFLOPs = 2 * rows * in * out per second; weight_GBps = weight bytes read per
// second (the roofline of rows = 1, which streams the weight once). Compare rows of one run.
//
//   OMP_NUM_THREADS=2 build/bench/linear_bench --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true   (one command line)
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <dnnl.hpp>
#include <string>
#include <vector>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/model/linear.h"

#include "random_data.h"

namespace pagedkv {
namespace {

struct Case {
  int32_t in, out;
};
constexpr Case kCases[] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}, {576, 49152}};
constexpr int32_t kRows[] = {1, 8, 32, 64, 512};

using bench::random_floats;

struct Data {
  Data(const Case& c, int32_t rows)
      : w(random_floats(size_t(c.out) * c.in, 1)),
        b(random_floats(c.out, 2)),
        x(random_floats(size_t(rows) * c.in, 3)),
        y(size_t(rows) * c.out) {}
  std::vector<float> w, b, x, y;
};

void set_counters(benchmark::State& state, const Case& c, int32_t rows) {
  using benchmark::Counter;
  state.counters["GFLOPs"] =
      Counter(2.0 * rows * c.in * c.out * 1e-9, Counter::kIsIterationInvariantRate);
  state.counters["weight_GBps"] =
      Counter(4.0 * c.in * c.out * 1e-9, Counter::kIsIterationInvariantRate);
}

void run_linear(benchmark::State& state, Case c, int32_t rows, MatmulMode mode) {
  Data d(c, rows);
  Linear lin(d.w.data(), d.b.data(), c.out, c.in);
  for (auto _ : state) {
    lin.forward(d.x.data(), rows, d.y.data(), mode);
    benchmark::DoNotOptimize(d.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, c, rows);
}

void run_onednn_prebuilt(benchmark::State& state, Case c, int32_t rows) {
  using dnnl::memory;
  Data d(c, rows);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const memory::desc src_md({rows, c.in}, memory::data_type::f32, memory::format_tag::ab);
  const memory::desc w_md({c.in, c.out}, memory::data_type::f32, memory::format_tag::ba);
  const memory::desc b_md({1, c.out}, memory::data_type::f32, memory::format_tag::ab);
  const memory::desc dst_md({rows, c.out}, memory::data_type::f32, memory::format_tag::ab);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_md, b_md, dst_md), eng);
  const dnnl::matmul prim(pd);
  memory src(src_md, eng, d.x.data()), w(w_md, eng, d.w.data()), b(b_md, eng, d.b.data()),
      dst(dst_md, eng, d.y.data());
  for (auto _ : state) {
    prim.execute(
        strm,
        {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, dst}});
    strm.wait();
    benchmark::DoNotOptimize(d.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, c, rows);
}

void run_openblas(benchmark::State& state, Case c, int32_t rows) {
  Data d(c, rows);
  openblas_set_num_threads(omp_get_max_threads());
  for (auto _ : state) {
    for (int32_t r = 0; r < rows; ++r)
      std::copy(d.b.begin(), d.b.end(), d.y.begin() + size_t(r) * c.out);
    if (rows == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, c.out, c.in, 1.0f, d.w.data(), c.in, d.x.data(), 1,
                  1.0f, d.y.data(), 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, c.out, c.in, 1.0f, d.x.data(),
                  c.in, d.w.data(), c.in, 1.0f, d.y.data(), c.out);
    }
    benchmark::DoNotOptimize(d.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, c, rows);
}

void register_all() {
  for (const Case& c : kCases) {
    for (int32_t rows : kRows) {
      const std::string base = "linear/" + std::to_string(c.in) + "x" + std::to_string(c.out) +
                               "/rows" + std::to_string(rows) + "/";
      const auto reg = [&](const char* name, auto fn, auto... args) {
        benchmark::RegisterBenchmark((base + name).c_str(), fn, c, rows, args...)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      };
      reg("fast", run_linear, MatmulMode::kFast);
      reg("onednn_prebuilt", run_onednn_prebuilt);
      reg("openblas", run_openblas);
      reg("deterministic", run_linear, MatmulMode::kDeterministic);
    }
  }
}

}  // namespace
}  // namespace pagedkv

int main(int argc, char** argv) {
  pagedkv::isa_cap_from_env();
  benchmark::Initialize(&argc, argv);
  pagedkv::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
