// Wall time of the cache-only replay of a full trace per capacity (default: the Mooncake
// conversation trace, 12,031 requests, ~145 M prompt tokens, page size 16).
//
//   PAGEDKV_SHARED_DIR=../shared build/bench/replay_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true      (or bench/replay_bench.sh)
//   (PAGEDKV_REPLAY_TRACE=<file> replays another Mooncake-format trace.)
//
// Baseline: BM_SynthesizeAndHash does the per-request work every replay pays before the
// manager sees the request (synthesise the prompt, build the Request, hash its full pages);
// BM_Replay/<num_pages> minus that is the prefix cache itself.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/replay/replay.h"
#include "pagedkv/replay/trace.h"

namespace pagedkv {
namespace {

constexpr int32_t kPageSize = 16;

const Trace& bench_trace() {
  static const Trace trace = [] {
    std::string path;
    if (const char* p = std::getenv("PAGEDKV_REPLAY_TRACE")) {
      path = p;
    } else if (const char* d = std::getenv("PAGEDKV_SHARED_DIR")) {
      path = std::string(d) + "/data/traces/mooncake/conversation_trace.jsonl";
    } else {
      throw std::runtime_error("set PAGEDKV_SHARED_DIR (or PAGEDKV_REPLAY_TRACE)");
    }
    return load_trace(path, TraceFormat::kMooncake);
  }();
  return trace;
}

void BM_SynthesizeAndHash(benchmark::State& state) {
  const Trace& t = bench_trace();
  std::vector<TokenId> tokens;
  for (auto _ : state) {
    int64_t pages = 0;
    for (size_t i = 0; i < t.requests.size(); ++i) {
      synthesize_prompt(t.requests[i], t.block_size, tokens);
      Request r("r", std::move(tokens));
      tokens = {};
      pages += static_cast<int64_t>(r.page_hashes(kPageSize).size());
    }
    benchmark::DoNotOptimize(pages);
  }
  state.counters["tokens"] = static_cast<double>(t.num_tokens());
}

void BM_Replay(benchmark::State& state) {
  const Trace& t = bench_trace();
  ReplayOptions o;
  o.page_size = kPageSize;
  o.num_pages = static_cast<int32_t>(state.range(0));
  ReplayResult r;
  for (auto _ : state) {
    r = replay(t, o);
    benchmark::DoNotOptimize(r.hit_tokens);
  }
  state.counters["token_hit_rate"] = r.token_hit_rate();
  state.counters["ideal_hit_rate"] = r.ideal.token_hit_rate();
  state.counters["evictions"] = static_cast<double>(r.evictions);
}

BENCHMARK(BM_SynthesizeAndHash)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_Replay)
    ->Arg(65536)
    ->Arg(262144)
    ->Arg(1048576)
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
}  // namespace pagedkv

int main(int argc, char** argv) {
  pagedkv::isa_cap_from_env();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
