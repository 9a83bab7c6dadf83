// Scheduler speed: one engine step = schedule() + update_from_output() (the model step is not
// run: each request that produces a token gets a fixed sampled token).
//
// Decode (time per step): N running requests, prompts of U[64, 1024] tokens (so page
// boundaries are crossed at different steps), page size 16, one token each per step, no stop.
// After 512 steps every request is aborted and a fresh set is admitted outside the clock.
//   BM_DecodeStep/N               the scheduler, N = 256 and 1,024 (target: < 10 us at 256)
//   BM_DecodeStepManagerOnly/N    the same step as direct manager calls (allocate_slots,
//                                 append the token, advance): the floor under the scheduler
//
// Mixed (time per step): 64 live requests at all times (a finished one is replaced at once),
// prompts of U[32, 512] tokens from 16 shared prefixes, U[16, 128] outputs, EOS sampled with
// probability 1/64, budget 512 tokens, a pool of 640 pages of 16 tokens: chunked prefills,
// prefix hits and preemptions every few steps (counters report the rates).
//   BM_MixedStep/0  FCFS
//   BM_MixedStep/1  PRIORITY (random priorities 0..3)
//
//   build/bench/scheduler_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {
namespace {

constexpr int32_t kPageSize = 16;
constexpr int32_t kMaxModelLen = 8192;
constexpr int32_t kEpisodeSteps = 512;
constexpr TokenId kSampled = 7;

std::vector<std::vector<TokenId>> decode_prompts(int32_t n) {
  std::mt19937 rng(7);
  std::vector<std::vector<TokenId>> prompts(static_cast<size_t>(n));
  for (auto& p : prompts) {
    p.resize(std::uniform_int_distribution<size_t>(64, 1024)(rng));
    for (TokenId& t : p) t = static_cast<TokenId>(rng() & 0x3fffffff);
  }
  return prompts;
}

int32_t decode_pool_pages(int32_t n) { return n * (1024 + kEpisodeSteps) / kPageSize + n + 1; }

// A scheduler whose N requests have all finished their prefill (outside any clock).
struct DecodeBench {
  explicit DecodeBench(const std::vector<std::vector<TokenId>>& prompts) {
    const auto n = static_cast<int32_t>(prompts.size());
    SamplingParams params;
    params.max_tokens = kMaxModelLen / 2;
    SchedulerConfig c;
    c.max_num_seqs = n;
    c.max_num_batched_tokens = 1 << 20;
    c.max_model_len = kMaxModelLen;
    manager = std::make_unique<KVCacheManager>(decode_pool_pages(n), kPageSize, kMaxModelLen);
    scheduler = std::make_unique<Scheduler>(c, *manager);
    for (size_t i = 0; i < prompts.size(); ++i) {
      scheduler->add_request(Request(fmt::format("d{}", i), prompts[i]), params);
    }
    step();  // every prompt in one step
  }

  void step() {
    scheduler->schedule(out);
    sampled.resize(out.num_scheduled_tokens.size());
    for (auto& s : sampled) s.assign(1, kSampled);
    scheduler->update_from_output(out, sampled, results);
  }

  std::unique_ptr<KVCacheManager> manager;
  std::unique_ptr<Scheduler> scheduler;
  SchedulerOutput out;
  std::vector<std::vector<TokenId>> sampled;
  std::vector<RequestOutput> results;
};

void BM_DecodeStep(benchmark::State& state) {
  const int32_t n = static_cast<int32_t>(state.range(0));
  const auto prompts = decode_prompts(n);
  auto bench = std::make_unique<DecodeBench>(prompts);
  int32_t steps = 0;
  for (auto _ : state) {
    if (steps == kEpisodeSteps) {
      state.PauseTiming();
      bench.reset();
      bench = std::make_unique<DecodeBench>(prompts);
      steps = 0;
      state.ResumeTiming();
    }
    bench->step();
    ++steps;
  }
  if (bench->out.total_num_scheduled_tokens != n) state.SkipWithError("not every request ran");
  state.SetItemsProcessed(state.iterations() * n);  // decode tokens
}
BENCHMARK(BM_DecodeStep)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);

// The manager calls a decode step implies, without the scheduler.
void BM_DecodeStepManagerOnly(benchmark::State& state) {
  const int32_t n = static_cast<int32_t>(state.range(0));
  const auto prompts = decode_prompts(n);
  std::unique_ptr<KVCacheManager> manager;
  std::vector<Request> requests;
  GroupPages new_pages;
  auto admit = [&] {
    manager = std::make_unique<KVCacheManager>(decode_pool_pages(n), kPageSize, kMaxModelLen);
    requests.clear();
    for (size_t i = 0; i < prompts.size(); ++i) {
      requests.emplace_back(fmt::format("d{}", i), prompts[i]);
      Request& r = requests.back();
      manager->allocate_slots(r, r.num_tokens());
      r.set_num_computed_tokens(r.num_tokens());
      const TokenId t[1] = {kSampled};
      r.append_output_token_ids(t);
    }
  };
  admit();
  int32_t steps = 0;
  for (auto _ : state) {
    if (steps == kEpisodeSteps) {
      state.PauseTiming();
      admit();
      steps = 0;
      state.ResumeTiming();
    }
    for (Request& r : requests) {
      if (!manager->allocate_slots_into(new_pages, r, {.num_new_tokens = 1})) {
        state.SkipWithError("out of pages");
      }
      r.set_num_computed_tokens(r.num_computed_tokens() + 1);
      const TokenId t[1] = {kSampled};
      r.append_output_token_ids(t);
    }
    ++steps;
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_DecodeStepManagerOnly)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);

// ---- Mixed prefill / decode with preemption ----

struct MixedWorkload {
  std::vector<std::vector<TokenId>> prefixes;
  std::mt19937 rng{11};

  MixedWorkload() : prefixes(16) {
    for (auto& p : prefixes) {
      p.resize(static_cast<size_t>(uniform(16, 256)));
      for (TokenId& t : p) t = static_cast<TokenId>(rng() & 0x3fffffff);
    }
  }
  int32_t uniform(int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
  }
  std::vector<TokenId> prompt() {
    std::vector<TokenId> p = prefixes[static_cast<size_t>(uniform(0, 15))];
    const auto len = static_cast<size_t>(uniform(32, 512));
    while (p.size() < len) p.push_back(static_cast<TokenId>(rng() & 0x3fffffff));
    p.resize(len);
    return p;
  }
};

void BM_MixedStep(benchmark::State& state) {
  const bool priority = state.range(0) != 0;
  constexpr int32_t kLive = 64;
  constexpr TokenId kEos = 2;
  MixedWorkload w;
  KVCacheManager manager(641, kPageSize, 4096);
  SchedulerConfig c;
  c.max_num_seqs = kLive;
  c.max_num_batched_tokens = 512;
  c.max_model_len = 4096;
  c.policy = priority ? SchedulingPolicy::kPriority : SchedulingPolicy::kFcfs;
  Scheduler scheduler(c, manager);
  int64_t next_id = 0;
  auto add = [&] {
    SamplingParams p;
    p.max_tokens = w.uniform(16, 128);
    scheduler.add_request(Request(fmt::format("m{}", next_id++), w.prompt()), p, kEos,
                          priority ? w.uniform(0, 3) : 0);
  };
  for (int32_t i = 0; i < kLive; ++i) add();
  SchedulerOutput out;
  std::vector<std::vector<TokenId>> sampled;
  std::vector<RequestOutput> results;
  int64_t tokens = 0;
  for (auto _ : state) {
    scheduler.schedule(out);
    sampled.resize(out.num_scheduled_tokens.size());
    for (size_t i = 0; i < sampled.size(); ++i) {
      sampled[i].assign(1, w.uniform(0, 63) == 0 ? kEos : kSampled);  // ignored for chunks
    }
    scheduler.update_from_output(out, sampled, results);
    for (const RequestOutput& r : results) {
      if (r.finished) add();
    }
    tokens += out.total_num_scheduled_tokens;
  }
  const SchedulerStats st = scheduler.stats();
  const auto num_steps = static_cast<double>(st.num_steps);
  state.counters["preemptions_per_step"] = static_cast<double>(st.num_preemptions) / num_steps;
  state.counters["tokens_per_step"] = static_cast<double>(tokens) / num_steps;
  state.counters["hit_rate"] = st.prefix_cache.hit_rate();
}
BENCHMARK(BM_MixedStep)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
