// Sampler speed: one row of logits (N(0, 2), fixed seed) -> one token, vocab V = 32,000
// (Llama-2) and 151,936 (Qwen2). Time per row.
//   BM_Greedy/V             temperature 0, no logprobs
//   BM_Temperature/V        temperature 0.8, no top-k / top-p
//   BM_TopK/V               temperature 0.8, top_k 50
//   BM_TopP/V               temperature 0.8, top_p 0.9
//   BM_TopKTopP/V           temperature 0.8, top_k 50, top_p 0.9
//   BM_Logprobs/V           greedy with logprobs = 5
//   BM_ArgmaxBaseline/V     a bare argmax loop over the same row: the floor of one pass
//
// One engine step: sample_batch over 64 rows at vocab 49,152 (SmolLM), every row with the same
// params; sample_batch splits the rows that need more than an argmax over the OpenMP threads
// (OMP_NUM_THREADS). Time per batch (real time).
//   BM_BatchGreedy          temperature 0, no logprobs
//   BM_BatchGreedyLogprobs  temperature 0, logprobs = 5
//   BM_BatchTopP            temperature 0.8, top_p 0.95
//   BM_BatchArgmaxBaseline  a bare argmax loop over the 64 rows, one thread: the floor
//
//   build/bench/sampler_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "pagedkv/engine/sampler.h"

namespace pagedkv {
namespace {

std::vector<float> random_logits(int64_t vocab) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& x : logits) x = normal(rng);
  return logits;
}

void run(benchmark::State& state, const SamplingParams& params) {
  const std::vector<float> logits = random_logits(state.range(0));
  Sampler sampler;
  SampledToken out;
  int32_t index = 0;
  for (auto _ : state) {
    const SamplingContext ctx{&params, 0x1234, index, index, std::nullopt};
    sampler.sample_into(logits, ctx, out);
    benchmark::DoNotOptimize(out.token);
    index = (index + 1) & 0xffff;
  }
}

SamplingParams with(float temperature, int32_t top_k, float top_p) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

void BM_Greedy(benchmark::State& state) { run(state, with(0.0f, 0, 1.0f)); }
void BM_Temperature(benchmark::State& state) { run(state, with(0.8f, 0, 1.0f)); }
void BM_TopK(benchmark::State& state) { run(state, with(0.8f, 50, 1.0f)); }
void BM_TopP(benchmark::State& state) { run(state, with(0.8f, 0, 0.9f)); }
void BM_TopKTopP(benchmark::State& state) { run(state, with(0.8f, 50, 0.9f)); }
void BM_Logprobs(benchmark::State& state) {
  SamplingParams p = with(0.0f, 0, 1.0f);
  p.logprobs = 5;
  run(state, p);
}

void BM_ArgmaxBaseline(benchmark::State& state) {
  const std::vector<float> logits = random_logits(state.range(0));
  for (auto _ : state) {
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    benchmark::DoNotOptimize(best);
  }
}

constexpr int32_t kBatchRows = 64;
constexpr int32_t kBatchVocab = 49152;

void run_batch(benchmark::State& state, const SamplingParams& params) {
  const std::vector<float> logits = random_logits(int64_t{kBatchRows} * kBatchVocab);
  Sampler sampler;
  std::vector<SamplingContext> ctx(kBatchRows);
  std::vector<SampledToken> out(kBatchRows);
  int32_t index = 0;
  for (auto _ : state) {
    for (int32_t r = 0; r < kBatchRows; ++r) {
      ctx[r] =
          SamplingContext{&params, 0x1234u + static_cast<uint64_t>(r), index, index, std::nullopt};
    }
    sampler.sample_batch(logits.data(), kBatchRows, kBatchVocab, ctx, out);
    benchmark::DoNotOptimize(out.data());
    index = (index + 1) & 0xffff;
  }
}

void BM_BatchGreedy(benchmark::State& state) { run_batch(state, with(0.0f, 0, 1.0f)); }
void BM_BatchGreedyLogprobs(benchmark::State& state) {
  SamplingParams p = with(0.0f, 0, 1.0f);
  p.logprobs = 5;
  run_batch(state, p);
}
void BM_BatchTopP(benchmark::State& state) { run_batch(state, with(0.8f, 0, 0.95f)); }

void BM_BatchArgmaxBaseline(benchmark::State& state) {
  const std::vector<float> logits = random_logits(int64_t{kBatchRows} * kBatchVocab);
  std::vector<size_t> best(kBatchRows);
  for (auto _ : state) {
    for (int32_t r = 0; r < kBatchRows; ++r) {
      const float* row = logits.data() + static_cast<size_t>(r) * kBatchVocab;
      size_t b = 0;
      for (size_t i = 1; i < kBatchVocab; ++i) {
        if (row[i] > row[b]) b = i;
      }
      best[r] = b;
    }
    benchmark::DoNotOptimize(best.data());
  }
}

#define SAMPLER_BENCH(fn) BENCHMARK(fn)->Arg(32000)->Arg(151936)->Unit(benchmark::kMicrosecond)
SAMPLER_BENCH(BM_Greedy);
SAMPLER_BENCH(BM_Temperature);
SAMPLER_BENCH(BM_TopK);
SAMPLER_BENCH(BM_TopP);
SAMPLER_BENCH(BM_TopKTopP);
SAMPLER_BENCH(BM_Logprobs);
SAMPLER_BENCH(BM_ArgmaxBaseline);
BENCHMARK(BM_BatchGreedy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BatchGreedyLogprobs)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BatchTopP)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BatchArgmaxBaseline)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
