#include "pagedkv/replay/simulate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/replay/default_workload.h"

namespace pagedkv {
namespace {

constexpr int32_t kBlock = 16;

// A request with fresh block keys (nothing shared) unless `first_key` repeats another's.
TraceRequest req(double t, int32_t input, int32_t output, uint64_t first_key) {
  TraceRequest r{.timestamp = t, .input_length = input, .output_length = output, .block_keys = {}};
  for (int32_t b = 0; b < cdiv(input, kBlock); ++b) r.block_keys.push_back(first_key + b);
  return r;
}

Trace trace_of(std::vector<TraceRequest> requests) {
  Trace t;
  t.block_size = kBlock;
  t.requests = std::move(requests);
  return t;
}

// Page size 16, a roomy pool, every step costs 10 ms and nothing else; verify() every step.
SimulateOptions step_only(int32_t num_pages = 100) {
  SimulateOptions o;
  o.page_size = 16;
  o.num_pages = num_pages;
  o.max_num_seqs = 4;
  o.max_num_batched_tokens = 64;
  o.cost = {.step_ms = 10.0,
            .prefill_ms_per_1k_tokens = 0.0,
            .decode_ms_per_request = 0.0,
            .kv_ms_per_1k_tokens = 0.0};
  o.verify = true;
  return o;
}

void expect_all_served(const SimulateResult& r) {
  EXPECT_EQ(r.finished + r.rejected, r.requests);
  EXPECT_EQ(r.free_pages_at_end, r.num_pages - 1);  // rule 30: nothing leaks
}

// Budget 64. A: 100-token prompt, 3 outputs, arrives at 0; B: 20 tokens, 2 outputs, at 25 ms.
//   step 1 [0, 10)   A prefills 64
//   step 2 [10, 20)  A prefills 36 -> A's token 1 at 20 ms
//   step 3 [20, 30)  A decodes     -> token 2 at 30; B arrived at 25, is added now
//   step 4 [30, 40)  A decodes     -> token 3 at 40, A finishes; B admitted, prefills 20 ->
//                                     B's token 1 at 40
//   step 5 [40, 50)  B decodes     -> token 2 at 50, B finishes
TEST(Simulate, ArrivalsStepsAndLatenciesAsCountedByHand) {
  const Trace t = trace_of({req(0.0, 100, 3, 100), req(0.025, 20, 2, 200)});
  const SimulateResult r = simulate(t, step_only());
  expect_all_served(r);
  EXPECT_EQ(r.requests, 2);
  EXPECT_EQ(r.finished, 2);
  EXPECT_EQ(r.steps, 5);
  EXPECT_NEAR(r.simulated_seconds, 0.050, 1e-12);
  EXPECT_EQ(r.prompt_tokens, 120);
  EXPECT_EQ(r.prefill_tokens, 120);
  EXPECT_EQ(r.output_tokens, 5);
  EXPECT_EQ(r.preemptions, 0);
  EXPECT_EQ(r.recomputed_tokens, 0);
  EXPECT_EQ(r.truncated, 0);
  EXPECT_EQ(r.max_model_len, 103);  // derived: the longest prompt + output
  // Queue: A 0, B 5 ms. TTFT: A 20 ms, B 15 ms. TPOT: 10 ms each. E2E: A 40 ms, B 25 ms.
  // Two samples: p50 is their mean, p90 = lo + 0.9 (hi - lo).
  EXPECT_EQ(r.queue.count, 2);
  EXPECT_NEAR(r.queue.p50, 0.0025, 1e-12);
  EXPECT_NEAR(r.queue.p99, 0.00495, 1e-12);
  EXPECT_NEAR(r.ttft.p50, 0.0175, 1e-12);
  EXPECT_NEAR(r.ttft.p90, 0.0195, 1e-12);
  EXPECT_NEAR(r.tpot.p50, 0.010, 1e-12);
  EXPECT_NEAR(r.tpot.p99, 0.010, 1e-12);
  EXPECT_NEAR(r.e2e.p50, 0.0325, 1e-12);
}

// One request, 100-token prompt, 3 outputs, budget 64, every coefficient on:
// 10 ms/step, 1 ms per prefill token, 2 ms per decoding request, 0.5 ms per KV token.
//   step 1: prefill 64, KV 64    10 + 64 + 32      = 106
//   step 2: prefill 36, KV 100   10 + 36 + 50      =  96   -> token 1 (TTFT 202 ms)
//   step 3: decode,     KV 101   10 + 2 + 50.5     =  62.5 -> token 2
//   step 4: decode,     KV 102   10 + 2 + 51       =  63   -> token 3 (end 327.5 ms)
TEST(Simulate, ClockFollowsTheLinearCostModel) {
  SimulateOptions o = step_only();
  o.cost = {.step_ms = 10.0,
            .prefill_ms_per_1k_tokens = 1000.0,
            .decode_ms_per_request = 2.0,
            .kv_ms_per_1k_tokens = 500.0};
  const SimulateResult r = simulate(trace_of({req(0.0, 100, 3, 1)}), o);
  EXPECT_EQ(r.steps, 4);
  EXPECT_NEAR(r.simulated_seconds, 0.3275, 1e-12);
  EXPECT_NEAR(r.ttft.p50, 0.202, 1e-12);
  EXPECT_NEAR(r.tpot.p50, (0.3275 - 0.202) / 2, 1e-12);
}

TEST(Simulate, CostModelStepSecondsIsTheDocumentedFormula) {
  const CostModel c{.step_ms = 5.0,
                    .prefill_ms_per_1k_tokens = 35.0,
                    .decode_ms_per_request = 0.05,
                    .kv_ms_per_1k_tokens = 0.04};
  EXPECT_NEAR(c.step_seconds({.prefill_tokens = 2000, .decode_requests = 10, .kv_tokens = 5000}),
              (5.0 + 70.0 + 0.5 + 0.2) / 1000.0, 1e-15);
  EXPECT_DOUBLE_EQ(c.step_seconds({}), 0.005);
}

TEST(Simulate, IdleClockJumpsToTheNextArrival) {
  // A finishes at 20 ms; B arrives at 100 s and starts at once.
  const Trace t = trace_of({req(0.0, 20, 2, 1), req(100.0, 20, 2, 50)});
  const SimulateResult r = simulate(t, step_only());
  EXPECT_EQ(r.steps, 4);
  EXPECT_NEAR(r.simulated_seconds, 100.020, 1e-9);
  EXPECT_NEAR(r.queue.p99, 0.0, 1e-12);
  EXPECT_NEAR(r.ttft.p50, 0.010, 1e-9);
}

TEST(Simulate, SharedPrefixIsHitByALaterAdmission) {
  // B repeats A's first 64 tokens (4 pages) and arrives after A was admitted: B hits them.
  Trace t = trace_of({req(0.0, 80, 2, 1), req(0.05, 80, 2, 1)});
  t.requests[1].block_keys.back() = 999;  // B's last block is its own
  const SimulateResult r = simulate(t, step_only());
  expect_all_served(r);
  EXPECT_EQ(r.prefix_query_tokens, 160);
  EXPECT_EQ(r.prefix_hit_tokens, 64);
  EXPECT_DOUBLE_EQ(r.prefix_hit_rate(), 64.0 / 160.0);
  EXPECT_EQ(r.prefill_tokens, 80 + 16);
}

// Three 32-token prompts with 40 outputs each in 8 usable pages: all three are admitted (2
// pages each) and then need a third page each at token 33, so the last one is preempted
// (FCFS) and recomputes what it had computed.
TEST(Simulate, TightPoolPreemptsRecomputesAndStillFinishesEverything) {
  for (SchedulingPolicy policy : {SchedulingPolicy::kFcfs, SchedulingPolicy::kPriority}) {
    SimulateOptions o = step_only(/*num_pages=*/9);
    o.policy = policy;
    const Trace t = trace_of({req(0.0, 32, 40, 1), req(0.0, 32, 40, 10), req(0.0, 32, 40, 20)});
    const SimulateResult r = simulate(t, o);
    expect_all_served(r);
    EXPECT_EQ(r.finished, 3);
    EXPECT_EQ(r.truncated, 0);
    EXPECT_EQ(r.output_tokens, 120);
    EXPECT_GT(r.preemptions, 0);
    EXPECT_GT(r.recomputed_tokens, 0);
    EXPECT_GT(r.resumed_query_tokens, 0);
    EXPECT_DOUBLE_EQ(r.peak_kv_usage, 1.0);
    EXPECT_GT(r.prefill_tokens, r.prompt_tokens);  // a resumed request prefills again
  }
}

TEST(Simulate, NoPreemptionMeansNoRecomputedTokens) {
  const SimulateResult r =
      simulate(trace_of({req(0.0, 32, 40, 1), req(0.0, 32, 40, 10), req(0.0, 32, 40, 20)}),
               step_only(/*num_pages=*/100));
  EXPECT_EQ(r.preemptions, 0);
  EXPECT_EQ(r.recomputed_tokens, 0);
  EXPECT_EQ(r.resumed_query_tokens, 0);
}

TEST(Simulate, PromptsThatCanNeverRunAreRejectedNotFatal) {
  // max_model_len 100: the 100-token prompt is refused (rule 45). 5 usable pages (80 tokens):
  // the 90-token prompt can never fit (rule 29, CapacityError at add_request).
  SimulateOptions o = step_only(/*num_pages=*/6);
  o.max_model_len = 100;
  const Trace t = trace_of({req(0.0, 100, 2, 1), req(0.0, 90, 2, 20), req(0.0, 30, 2, 40)});
  const SimulateResult r = simulate(t, o);
  expect_all_served(r);
  EXPECT_EQ(r.requests, 3);
  EXPECT_EQ(r.rejected, 2);
  EXPECT_EQ(r.finished, 1);
  EXPECT_EQ(r.prompt_tokens, 30);
  EXPECT_EQ(r.queue.count, 1);  // latencies cover finished requests only
}

TEST(Simulate, OutputsStopAtMaxModelLenAndCountAsTruncated) {
  SimulateOptions o = step_only();
  o.max_model_len = 40;
  const SimulateResult r = simulate(trace_of({req(0.0, 30, 50, 1)}), o);
  EXPECT_EQ(r.finished, 1);
  EXPECT_EQ(r.truncated, 1);
  EXPECT_EQ(r.output_tokens, 10);  // 30 + 10 = max_model_len (rule 43)
}

TEST(Simulate, ZeroOutputLengthTakesTheDefault) {
  SimulateOptions o = step_only();
  o.default_output_tokens = 7;
  const Trace t = trace_of({req(0.0, 20, 0, 1), req(0.0, 20, 3, 10)});
  EXPECT_EQ(simulate_max_model_len(t, o), 27);
  const SimulateResult r = simulate(t, o);
  EXPECT_EQ(r.output_tokens, 7 + 3);
  EXPECT_EQ(r.truncated, 0);
}

TEST(Simulate, BuiltInWorkloadRunsToTheEndWithEveryPageFree) {
  const Trace t = default_workload({.num_system_prompts = 3,
                                    .min_system_prompt_blocks = 8,
                                    .max_system_prompt_blocks = 40,
                                    .num_single_requests = 120,
                                    .max_user_tokens = 300,
                                    .num_chats = 15,
                                    .max_turns = 6,
                                    .max_answer_tokens = 300,
                                    .arrival_rate = 40.0});
  for (int32_t num_pages : {400, 4096}) {
    SimulateOptions o;
    o.num_pages = num_pages;
    o.max_num_seqs = 16;
    o.max_num_batched_tokens = 512;
    o.default_output_tokens = 32;
    o.verify = true;
    const SimulateResult r = simulate(t, o);
    expect_all_served(r);
    EXPECT_EQ(r.rejected, 0);
    EXPECT_EQ(r.finished, static_cast<int64_t>(t.requests.size()));
    EXPECT_GT(r.prefix_hit_tokens, 0);
    EXPECT_LE(r.peak_running, 16);
    EXPECT_LE(r.peak_kv_usage, 1.0);
  }
}

TEST(Simulate, SameInputsGiveTheSameReport) {
  const Trace t = trace_of({req(0.0, 32, 40, 1), req(0.0, 32, 40, 10), req(0.001, 50, 9, 20)});
  auto without_wall_time = [](SimulateResult r) {
    r.seconds = 0.0;
    return simulate_result_json(r);
  };
  EXPECT_EQ(without_wall_time(simulate(t, step_only(9))),
            without_wall_time(simulate(t, step_only(9))));
}

TEST(Simulate, LimitSimulatesTheFirstRequestsOnly) {
  SimulateOptions o = step_only();
  o.max_requests = 1;
  const SimulateResult r = simulate(trace_of({req(0.0, 20, 2, 1), req(0.0, 30, 2, 10)}), o);
  EXPECT_EQ(r.requests, 1);
  EXPECT_EQ(r.prompt_tokens, 20);
}

TEST(Simulate, OutputTokensAreDeterministicInVocabularyAndNeverEos) {
  for (int64_t i = 0; i < 50; ++i) {
    for (int32_t p = 0; p < 50; ++p) {
      const TokenId tok = simulated_output_token(i, p);
      EXPECT_GE(tok, 0);
      EXPECT_LT(tok, kSyntheticVocabSize);  // the EOS id passed is kSyntheticVocabSize
      EXPECT_EQ(tok, simulated_output_token(i, p));
    }
  }
  EXPECT_NE(simulated_output_token(0, 0), simulated_output_token(1, 0));
}

TEST(Simulate, PercentilesInterpolateBetweenRanks) {
  std::vector<double> v = {4.0, 1.0, 3.0, 2.0};
  const LatencyPercentiles p = latency_percentiles(v);
  EXPECT_EQ(p.count, 4);
  EXPECT_NEAR(p.p50, 2.5, 1e-12);
  EXPECT_NEAR(p.p90, 3.7, 1e-12);
  EXPECT_NEAR(p.p99, 3.97, 1e-12);
  std::vector<double> none;
  EXPECT_EQ(latency_percentiles(none).p99, 0.0);
}

// The message of the InvalidArgument that `options` raises.
std::string bad_config_message(const SimulateOptions& options) {
  try {
    simulate(trace_of({req(0.0, 20, 2, 1)}), options);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "(no InvalidArgument)";
}

TEST(Simulate, BadConfigThrowsInvalidArgumentNamingTheField) {
  SimulateOptions o = step_only();
  o.num_pages = 1;
  EXPECT_NE(bad_config_message(o).find("num_pages"), std::string::npos);
  o = step_only();
  o.max_num_batched_tokens = 2;
  EXPECT_NE(bad_config_message(o).find("max_num_batched_tokens (2) must be >= max_num_seqs (4)"),
            std::string::npos);
  o = step_only();
  o.default_output_tokens = 0;
  EXPECT_NE(bad_config_message(o).find("default_output_tokens"), std::string::npos);
  o = step_only();
  o.max_model_len = -1;
  EXPECT_NE(bad_config_message(o).find("max_model_len"), std::string::npos);
  o = step_only();
  o.cost.kv_ms_per_1k_tokens = -0.5;
  EXPECT_NE(bad_config_message(o).find("kv_ms_per_1k_tokens"), std::string::npos);
  o = step_only();
  o.cost.step_ms = std::nan("");
  EXPECT_NE(bad_config_message(o).find("step_ms"), std::string::npos);
  o = step_only();
  o.max_requests = -2;
  EXPECT_NE(bad_config_message(o).find("max_requests"), std::string::npos);
}

TEST(Simulate, JsonCarriesEveryDocumentedField) {
  const SimulateResult r = simulate(trace_of({req(0.0, 20, 2, 1)}), step_only());
  const auto j = nlohmann::json::parse(simulate_result_json(r));
  for (const char* key : {"num_pages",
                          "page_size",
                          "capacity_tokens",
                          "max_num_seqs",
                          "max_num_batched_tokens",
                          "max_model_len",
                          "policy",
                          "requests",
                          "finished",
                          "rejected",
                          "truncated",
                          "steps",
                          "simulated_seconds",
                          "prompt_tokens",
                          "prefill_tokens",
                          "output_tokens",
                          "recomputed_tokens",
                          "preemptions",
                          "prefix_query_tokens",
                          "prefix_hit_tokens",
                          "prefix_hit_rate",
                          "resumed_query_tokens",
                          "resumed_hit_tokens",
                          "resumed_hit_rate",
                          "peak_kv_usage",
                          "peak_running",
                          "peak_waiting",
                          "queue_p50",
                          "queue_p90",
                          "queue_p99",
                          "ttft_p50",
                          "ttft_p90",
                          "ttft_p99",
                          "tpot_p50",
                          "tpot_p90",
                          "tpot_p99",
                          "e2e_p50",
                          "e2e_p90",
                          "e2e_p99",
                          "cost_step_ms",
                          "cost_prefill_ms_per_1k_tokens",
                          "cost_decode_ms_per_request",
                          "cost_kv_ms_per_1k_tokens",
                          "seconds"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 44u);
  EXPECT_EQ(j["policy"], "fcfs");
  EXPECT_EQ(j["steps"], 2);
}

}  // namespace
}  // namespace pagedkv
