// pagedkv/replay/simulate.h - a serving run of a request trace with no model: requests arrive at
// their trace timestamps, a Scheduler over a KVCacheManager schedules them step by step, and a
// linear cost model (cost_model.h) stands in for the forward pass and sets the simulated clock.
//
// Example:
//   Trace trace = load_trace("conversation_trace.jsonl", TraceFormat::kMooncake);
//   SimulateResult r = simulate(trace, {.num_pages = 65536});
//   fmt::print("{}\n", simulate_result_json(r));        // one JSON object
//
// The loop (clock = simulated seconds, starting at 0):
//   1. every trace request with timestamp <= clock is added (Scheduler::add_request, arrival
//      time = its timestamp, priority 0 - traces carry none, so PRIORITY orders by arrival -,
//      SamplingParams{max_tokens = its output length, ignore_eos}); a prompt >= max_model_len
//      or one the pool can never hold (CapacityError, rule 29) is counted as rejected instead;
//   2. nothing live: the clock jumps to the next arrival;
//   3. schedule(); the step's duration is the cost model's price of what it scheduled; the
//      clock advances by it; each request that completed its tokens gets one synthesised output
//      token (simulated_output_token), dated at the end of the step (update_from_output).
//      A step that schedules nothing (every running request preempted itself) takes no time;
//      a second one in a row would be a stall and throws InternalError.
//
// Definitions (times in simulated seconds; percentiles over finished requests):
//   output length  the trace's output_length, or default_output_tokens where it is 0 (the
//                  built-in workload's single-turn requests have none); at least 1
//   queue          first admission (start of that step) - arrival
//   ttft           first output token - arrival
//   tpot           (last token - first token) / (outputs - 1), requests with >= 2 outputs
//   e2e            last token - arrival
//   prefill token  a scheduled token of a request that is not decoding; a request decodes
//                  when it is scheduled for exactly 1 token, its last, and has an output
//   recomputed     scheduled tokens at positions the same request had computed before (after
//                  a preemption); prefix-cache hits are not computed, so never counted
//   truncated      finished before its output length (it reached max_model_len or the
//                  most tokens the pool holds for one request: Scheduler::max_num_tokens)
//
// Invariants (tests check them): every added request finishes (finished + rejected ==
// requests); at the end every usable page is free; recomputed_tokens == 0 without
// preemptions; the run is deterministic apart from `seconds`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/page_hash.h"
#include "pagedkv/replay/cost_model.h"
#include "pagedkv/replay/trace.h"
#include "pagedkv/scheduler/scheduler_config.h"

namespace pagedkv {

struct SimulateOptions {
  int32_t page_size = 16;
  int32_t num_pages = 0;  // total pages, the null page included; >= 2
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 8192;
  int32_t max_model_len = 0;  // 0: simulate_max_model_len(trace, options)
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  int32_t default_output_tokens = 256;  // for requests whose trace output_length is 0
  HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128;
  int64_t max_requests = -1;  // simulate only the first N requests of the trace; -1 = all
  CostModel cost;
  // Called with (requests done, requests to do) about every 0.5 % of the trace and at the end;
  // a request is done when it finished or was rejected.
  std::function<void(int64_t, int64_t)> progress = nullptr;
  bool verify = false;  // Scheduler::verify() after every step (tests; slow)

  // Throws InvalidArgument naming the first bad field: page_size < 1, num_pages < 2,
  // max_num_seqs < 1, max_num_batched_tokens < max_num_seqs, max_model_len < 0 or above
  // KVCacheConfig::kMaxModelLen, default_output_tokens < 1, max_requests < -1, a bad cost
  // coefficient.
  void validate() const;
};

// Percentiles of one latency, in seconds: linear interpolation between the closest ranks
// (NumPy's default); all 0 when there is no sample.
struct LatencyPercentiles {
  int64_t count = 0;
  double p50 = 0.0;
  double p90 = 0.0;
  double p99 = 0.0;
};

struct SimulateResult {
  // The configuration that ran.
  int32_t num_pages = 0;
  int32_t page_size = 0;
  int32_t max_num_seqs = 0;
  int32_t max_num_batched_tokens = 0;
  int32_t max_model_len = 0;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  CostModel cost;
  // Requests.
  int64_t requests = 0;  // arrived (the trace, or its first max_requests)
  int64_t finished = 0;
  int64_t rejected = 0;   // never added: prompt >= max_model_len, or larger than the pool
  int64_t truncated = 0;  // finished with fewer outputs than their output length
  // Work.
  int64_t steps = 0;               // steps that scheduled tokens (one model step each)
  double simulated_seconds = 0.0;  // the final clock: the last finish (or a later rejection)
  int64_t prompt_tokens = 0;       // sum of the added requests' prompt lengths
  int64_t prefill_tokens = 0;      // computed prefill tokens (recomputation included)
  int64_t output_tokens = 0;       // output tokens produced
  int64_t recomputed_tokens = 0;
  int64_t preemptions = 0;
  // Prefix cache: the scheduler's statistics (admitted requests, rule 46), in tokens.
  int64_t prefix_query_tokens = 0;   // fresh admissions: their tokens
  int64_t prefix_hit_tokens = 0;     // fresh admissions: their cached prefix
  int64_t resumed_query_tokens = 0;  // admissions after a preemption
  int64_t resumed_hit_tokens = 0;
  // Memory and queues, sampled after each step's scheduling.
  double peak_kv_usage = 0.0;  // held usable pages / usable pages
  int32_t peak_running = 0;
  int32_t peak_waiting = 0;
  // Latencies of finished requests.
  LatencyPercentiles queue, ttft, tpot, e2e;
  int32_t free_pages_at_end = 0;  // a self-check: num_pages - 1 (nothing leaks, rule 30)
  double seconds = 0.0;           // wall time of the run

  double prefix_hit_rate() const;   // prefix_hit_tokens / prefix_query_tokens (0 when none)
  double resumed_hit_rate() const;  // resumed_hit_tokens / resumed_query_tokens
};

// The max_model_len a run uses when options.max_model_len is 0: the largest prompt + output
// length among the requests it simulates (so nothing is truncated by it), at least 2, at most
// KVCacheConfig::kMaxModelLen.
int32_t simulate_max_model_len(const Trace& trace, const SimulateOptions& options);

// The output token at `position` (0 = first) of trace request `request_index`: deterministic,
// in [0, kSyntheticVocabSize), never the EOS id the simulation passes (kSyntheticVocabSize).
TokenId simulated_output_token(int64_t request_index, int32_t position);

// Percentiles of `samples` (reordered).
LatencyPercentiles latency_percentiles(std::vector<double>& samples);

// Runs the trace at one configuration. Throws InvalidArgument for bad options or an invalid
// trace (the trace is not modified); InternalError if the run stalls (a bug).
SimulateResult simulate(const Trace& trace, const SimulateOptions& options);

// One JSON object on one line; fields in docs/simulate.md.
std::string simulate_result_json(const SimulateResult& result);

}  // namespace pagedkv
