// pagedkv/replay/engine_bench.h - an offline throughput run of the real engine (`pagedkv bench`):
// a workload of prompts is queued at once (vLLM's benchmark_throughput style) and the LLMEngine
// steps until every request has finished; the report gives throughput, time to first token,
// time per output token, prefix-cache hits, preemptions and where each step's time went.
//
// Example:
//   pagedkv::LLMEngine engine(config);
//   auto work = pagedkv::builtin_bench_workload({}, engine.model_config().vocab_size,
//                                               engine.max_model_len());
//   pagedkv::EngineBenchResult r = pagedkv::run_engine_bench(engine, work);
//   // r.output_tokens_per_second, r.ttft.p50, r.tpot.p99, r.prefix_hit_rate ...
//
// Workloads:
//   built-in  num_requests prompts of prompt_len tokens whose first shared_prefix_len tokens
//             are one common "system prompt" (so the prefix cache has something to find), the
//             rest distinct per request; each generates output_len tokens (EOS ignored).
//   trace     a replay Trace (trace.h): each request's synthesised prompt (token ids folded
//             into the model's vocabulary), its output length (or default_output_len when the
//             trace has none), both clipped so that prompt + output fit max_model_len.
// Token ids of both are deterministic functions of the seed / the trace.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "pagedkv/engine/llm_engine.h"
#include "pagedkv/replay/simulate.h"
#include "pagedkv/replay/trace.h"

namespace pagedkv {

struct BenchRequest {
  std::vector<TokenId> prompt;
  int32_t max_tokens = 0;
};

struct BuiltinBenchOptions {
  int32_t num_requests = 64;
  int32_t prompt_len = 256;
  int32_t shared_prefix_len = 192;
  int32_t output_len = 64;
  uint64_t seed = 0;
};

// Throws InvalidArgument when a length is not positive, the prefix exceeds the prompt, or
// prompt_len + output_len exceeds max_model_len.
std::vector<BenchRequest> builtin_bench_workload(const BuiltinBenchOptions& options,
                                                 int32_t vocab_size, int32_t max_model_len);
// At most `limit` requests of the trace (all when limit < 0).
std::vector<BenchRequest> trace_bench_workload(const Trace& trace, int32_t vocab_size,
                                               int32_t max_model_len, int32_t default_output_len,
                                               int64_t limit = -1);

struct EngineBenchResult {
  int64_t num_requests = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  double seconds = 0.0;
  double output_tokens_per_second = 0.0;
  double total_tokens_per_second = 0.0;  // (prompt + output) / seconds
  LatencyPercentiles ttft;               // first token - arrival, seconds
  LatencyPercentiles tpot;               // (last - first token) / (outputs - 1), seconds
  double prefix_hit_rate = 0.0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  // Fractions of the step time spent in each phase (they sum to 1).
  double schedule_share = 0.0, build_share = 0.0, forward_share = 0.0, sample_share = 0.0,
         update_share = 0.0;
  int64_t free_pages_at_end = 0;  // a self-check: every page but the null page
};

// Runs the workload to completion on an idle engine (StateError otherwise). `progress`, when
// set, is called after every step with (finished requests, total).
EngineBenchResult run_engine_bench(LLMEngine& engine, const std::vector<BenchRequest>& requests,
                                   const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace pagedkv
