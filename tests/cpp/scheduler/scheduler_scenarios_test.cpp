// Named scenarios of rules 34-46, each small enough to follow page by page (page size 4).
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/scheduler/scheduler.h"
#include "scheduler/scheduler_test_util.h"

namespace pagedkv {
namespace {

using scheduler_testing::config;
using scheduler_testing::ids;
using scheduler_testing::max_tokens;
using scheduler_testing::sample;
using scheduler_testing::tokens;
using Scheduled = std::vector<std::pair<std::string, int32_t>>;
using Ids = std::vector<std::string>;

constexpr int32_t kPageSize = 4;
constexpr TokenId kEos = 2;
constexpr TokenId kToken = 7;  // what the stand-in model samples unless told otherwise

// A manager over `num_pages` pages of 4 tokens and a scheduler over it; step() runs one
// schedule + model + update_from_output, with verify() after each half.
struct Harness {
  Harness(int32_t num_pages, SchedulerConfig c)
      : m(num_pages, kPageSize, c.max_model_len), s(c, m) {}

  void add(const std::string& id, std::vector<TokenId> prompt, SamplingParams p = max_tokens(50),
           int32_t priority = 0) {
    s.add_request(Request(id, std::move(prompt)), std::move(p), kEos, priority);
  }

  SchedulerOutput step(TokenId token = kToken) {
    SchedulerOutput out = s.schedule();
    s.verify();
    results = s.update_from_output(out, sample(s, out, [&](const std::string&) { return token; }));
    s.verify();
    return out;
  }

  void run_to_completion(int32_t max_steps = 1000) {
    for (int32_t i = 0; i < max_steps && s.has_unfinished_requests(); ++i) step();
    ASSERT_FALSE(s.has_unfinished_requests());
    EXPECT_EQ(m.page_pool().get_num_free_pages(), m.config().num_usable_pages());  // rule 30
  }

  KVCacheManager m;
  Scheduler s;
  std::vector<RequestOutput> results;
};

TEST(SchedulerScenarios, SelfPreemptionEndsTheRunningPass) {
  // PRIORITY; 4 usable pages. A (priority 5) runs first, B (priority 0, more urgent) after it.
  Harness h(5, config(4, 64, 64, SchedulingPolicy::kPriority));
  h.add("A", tokens(7, 100), max_tokens(50), /*priority=*/5);
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 7}}));  // A: pages 1, 2
  h.add("B", tokens(7, 200), max_tokens(50), /*priority=*/0);
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 1}, {"B", 7}}));  // B: pages 3, 4
  EXPECT_EQ(ids(h.s.running()), (Ids{"A", "B"}));

  // A's 9th token needs a third page; none is free. The victim is the largest priority: A
  // itself. The pass ends there, so B - whose next token fits its pages - is not scheduled,
  // and nothing is admitted in a step that preempted.
  const SchedulerOutput out = h.step();
  EXPECT_TRUE(out.num_scheduled_tokens.empty());
  EXPECT_EQ(out.total_num_scheduled_tokens, 0);
  EXPECT_EQ(out.preempted_req_ids, (Ids{"A"}));
  EXPECT_EQ(ids(h.s.running()), (Ids{"B"}));
  EXPECT_EQ(ids(h.s.waiting()), (Ids{"A"}));
  const Sequence* a = h.s.find_sequence("A");
  EXPECT_EQ(a->status(), SequenceStatus::kPreempted);
  EXPECT_EQ(a->num_computed_tokens(), 0);
  EXPECT_EQ(a->num_output_tokens(), 2);  // kept (rule 36)
  EXPECT_EQ(a->num_preemptions(), 1);
  EXPECT_FALSE(h.m.has_request("A"));

  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"B", 1}}));  // B goes on next step
  h.run_to_completion();
}

TEST(SchedulerScenarios, PriorityVictimAlreadyScheduledGivesItsTokensBack) {
  // PRIORITY; 5 usable pages. running = [A (priority 5), B (priority 0)].
  Harness h(6, config(4, 64, 64, SchedulingPolicy::kPriority));
  h.add("A", tokens(7, 100), max_tokens(50), 5);
  h.step();  // A: pages 1, 2
  h.add("B", tokens(7, 200), max_tokens(50), 0);
  h.step();  // A's token fits; B: pages 3, 4
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 1}, {"B", 1}}));  // A takes page 5

  // A's next token fits its pages and is scheduled; B's needs a page, none is free; the
  // victim is A (largest priority), already scheduled: its token goes back to the budget and
  // it leaves the step's output.
  const SchedulerOutput out = h.step();
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"B", 1}}));
  EXPECT_EQ(out.total_num_scheduled_tokens, 1);
  EXPECT_EQ(out.preempted_req_ids, (Ids{"A"}));
  EXPECT_EQ(out.scheduled_cached_reqs.request_ids, (Ids{"B"}));
  EXPECT_EQ(out.scheduled_cached_reqs.num_computed_tokens, (std::vector<int32_t>{8}));
  EXPECT_EQ(h.s.find_sequence("A")->num_computed_tokens(), 0);
  EXPECT_EQ(h.s.find_sequence("A")->num_tokens(), 10);  // 7 prompt + 3 outputs, kept
  EXPECT_EQ(ids(h.s.running()), (Ids{"B"}));
  h.run_to_completion();
}

TEST(SchedulerScenarios, FcfsVictimsAreTakenFromTheBackAndKeepTheirOrderInWaiting) {
  // FCFS; 4 usable pages; A is chunked 8 tokens a step, so its second chunk needs 2 pages.
  SchedulerConfig c = config(3, 16, 64);
  c.long_prefill_token_threshold = 8;
  Harness h(5, c);
  h.add("A", tokens(16, 100));
  h.add("B", tokens(4, 200));
  h.add("C", tokens(4, 300));
  h.add("D", tokens(4, 400));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 8}, {"B", 4}, {"C", 4}}));
  const SchedulerOutput out = h.step();
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"A", 8}}));
  EXPECT_EQ(out.preempted_req_ids, (Ids{"C", "B"}));    // preemption order
  EXPECT_EQ(ids(h.s.waiting()), (Ids{"B", "C", "D"}));  // original relative order, in front
  EXPECT_EQ(h.s.stats().num_preemptions, 2);
  h.run_to_completion();
}

TEST(SchedulerScenarios, TwoIdenticalPromptsInOneStepShareTheFirstOnesFullPages) {
  // Rule 42: X's full pages are cached when allocated, so Y, admitted later in the same step,
  // hits them although this step's forward pass is still computing them.
  Harness h(32, config(4, 64, 64));
  h.add("X", tokens(10));
  h.add("Y", tokens(10));
  const SchedulerOutput out = h.step();
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"X", 10}, {"Y", 2}}));
  ASSERT_EQ(out.scheduled_new_reqs.size(), 2u);
  const NewRequestData& x = out.scheduled_new_reqs[0];
  const NewRequestData& y = out.scheduled_new_reqs[1];
  EXPECT_EQ(x.page_ids, (GroupPages{{1, 2, 3}}));
  EXPECT_EQ(x.num_computed_tokens, 0);
  EXPECT_EQ(y.page_ids, (GroupPages{{1, 2, 4}}));
  EXPECT_EQ(y.num_computed_tokens, 8);
  EXPECT_EQ(y.prompt_token_ids, tokens(10));
  const PrefixCacheStats& st = h.s.prefix_cache_stats();
  EXPECT_EQ(st.requests(), 2);
  EXPECT_EQ(st.queries(), 20);
  EXPECT_EQ(st.hits(), 8);
}

TEST(SchedulerScenarios, AResumedRequestReHitsItsOwnPages) {
  // FCFS; 5 usable pages. A and B take 2 pages each; A's 9th token takes the last free page;
  // B's needs one more: B is the last running request, so it preempts itself.
  Harness h(6, config(4, 64, 64));
  h.add("A", tokens(8, 100), max_tokens(2));
  h.add("B", tokens(8, 200));
  h.step();
  SchedulerOutput out = h.step();  // A finishes (max_tokens 2) in this step's update
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"A", 1}}));
  EXPECT_EQ(out.preempted_req_ids, (Ids{"B"}));
  ASSERT_EQ(h.results.size(), 1u);
  EXPECT_EQ(h.results[0].finish_reason, FinishReason::kLength);

  // B comes back: its 9 tokens hit its own two full pages (3 and 4, freed with their hashes),
  // and only its last token is computed again.
  out = h.step();
  EXPECT_EQ(out.finished_req_ids, (Ids{"A"}));
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"B", 1}}));
  EXPECT_TRUE(out.scheduled_new_reqs.empty());
  const CachedRequestData& cached = out.scheduled_cached_reqs;
  ASSERT_EQ(cached.size(), 1);
  EXPECT_EQ(cached.resumed, (std::vector<uint8_t>{1}));
  ASSERT_TRUE(cached.new_page_ids[0].has_value());
  EXPECT_EQ(*cached.new_page_ids[0], (GroupPages{{3, 4, 5}}));  // all its pages
  EXPECT_EQ(cached.num_computed_tokens, (std::vector<int32_t>{8}));
  const PrefixCacheStats& st = h.s.prefix_cache_stats();
  EXPECT_EQ(st.resumed_requests(), 1);
  EXPECT_EQ(st.resumed_queries(), 9);
  EXPECT_EQ(st.resumed_hits(), 8);
  h.run_to_completion();
}

TEST(SchedulerScenarios, ChunkedPrefillOffStopsAdmissionAtAnOverBudgetPrompt) {
  SchedulerConfig c = config(4, 32, 32);
  c.enable_chunked_prefill = false;
  Harness h(64, c);
  h.add("A", tokens(20, 100));
  h.add("B", tokens(20, 200));
  h.add("C", tokens(4, 300));
  // B's 20 tokens exceed the 12 left: admission stops; C, which would fit, does not skip ahead.
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 20}}));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 1}, {"B", 20}, {"C", 4}}));
  h.run_to_completion();
}

TEST(SchedulerScenarios, ChunkedPrefillOnSplitsAPromptOverTheBudgetLeft) {
  Harness h(64, config(4, 32, 64));
  h.add("A", tokens(20, 100));
  h.add("B", tokens(20, 200));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 20}, {"B", 12}}));
  EXPECT_TRUE(h.results.size() == 1 && h.results[0].request_id == "A");  // B's chunk is partial
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 1}, {"B", 8}}));
  h.run_to_completion();
}

TEST(SchedulerScenarios, LongPrefillThresholdCapsEveryChunk) {
  SchedulerConfig c = config(4, 64, 64);
  c.long_prefill_token_threshold = 6;
  Harness h(64, c);
  h.add("A", tokens(15, 100));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 6}}));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 6}}));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 3}}));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 1}}));
}

TEST(SchedulerScenarios, AdmissionStopsAtTheFirstHeadThatDoesNotFitAndNeverPreempts) {
  // 6 usable pages; A holds 4. B needs 3 (rule 39 a fails), C would need 1: it waits behind B.
  Harness h(7, config(4, 64, 64));
  h.add("A", tokens(16, 100), max_tokens(3));
  h.step();
  h.add("B", tokens(12, 200));
  h.add("C", tokens(4, 300));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 1}}));
  EXPECT_EQ(ids(h.s.waiting()), (Ids{"B", "C"}));
  EXPECT_EQ(h.s.stats().num_preemptions, 0);
  EXPECT_EQ(h.s.prefix_cache_stats().requests(), 1);  // B's failed lookups are not counted
  EXPECT_EQ(h.m.prefix_cache_stats().requests(), 0);  // the scheduler's lookups record nothing
  h.step();                                           // A finishes (3 outputs), freeing its pages
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"B", 12}, {"C", 4}}));
  EXPECT_EQ(h.s.prefix_cache_stats().requests(), 3);
  h.run_to_completion();
}

TEST(SchedulerScenarios, ReserveFullPromptDecidesWhetherAFirstChunkIsEnough) {
  // 8 usable pages, chunks of 4 tokens. H holds 5 pages when X (24 tokens: 6 pages, first
  // chunk 1 page) arrives: only the chunk fits in the 3 free pages.
  for (bool reserve : {true, false}) {
    SCOPED_TRACE(reserve);
    SchedulerConfig c = config(4, 16, 64);
    c.long_prefill_token_threshold = 4;
    c.reserve_full_prompt = reserve;
    Harness h(9, c);
    h.add("H", tokens(16, 100));
    for (int i = 0; i < 4; ++i) h.step();  // H's prompt in 4 chunks: 4 pages
    h.add("X", tokens(24, 200));
    const SchedulerOutput out = h.step();  // H's 17th token takes a 5th page
    if (reserve) {
      EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"H", 1}}));  // rule 39 (a) fails
    } else {
      EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"H", 1}, {"X", 4}}));  // only (b)
    }
  }
}

TEST(SchedulerScenarios, MaxNumSeqsLimitsAdmission) {
  Harness h(64, config(2, 64, 64));
  h.add("A", tokens(4, 100));
  h.add("B", tokens(4, 200));
  h.add("C", tokens(4, 300));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"A", 4}, {"B", 4}}));
  EXPECT_EQ(h.s.num_waiting(), 1);
}

TEST(SchedulerScenarios, PriorityAdmitsTheMostUrgentFirst) {
  Harness h(64, config(1, 64, 64, SchedulingPolicy::kPriority));
  h.add("late", tokens(4, 100), max_tokens(1), 3);
  h.add("urgent", tokens(4, 200), max_tokens(1), 1);
  h.add("urgent2", tokens(4, 300), max_tokens(1), 1);
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"urgent", 4}}));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"urgent2", 4}}));  // earlier arrival
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"late", 4}}));
}

TEST(SchedulerScenarios, EosBeforeMinTokensIsIgnored) {
  Harness h(64, config(4, 64, 64));
  h.add("r", tokens(4), max_tokens(10, /*min_tokens=*/2));
  h.step(kEos);
  ASSERT_EQ(h.results.size(), 1u);
  EXPECT_FALSE(h.results[0].finished);
  h.step(kEos);
  ASSERT_EQ(h.results.size(), 1u);
  EXPECT_TRUE(h.results[0].finished);
  EXPECT_EQ(h.results[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(h.results[0].new_token_ids, (std::vector<TokenId>{kEos}));
  EXPECT_FALSE(h.s.has_unfinished_requests());
  EXPECT_EQ(h.step().finished_req_ids, (Ids{"r"}));  // reported in the next step
}

TEST(SchedulerScenarios, StopTokenIdsFinishWithTheirToken) {
  Harness h(64, config(4, 64, 64));
  SamplingParams p = max_tokens(10);
  p.stop_token_ids = {40, 41};
  h.add("r", tokens(4), p);
  h.step(39);
  EXPECT_FALSE(h.results[0].finished);
  h.step(41);
  EXPECT_TRUE(h.results[0].finished);
  EXPECT_EQ(h.results[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(h.results[0].stop_reason, 41);
}

TEST(SchedulerScenarios, MaxTokensAndMaxModelLenFinishWithLength) {
  Harness h(64, config(4, 64, 16));
  h.add("short", tokens(4, 100), max_tokens(2));
  h.add("long", tokens(14, 200), max_tokens(50));
  h.step();  // both produce their first token; "long" has 15 tokens
  h.step();  // "short" has 2 outputs, "long" 16 tokens = max_model_len
  ASSERT_EQ(h.results.size(), 2u);
  for (const RequestOutput& r : h.results) {
    EXPECT_TRUE(r.finished) << r.request_id;
    EXPECT_EQ(r.finish_reason, FinishReason::kLength) << r.request_id;
  }
  EXPECT_EQ(h.step().finished_req_ids, (Ids{"short", "long"}));  // output order
}

TEST(SchedulerScenarios, APoolSmallerThanMaxModelLenCapsRequestsAtWhatItHolds) {
  // 3 usable pages of 4 tokens hold 12 tokens of one request; max_model_len is 64.
  Harness h(4, config(4, 64, 64));
  EXPECT_EQ(h.s.max_num_tokens(), 13);
  EXPECT_THROW(h.add("big", tokens(13)), CapacityError);  // rule 29
  h.add("r", tokens(10), max_tokens(50));
  for (int i = 0; i < 3; ++i) h.step();
  ASSERT_EQ(h.results.size(), 1u);
  EXPECT_EQ(h.results[0].finish_reason, FinishReason::kLength);
  EXPECT_FALSE(h.s.has_unfinished_requests());  // 13 tokens: the 13th has no slot
}

TEST(SchedulerScenarios, AbortInEachState) {
  // 4 usable pages: W waits behind R, which holds them all; P was preempted; U is unknown.
  Harness h(5, config(4, 64, 64));
  h.add("R", tokens(15, 100));
  h.add("P", tokens(4, 200));
  h.step();  // R takes pages 1-4 (16 slots); P cannot be admitted (no page)
  EXPECT_EQ(ids(h.s.waiting()), (Ids{"P"}));
  EXPECT_FALSE(h.s.abort_request("U"));  // unknown: no-op
  EXPECT_TRUE(h.s.abort_request("P"));   // waiting
  EXPECT_FALSE(h.s.abort_request("P"));  // finished already
  EXPECT_EQ(h.s.num_waiting(), 0);
  h.s.verify();

  EXPECT_TRUE(h.s.abort_request("R"));  // running: pages freed at once
  EXPECT_EQ(h.m.page_pool().get_num_free_pages(), 4);
  h.s.verify();
  SchedulerOutput out = h.s.schedule();
  EXPECT_EQ(out.finished_req_ids, (Ids{"P", "R"}));
  EXPECT_TRUE(out.num_scheduled_tokens.empty());

  // Preempted: FCFS; A and B fill the pool, B preempts itself.
  h.s.update_from_output(out, std::vector<std::vector<TokenId>>{});
  h.add("A", tokens(8, 300));
  h.add("B", tokens(8, 400));
  h.step();
  EXPECT_EQ(h.step().preempted_req_ids, (Ids{"B"}));
  EXPECT_EQ(h.s.find_sequence("B")->status(), SequenceStatus::kPreempted);
  EXPECT_TRUE(h.s.abort_request("B"));
  h.s.verify();

  // Aborted between schedule() and update_from_output(): skipped there.
  out = h.s.schedule();
  EXPECT_EQ(out.finished_req_ids, (Ids{"B"}));
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"A", 1}}));
  EXPECT_TRUE(h.s.abort_request("A"));
  const auto results = h.s.update_from_output(out, std::vector<std::vector<TokenId>>{{kToken}});
  EXPECT_TRUE(results.empty());
  h.s.verify();
  EXPECT_FALSE(h.s.has_unfinished_requests());
  EXPECT_EQ(h.m.page_pool().get_num_free_pages(), 4);
  EXPECT_EQ(h.s.schedule().finished_req_ids, (Ids{"A"}));
}

TEST(SchedulerScenarios, ARequestIdCanBeReusedOnceFinished) {
  Harness h(64, config(4, 64, 64));
  h.add("r", tokens(4), max_tokens(1));
  h.step();
  EXPECT_FALSE(h.s.has_unfinished_requests());
  h.add("r", tokens(6, 5000));
  EXPECT_EQ(h.step().num_scheduled_tokens, (Scheduled{{"r", 6}}));
}

}  // namespace
}  // namespace pagedkv
