#include "pagedkv/compat/inference_scheduler.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using V = std::vector<PageId>;

std::vector<TokenId> tokens(int32_t n, TokenId first = 100) {
  std::vector<TokenId> out(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = first + i;
  return out;
}

InitialSequenceRequest prompt_request(std::string id, int32_t len, int32_t chunk_size) {
  InitialSequenceRequest r;
  r.id = std::move(id);
  r.prompt_token_ids = tokens(len);
  r.chunk_size = chunk_size;
  return r;
}

// Everything a failed call must leave as it was.
struct State {
  V free_pages;
  std::vector<std::string> prefill_ids, decode_ids;
  std::deque<int32_t> available;
  std::vector<int32_t> order;
  std::vector<std::pair<int32_t, V>> active;  // (position, page table) in admission order
  bool operator==(const State&) const = default;
};

struct Fixture {
  HBMPageManager manager;
  InferenceScheduler scheduler;
  ActiveSequenceBatch batch;

  Fixture(int32_t num_pages, int32_t page_size, int32_t batch_size, int32_t pages_per_seq,
          int32_t resume_chunk_size = 8)
      : manager(num_pages, page_size),
        scheduler(manager, {.batch_size = batch_size,
                            .num_pages_per_sequence = pages_per_seq,
                            .resume_chunk_size = resume_chunk_size}),
        batch(batch_size) {}

  int32_t page_size() const { return manager.page_size(); }

  // A task whose prefill is done: `position` tokens, cdiv(position, page_size) pages taken from
  // the manager.
  GenerationStepTask decode_task(std::string id, int32_t position) {
    GenerationStepTask t;
    t.id = std::move(id);
    t.position = position;
    t.token_ids = tokens(position);
    t.prefill_token_id = 900 + position;
    t.page_indices.assign(static_cast<size_t>(scheduler.config().num_pages_per_sequence), 0);
    const V pages = manager.alloc_hbm_pages(cdiv(position, page_size()));
    std::copy(pages.begin(), pages.end(), t.page_indices.begin());
    return t;
  }

  // Enqueues decode tasks and runs a plan that admits them all (no prefill pending).
  NextIterationPlan admit(const std::vector<std::pair<std::string, int32_t>>& tasks) {
    for (const auto& [id, position] : tasks) {
      scheduler.enqueue_decodes_request(decode_task(id, position));
    }
    NextIterationPlan plan = scheduler.create_plan(std::nullopt, batch);
    check();
    return plan;
  }

  void check(const std::optional<InitialSequenceRequest>& active = std::nullopt) const {
    scheduler.verify(active, batch);
  }

  State state() const {
    State s;
    s.free_pages = manager.pool().get_all_free_pages();
    for (const auto& r : scheduler.prefill_queue()) s.prefill_ids.push_back(r.id);
    for (const auto& t : scheduler.decodes_queue()) s.decode_ids.push_back(t.id);
    s.available = batch.available_slots();
    s.order = batch.admission_order();
    for (int32_t slot : batch.admission_order()) {
      s.active.emplace_back(batch.at(slot).position, batch.at(slot).page_indices);
    }
    return s;
  }
};

std::vector<int32_t> slots_of(const std::vector<GenerationStepTask>& tasks) {
  std::vector<int32_t> out;
  for (const auto& t : tasks) out.push_back(t.slot);
  return out;
}

// ---- the seed's scenarios -------------------------------------------------------------------

TEST(InferenceScheduler, EnqueuedPromptGetsAPageTableOfDummyPages) {
  Fixture f(16, 4, 2, 8);
  f.scheduler.enqueue_prefill_request(prompt_request("a", 10, 8));
  ASSERT_EQ(f.scheduler.prefill_queue().size(), 1u);
  EXPECT_EQ(f.scheduler.prefill_queue().front().page_indices, V(8, 0));
  EXPECT_EQ(f.scheduler.max_seq_len(), 32);
  EXPECT_EQ(f.scheduler.batch_size(), 2);
  f.check();
}

TEST(InferenceScheduler, PrefillRunsOneChunkPerPlanWithThePagesOfThatChunk) {
  Fixture f(16, 4, 2, 8);
  f.scheduler.enqueue_prefill_request(prompt_request("a", 20, 8));
  std::optional<InitialSequenceRequest> active;
  const std::vector<V> expected_updates = {{1, 2}, {3, 4}, {5}};  // 8 + 8 + 4 tokens
  for (size_t chunk = 0; chunk < expected_updates.size(); ++chunk) {
    NextIterationPlan plan = f.scheduler.create_plan(std::move(active), f.batch);
    ASSERT_TRUE(plan.schedule_prefill);
    EXPECT_FALSE(plan.schedule_decodes);
    ASSERT_TRUE(plan.prefill_request && plan.prefill_pages_update);
    EXPECT_EQ(plan.prefill_request->chunk_idx, static_cast<int32_t>(chunk));
    EXPECT_EQ(plan.prefill_pages_update->page_indices, expected_updates[chunk]);
    f.check(plan.prefill_request);
    active = std::move(plan.prefill_request);
    ++active->chunk_idx;
  }
  EXPECT_TRUE(active->is_complete());
  EXPECT_EQ(active->page_indices, (V{1, 2, 3, 4, 5, 0, 0, 0}));
  GenerationStepTask t = GenerationStepTask::from_prefill(std::move(*active), 7);
  EXPECT_EQ(t.position, 20);
  EXPECT_EQ(t.token_ids, tokens(20));
  EXPECT_EQ(t.prefill_token_id, 7);
  EXPECT_EQ(t.slot, -1);
  f.scheduler.enqueue_decodes_request(std::move(t));
  f.check();
}

TEST(InferenceScheduler, ChunksThatAreNotPageMultiplesShareTheirBoundaryPage) {
  Fixture f(16, 4, 2, 8);
  f.scheduler.enqueue_prefill_request(prompt_request("a", 9, 3));
  std::optional<InitialSequenceRequest> active;
  // Tokens [0,3) -> page 1; [3,6) -> page 2 (token 3 is in page 1); [6,9) -> page 3.
  for (const V& expected : {V{1}, V{2}, V{3}}) {
    NextIterationPlan plan = f.scheduler.create_plan(std::move(active), f.batch);
    EXPECT_EQ(plan.prefill_pages_update->page_indices, expected);
    active = std::move(plan.prefill_request);
    ++active->chunk_idx;
    f.check(active);
  }
  EXPECT_EQ(f.manager.num_free_pages(), 15 - 3);
}

TEST(InferenceScheduler, APromptStartsOnlyWhileADecodeSlotIsFree) {
  Fixture f(32, 4, 1, 8);
  f.admit({{"d", 5}});
  ASSERT_EQ(f.batch.num_available_slots(), 0);
  f.scheduler.enqueue_prefill_request(prompt_request("a", 4, 4));
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_FALSE(plan.schedule_prefill);
  EXPECT_TRUE(plan.schedule_decodes);
  EXPECT_EQ(f.scheduler.prefill_queue().size(), 1u);
  f.scheduler.finish_decode(f.batch, 0);
  plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_TRUE(plan.schedule_prefill);
  EXPECT_EQ(plan.prefill_request->id, "a");
  f.check(plan.prefill_request);
}

TEST(InferenceScheduler, OnlyOnePrefillRunsAtATime) {
  Fixture f(32, 4, 4, 8);
  f.scheduler.enqueue_prefill_request(prompt_request("a", 16, 8));
  f.scheduler.enqueue_prefill_request(prompt_request("b", 4, 8));
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  ASSERT_TRUE(plan.prefill_request.has_value());
  InitialSequenceRequest first_chunk_done = std::move(*plan.prefill_request);
  EXPECT_EQ(first_chunk_done.id, "a");
  ++first_chunk_done.chunk_idx;
  std::optional<InitialSequenceRequest> active = std::move(first_chunk_done);
  plan = f.scheduler.create_plan(std::move(active), f.batch);
  EXPECT_EQ(plan.prefill_request->id, "a");  // its second chunk, not "b"
  ASSERT_EQ(f.scheduler.prefill_queue().size(), 1u);
  EXPECT_EQ(f.scheduler.prefill_queue().front().id, "b");
  f.check(plan.prefill_request);
}

TEST(InferenceScheduler, DecodesWaitWhileAPrefillRunsUnlessTheyNearlyFillTheBatch) {
  Fixture f(64, 4, 20, 8);
  f.admit({{"d0", 5}, {"d1", 6}});
  f.scheduler.enqueue_prefill_request(prompt_request("a", 4, 4));
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_TRUE(plan.schedule_prefill);
  EXPECT_FALSE(plan.schedule_decodes);  // 2 decodes <= 0.95 * 20
  EXPECT_EQ(f.batch.num_active(), 2);
  f.check(plan.prefill_request);
}

TEST(InferenceScheduler, DecodesShareAPrefillStepWhenTheyExceed95PercentOfTheBatch) {
  Fixture f(96, 4, 20, 4);
  std::vector<std::pair<std::string, int32_t>> tasks;
  for (int i = 0; i < 19; ++i) tasks.emplace_back(fmt::format("d{}", i), 5);
  f.admit(tasks);
  f.scheduler.enqueue_prefill_request(prompt_request("a", 8, 4));
  // 19 decodes: 19 > 19.0 is false, the prefill runs alone.
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_TRUE(plan.schedule_prefill);
  EXPECT_FALSE(plan.schedule_decodes);
  std::optional<InitialSequenceRequest> active = std::move(plan.prefill_request);
  ++active->chunk_idx;
  // A 20th decode waiting in the queue tips it: 20 > 19.0, and it takes the last slot.
  f.scheduler.enqueue_decodes_request(f.decode_task("d19", 8));
  plan = f.scheduler.create_plan(std::move(active), f.batch);
  EXPECT_TRUE(plan.schedule_prefill);
  EXPECT_TRUE(plan.schedule_decodes);
  ASSERT_EQ(plan.new_decodes_requests.size(), 1u);
  EXPECT_EQ(plan.new_decodes_requests[0].id, "d19");
  EXPECT_EQ(plan.new_decodes_requests[0].slot, 19);
  EXPECT_EQ(plan.decodes_state_page_updates.size(), 1u);  // d19 at position 8
  f.check(plan.prefill_request);
}

TEST(InferenceScheduler, QueuedDecodesTakeFreeSlotsInQueueOrder) {
  Fixture f(32, 4, 3, 8);
  NextIterationPlan plan = f.admit({{"a", 5}, {"b", 6}, {"c", 7}, {"d", 9}});
  EXPECT_TRUE(plan.schedule_decodes);
  EXPECT_FALSE(plan.schedule_prefill);
  ASSERT_EQ(plan.new_decodes_requests.size(), 3u);
  EXPECT_EQ(plan.new_decodes_requests[0].id, "a");
  EXPECT_EQ(plan.new_decodes_requests[2].id, "c");
  EXPECT_EQ(slots_of(plan.new_decodes_requests), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(f.batch.admission_order(), (std::vector<int32_t>{0, 1, 2}));
  ASSERT_EQ(f.scheduler.decodes_queue().size(), 1u);
  EXPECT_EQ(f.scheduler.decodes_queue().front().id, "d");
  // A finished decode frees its slot; the queued one takes it in the next plan.
  f.scheduler.finish_decode(f.batch, 1);
  plan = f.scheduler.create_plan(std::nullopt, f.batch);
  ASSERT_EQ(plan.new_decodes_requests.size(), 1u);
  EXPECT_EQ(plan.new_decodes_requests[0].slot, 1);
  EXPECT_EQ(f.batch.admission_order(), (std::vector<int32_t>{0, 2, 1}));
  f.check();
}

TEST(InferenceScheduler, ADecodeGetsOnePageOnlyWhenItsPositionStartsAPage) {
  Fixture f(32, 4, 4, 8);
  // Positions 8 and 4 start pages 2 and 1; 5 and 6 lie in mapped pages.
  NextIterationPlan plan = f.admit({{"a", 8}, {"b", 5}, {"c", 4}, {"d", 6}});
  // a: pages 1-2, b: 3-4, c: 5, d: 6-7; new pages 8 (a), 9 (c).
  EXPECT_EQ(plan.decodes_state_page_updates,
            (std::vector<SlotPageAssignment>{{0, 2, 8}, {2, 1, 9}}));
  EXPECT_EQ(f.batch.at(0).page_indices[2], 8);
  EXPECT_EQ(plan.new_decodes_requests[0].page_indices[2], 8);  // copies carry the update
  // Next step: 9, 6, 5, 7; none starts a page.
  for (int32_t slot : f.batch.admission_order()) f.batch.advance(slot, 1);
  plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_TRUE(plan.decodes_state_page_updates.empty());
  EXPECT_TRUE(plan.new_decodes_requests.empty());
  EXPECT_TRUE(plan.schedule_decodes);
  f.check();
}

TEST(InferenceScheduler, PlanningAgainWithoutAStepMapsNothingTwice) {
  Fixture f(32, 4, 2, 8);
  f.admit({{"a", 8}});
  const State before = f.state();
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_TRUE(plan.decodes_state_page_updates.empty());
  EXPECT_EQ(f.state(), before);
  f.check();
}

TEST(InferenceScheduler, NothingToRunGivesAPlanWithNoWorkInsteadOfSpinning) {
  Fixture f(16, 4, 2, 8);
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_FALSE(plan.has_work());
  EXPECT_FALSE(plan.prefill_request.has_value());
  EXPECT_FALSE(plan.prefill_pages_update.has_value());
  EXPECT_TRUE(plan.new_decodes_requests.empty());
  EXPECT_TRUE(plan.decodes_state_page_updates.empty());
  f.check();
}

TEST(InferenceScheduler, DecodesNeedFreePagesOnlyForThePagesTheyMap) {
  // The seed allocated one page per active decode and raised with fewer free; here three
  // decodes run with two free pages, since only one of them starts a page.
  Fixture f(9, 4, 3, 4);
  NextIterationPlan plan = f.admit({{"a", 5}, {"b", 6}, {"c", 8}});  // 2 + 2 + 2 pages
  EXPECT_EQ(plan.decodes_state_page_updates, (std::vector<SlotPageAssignment>{{2, 2, 7}}));
  EXPECT_TRUE(plan.preempted_request_ids.empty());
  EXPECT_EQ(f.manager.num_free_pages(), 1);
}

// ---- where the seed raised: preemption ------------------------------------------------------

TEST(InferenceScheduler, ADecodeShortOfAPagePreemptsTheMostRecentlyAdmittedDecode) {
  // Seed: NotImplementedError("Eviction isn't supported yet, ...").
  Fixture f(8, 4, 3, 4);
  // a: pages 1-2, b: 3-4, d: 5-7; nothing free. a (position 8) needs page 2.
  NextIterationPlan plan = f.admit({{"a", 8}, {"b", 6}, {"d", 12}});
  // d, admitted last, is preempted (its pages freed last page first: 7, 6, 5); a takes 7.
  EXPECT_EQ(plan.preempted_request_ids, std::vector<std::string>{"d"});
  EXPECT_EQ(plan.decodes_state_page_updates, (std::vector<SlotPageAssignment>{{0, 2, 7}}));
  EXPECT_EQ(f.batch.admission_order(), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(f.batch.available_slots(), std::deque<int32_t>{2});
  EXPECT_TRUE(plan.schedule_decodes);
  // Admitted and preempted in the same step: not among this step's new decodes.
  ASSERT_EQ(plan.new_decodes_requests.size(), 2u);
  EXPECT_EQ(plan.new_decodes_requests[1].id, "b");
  // d waits at the front of the prefill queue, to recompute its 12 tokens and the pending one.
  ASSERT_EQ(f.scheduler.prefill_queue().size(), 1u);
  const InitialSequenceRequest& resumed = f.scheduler.prefill_queue().front();
  EXPECT_EQ(resumed.id, "d");
  std::vector<TokenId> expected = tokens(12);
  expected.push_back(912);
  EXPECT_EQ(resumed.prompt_token_ids, expected);
  EXPECT_EQ(resumed.chunk_idx, 0);
  EXPECT_EQ(resumed.chunk_size, 8);  // resume_chunk_size
  EXPECT_EQ(resumed.page_indices, V(4, 0));
  EXPECT_EQ(f.manager.pool().get_all_free_pages(), (V{6, 5}));
}

TEST(InferenceScheduler, ADecodeThatIsTheNewestPreemptsItself) {
  Fixture f(6, 4, 2, 4);
  f.admit({{"x", 9}, {"y", 7}});  // x: pages 1-3, y: 4-5; nothing free
  for (int32_t slot : f.batch.admission_order()) f.batch.advance(slot, 1);
  // x at 10 needs nothing; y at 8 needs page 2, and y is itself the most recently admitted:
  // it is preempted and the pass ends, x keeps running.
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_EQ(plan.preempted_request_ids, std::vector<std::string>{"y"});
  EXPECT_TRUE(plan.decodes_state_page_updates.empty());
  EXPECT_EQ(f.batch.admission_order(), std::vector<int32_t>{0});
  EXPECT_TRUE(plan.schedule_decodes);
  EXPECT_EQ(f.manager.num_free_pages(), 2);
  EXPECT_EQ(f.scheduler.prefill_queue().front().prompt_len(), 9);
  f.check();
}

TEST(InferenceScheduler, AnActivePrefillShortOfPagesPreemptsTheNewestDecode) {
  // Seed: NotImplementedError("Eviction is not supported yet").
  Fixture f(10, 4, 5, 8);
  f.admit({{"a", 5}, {"b", 3}, {"d", 8}});  // a: 1-2, b: 3, d: 4-5 and 6 for position 8
  f.scheduler.enqueue_prefill_request(prompt_request("p", 16, 8));
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_FALSE(plan.schedule_decodes);  // 3 decodes <= 0.95 * 5: the prefill runs alone
  EXPECT_EQ(plan.prefill_pages_update->page_indices, (V{7, 8}));
  std::optional<InitialSequenceRequest> active = std::move(plan.prefill_request);
  ++active->chunk_idx;
  // The second chunk needs 2 pages, 1 is free: d (newest, 3 pages) is preempted.
  plan = f.scheduler.create_plan(std::move(active), f.batch);
  EXPECT_EQ(plan.preempted_request_ids, std::vector<std::string>{"d"});
  EXPECT_TRUE(plan.schedule_prefill);
  EXPECT_EQ(plan.prefill_pages_update->page_indices, (V{9, 6}));
  EXPECT_EQ(f.batch.admission_order(), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(f.scheduler.prefill_queue().front().id, "d");
  f.check(plan.prefill_request);
}

TEST(InferenceScheduler, SeveralVictimsOfOneStepKeepTheirAdmissionOrderInThePrefillQueue) {
  Fixture f(10, 4, 5, 8);
  f.admit({{"a", 5}, {"b", 3}, {"c", 2}});  // a: 1-2, b: 3, c: 4
  f.scheduler.enqueue_prefill_request(prompt_request("p", 28, 20));
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);  // pages 5-9
  std::optional<InitialSequenceRequest> active = std::move(plan.prefill_request);
  ++active->chunk_idx;
  f.scheduler.enqueue_prefill_request(prompt_request("later", 4, 4));
  ASSERT_EQ(f.manager.num_free_pages(), 0);
  // The last chunk (8 tokens) needs 2 pages: c, then b are preempted; a keeps running.
  plan = f.scheduler.create_plan(std::move(active), f.batch);
  EXPECT_EQ(plan.preempted_request_ids, (std::vector<std::string>{"c", "b"}));
  std::vector<std::string> ids;
  for (const auto& r : f.scheduler.prefill_queue()) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"b", "c", "later"}));
  EXPECT_EQ(f.batch.admission_order(), std::vector<int32_t>{0});
  f.check(plan.prefill_request);
}

TEST(InferenceScheduler, AnActivePrefillThatCannotFitEvenAfterPreemptingYieldsItself) {
  Fixture f(9, 4, 4, 8);
  f.admit({{"a", 2}});  // page 1
  f.scheduler.enqueue_prefill_request(prompt_request("p", 32, 16));
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);  // pages 2-5
  std::optional<InitialSequenceRequest> active = std::move(plan.prefill_request);
  ++active->chunk_idx;
  // A finished prefill's task holds pages 6-8 in the decode queue, out of preemption's reach:
  // decodes are not admitted while the prefill runs (1 + 1 <= 0.95 * 4).
  f.scheduler.enqueue_decodes_request(f.decode_task("q", 12));
  ASSERT_EQ(f.manager.num_free_pages(), 0);
  // The second chunk needs 4 pages; preempting a would give 1. The prefill yields instead.
  plan = f.scheduler.create_plan(std::move(active), f.batch);
  EXPECT_EQ(plan.preempted_request_ids, std::vector<std::string>{"p"});
  EXPECT_FALSE(plan.schedule_prefill);
  EXPECT_FALSE(plan.prefill_request.has_value());
  EXPECT_FALSE(plan.prefill_pages_update.has_value());
  // With no prefill planned the decodes run: a keeps its slot, q is admitted and, at position
  // 12, takes page 5 (p's pages came back last first: 5, 4, 3, 2).
  EXPECT_TRUE(plan.schedule_decodes);
  EXPECT_EQ(f.batch.num_active(), 2);
  EXPECT_EQ(plan.decodes_state_page_updates, (std::vector<SlotPageAssignment>{{1, 3, 5}}));
  const InitialSequenceRequest& again = f.scheduler.prefill_queue().front();
  EXPECT_EQ(again.id, "p");
  EXPECT_EQ(again.chunk_idx, 0);
  EXPECT_EQ(again.chunk_size, 16);  // its own chunk size
  EXPECT_EQ(again.page_indices, V(8, 0));
  EXPECT_EQ(f.manager.pool().get_all_free_pages(), (V{4, 3, 2}));
  f.check();
}

TEST(InferenceScheduler, ANewPromptShortOfPagesWaitsAtTheFrontWithoutPreempting) {
  Fixture f(6, 4, 4, 4);
  f.admit({{"a", 9}, {"b", 5}});  // 3 + 2 pages, nothing free
  f.scheduler.enqueue_prefill_request(prompt_request("p", 4, 4));
  f.scheduler.enqueue_prefill_request(prompt_request("q", 4, 4));
  const State before = f.state();
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  EXPECT_FALSE(plan.schedule_prefill);
  EXPECT_TRUE(plan.preempted_request_ids.empty());
  EXPECT_TRUE(plan.schedule_decodes);  // the decodes run instead
  EXPECT_EQ(f.state(), before);        // p is back at the front, nothing else moved
  f.check();
}

TEST(InferenceScheduler, APreemptedDecodeIsRecomputedAndResumesWithItsTokens) {
  Fixture f(6, 4, 2, 4, /*resume_chunk_size=*/5);
  f.admit({{"a", 4}, {"b", 8}});  // a: page 1 + page 3 (boundary); b: pages 2, 4, + page 5
  ASSERT_EQ(f.manager.num_free_pages(), 0);
  for (int k = 0; k < 4; ++k) {
    for (int32_t slot : f.batch.admission_order()) f.batch.advance(slot, 60 + k);
    NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
    if (k < 3) {
      ASSERT_TRUE(plan.preempted_request_ids.empty());
    } else {
      // a reaches 8 and needs a page: b (newest) is preempted.
      EXPECT_EQ(plan.preempted_request_ids, std::vector<std::string>{"b"});
    }
  }
  const InitialSequenceRequest resumed = f.scheduler.prefill_queue().front();
  EXPECT_EQ(resumed.prompt_len(), 13);  // 12 tokens computed + the pending one
  EXPECT_EQ(resumed.prompt_token_ids.back(), 63);
  EXPECT_EQ(resumed.prompt_token_ids[11], 62);
  f.scheduler.finish_decode(f.batch, 0);  // a is done: its pages come back
  std::optional<InitialSequenceRequest> active;
  for (int chunk = 0; chunk < 3; ++chunk) {  // 5 + 5 + 3 tokens
    NextIterationPlan plan = f.scheduler.create_plan(std::move(active), f.batch);
    ASSERT_TRUE(plan.schedule_prefill);
    EXPECT_EQ(plan.prefill_request->id, "b");
    active = std::move(plan.prefill_request);
    ++active->chunk_idx;
    f.check(active);
  }
  EXPECT_TRUE(active->is_complete());
  f.scheduler.enqueue_decodes_request(GenerationStepTask::from_prefill(std::move(*active), 64));
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);
  ASSERT_EQ(plan.new_decodes_requests.size(), 1u);
  EXPECT_EQ(plan.new_decodes_requests[0].position, 13);
  EXPECT_EQ(plan.new_decodes_requests[0].prefill_token_id, 64);
  f.check();
}

TEST(InferenceScheduler, FinishDecodeFreesItsPagesAndItsSlot) {
  Fixture f(16, 4, 2, 4);
  f.admit({{"a", 6}, {"b", 8}});
  const int32_t free_before = f.manager.num_free_pages();
  GenerationStepTask done = f.scheduler.finish_decode(f.batch, 1);
  EXPECT_EQ(done.id, "b");
  EXPECT_EQ(f.manager.num_free_pages(), free_before + 3);
  EXPECT_EQ(f.batch.available_slots(), std::deque<int32_t>{1});
  EXPECT_FALSE(f.batch.is_active(1));
  f.check();
}

// ---- bad input: typed errors, nothing changed -----------------------------------------------

TEST(InferenceSchedulerErrors, ConstructorRejectsBadConfig) {
  HBMPageManager m(9, 4);
  using C = InferenceSchedulerConfig;
  EXPECT_THROW(InferenceScheduler(m, C{.batch_size = 0, .num_pages_per_sequence = 4}),
               InvalidArgument);
  EXPECT_THROW(InferenceScheduler(m, C{.batch_size = 2, .num_pages_per_sequence = 0}),
               InvalidArgument);
  EXPECT_THROW(InferenceScheduler(m, C{.batch_size = 2, .num_pages_per_sequence = 9}),
               InvalidArgument);  // 8 usable pages
  EXPECT_THROW(InferenceScheduler(
                   m, C{.batch_size = 2, .num_pages_per_sequence = 8, .resume_chunk_size = 0}),
               InvalidArgument);
  EXPECT_NO_THROW(InferenceScheduler(m, C{.batch_size = 2, .num_pages_per_sequence = 8}));
  EXPECT_THROW(ActiveSequenceBatch(0), InvalidArgument);
}

TEST(InferenceSchedulerErrors, BadPrefillRequestsFailAndChangeNothing) {
  Fixture f(16, 4, 2, 4);
  f.scheduler.enqueue_prefill_request(prompt_request("ok", 4, 4));
  const State before = f.state();
  EXPECT_THROW(f.scheduler.enqueue_prefill_request(prompt_request("empty", 0, 4)), InvalidArgument);
  EXPECT_THROW(f.scheduler.enqueue_prefill_request(prompt_request("long", 17, 4)), InvalidArgument);
  EXPECT_THROW(f.scheduler.enqueue_prefill_request(prompt_request("chunk", 4, 0)), InvalidArgument);
  InitialSequenceRequest r = prompt_request("started", 8, 4);
  r.chunk_idx = 1;
  EXPECT_THROW(f.scheduler.enqueue_prefill_request(r), InvalidArgument);
  r = prompt_request("mapped", 8, 4);
  r.page_indices = {3, 0, 0, 0};
  EXPECT_THROW(f.scheduler.enqueue_prefill_request(r), InvalidArgument);
  r.page_indices = {0, 0, 0};
  EXPECT_THROW(f.scheduler.enqueue_prefill_request(r), InvalidArgument);
  EXPECT_EQ(f.state(), before);
  f.check();
}

TEST(InferenceSchedulerErrors, BadDecodeTasksFailAndChangeNothing) {
  Fixture f(16, 4, 2, 4);
  GenerationStepTask good = f.decode_task("good", 6);  // pages 1, 2
  const State before = f.state();
  auto expect = [&](GenerationStepTask t, auto error_tag) {
    using Error = decltype(error_tag);
    EXPECT_THROW(f.scheduler.enqueue_decodes_request(std::move(t)), Error);
    EXPECT_EQ(f.state(), before);
  };
  GenerationStepTask t = good;
  t.slot = 0;
  expect(t, InvalidArgument(""));
  t = good;
  t.position = 0;
  t.token_ids.clear();
  expect(t, InvalidArgument(""));
  t = good;
  t.position = 16;  // max_seq_len: no room for the next token
  t.token_ids = tokens(16);
  expect(t, OutOfRange(""));
  t = good;
  t.token_ids.pop_back();
  expect(t, InvalidArgument(""));
  t = good;
  t.page_indices.pop_back();
  expect(t, InvalidArgument(""));
  t = good;
  t.page_indices = {1, 0, 2, 0};  // not a prefix
  expect(t, InvalidArgument(""));
  t = good;
  t.page_indices = {1, 1, 0, 0};
  expect(t, InvalidArgument(""));
  t = good;
  t.page_indices = {1, 0, 0, 0};  // position 6 needs 2 pages
  expect(t, InvalidArgument(""));
  t = good;
  t.page_indices = {1, 16, 0, 0};
  expect(t, OutOfRange(""));
  t = good;
  t.page_indices = {1, 9, 0, 0};  // never handed out
  expect(t, StateError(""));
  f.scheduler.enqueue_decodes_request(std::move(good));
  f.check();
}

TEST(InferenceSchedulerErrors, CreatePlanRejectsBadStateAndChangesNothing) {
  Fixture f(16, 4, 2, 4);
  f.scheduler.enqueue_prefill_request(prompt_request("p", 8, 4));
  f.scheduler.enqueue_decodes_request(f.decode_task("q", 3));
  const State before = f.state();

  ActiveSequenceBatch other(3);
  EXPECT_THROW(f.scheduler.create_plan(std::nullopt, other), InvalidArgument);

  std::optional<InitialSequenceRequest> active = prompt_request("x", 8, 4);
  active->page_indices.assign(4, 0);
  active->chunk_idx = 2;  // complete
  EXPECT_THROW(f.scheduler.create_plan(std::move(active), f.batch), StateError);
  EXPECT_TRUE(active.has_value());  // untouched on failure
  active->chunk_idx = 1;            // chunk 0's page is not mapped
  EXPECT_THROW(f.scheduler.create_plan(std::move(active), f.batch), StateError);
  active->chunk_idx = -1;
  EXPECT_THROW(f.scheduler.create_plan(std::move(active), f.batch), InvalidArgument);
  active->chunk_idx = 0;
  active->page_indices.assign(3, 0);
  EXPECT_THROW(f.scheduler.create_plan(std::move(active), f.batch), InvalidArgument);
  active->page_indices = {7, 0, 0, 0};  // not allocated
  EXPECT_THROW(f.scheduler.create_plan(std::move(active), f.batch), StateError);
  EXPECT_EQ(f.state(), before);
  EXPECT_EQ(active->id, "x");

  // An active decode advanced twice with no plan between: position 5 lies in page 1, which no
  // plan mapped.
  NextIterationPlan plan = f.scheduler.create_plan(std::nullopt, f.batch);  // p starts, q waits
  active = std::move(plan.prefill_request);
  ++active->chunk_idx;
  plan = f.scheduler.create_plan(std::move(active), f.batch);
  active = std::move(plan.prefill_request);
  ++active->chunk_idx;
  f.scheduler.enqueue_decodes_request(GenerationStepTask::from_prefill(std::move(*active), 5));
  plan = f.scheduler.create_plan(std::nullopt, f.batch);  // admits q (pos 3) and p (pos 8)
  ASSERT_EQ(f.batch.num_active(), 2);
  f.batch.advance(0, 1);  // q: 4
  f.batch.advance(0, 1);  // q: 5
  const State mid = f.state();
  EXPECT_THROW(f.scheduler.create_plan(std::nullopt, f.batch), StateError);
  EXPECT_EQ(f.state(), mid);

  // A decode at max_seq_len must be finished, not planned.
  Fixture g(16, 4, 1, 2);
  g.admit({{"m", 7}});
  g.batch.advance(0, 1);  // 8 = max_seq_len
  const State full = g.state();
  EXPECT_THROW(g.scheduler.create_plan(std::nullopt, g.batch), OutOfRange);
  EXPECT_EQ(g.state(), full);
  g.scheduler.finish_decode(g.batch, 0);
  g.check();
}

TEST(InferenceSchedulerErrors, FreeOrOutOfRangeSlotsFailAndChangeNothing) {
  Fixture f(16, 4, 2, 4);
  f.admit({{"a", 5}});
  const State before = f.state();
  EXPECT_THROW(f.scheduler.finish_decode(f.batch, 1), StateError);
  EXPECT_THROW(f.scheduler.finish_decode(f.batch, 2), OutOfRange);
  EXPECT_THROW(f.scheduler.finish_decode(f.batch, -1), OutOfRange);
  EXPECT_THROW(f.batch.advance(1, 7), StateError);
  EXPECT_THROW((void)f.batch.at(5), OutOfRange);
  EXPECT_EQ(f.state(), before);
  f.check();
}

TEST(InferenceSchedulerErrors, FromPrefillNeedsACompletePrefill) {
  InitialSequenceRequest r = prompt_request("a", 8, 4);
  r.chunk_idx = 1;
  EXPECT_THROW(GenerationStepTask::from_prefill(r, 1), StateError);
  r.chunk_idx = 2;
  EXPECT_EQ(GenerationStepTask::from_prefill(r, 1).position, 8);
}

TEST(InferenceSchedulerErrors, VerifyCatchesAPageNobodyMaps) {
  Fixture f(16, 4, 2, 4);
  f.admit({{"a", 5}});
  f.check();
  const V stray = f.manager.alloc_hbm_pages(1);
  EXPECT_THROW(f.check(), InternalError);
  f.manager.free_hbm_pages(stray);
  f.check();
}

// ---- random workload ------------------------------------------------------------------------

// The "model": the token sampled at position q of request r is a function of (r, q) only, so a
// recomputed request must produce exactly the tokens it would have without preemption.
TokenId model_token(int32_t request, int64_t q) {
  return static_cast<TokenId>((request * 7919 + q * 104729) % 30000 + 1);
}

struct Expected {
  int32_t number = 0;
  int32_t prompt_len = 0;
  int32_t total_len = 0;  // prompt + outputs when it finishes
};

class RandomDriver {
 public:
  RandomDriver(uint32_t seed, int32_t num_pages, int32_t page_size, int32_t batch_size,
               int32_t pages_per_seq)
      : rng_(seed),
        f_(num_pages, page_size, batch_size, pages_per_seq,
           /*resume_chunk_size=*/std::uniform_int_distribution<int32_t>(1, 12)(rng_)) {}

  void enqueue_one() {
    const int32_t n = next_++;
    const int32_t max_len = f_.scheduler.max_seq_len();
    const int32_t prompt_len = std::uniform_int_distribution<int32_t>(1, max_len - 1)(rng_);
    const int32_t outputs = std::uniform_int_distribution<int32_t>(1, max_len - prompt_len)(rng_);
    static constexpr int32_t kChunks[] = {1, 3, 4, 5, 8, 16, 64};
    InitialSequenceRequest r;
    r.id = fmt::format("r{}", n);
    for (int32_t q = 0; q < prompt_len; ++q) r.prompt_token_ids.push_back((n * 31 + q) % 5000);
    r.chunk_size = kChunks[std::uniform_int_distribution<size_t>(0, 6)(rng_)];
    expected_[r.id] = Expected{n, prompt_len, prompt_len + outputs};
    prompts_[r.id] = r.prompt_token_ids;
    f_.scheduler.enqueue_prefill_request(std::move(r));
  }

  // One plan, its model step and the driver's bookkeeping.
  NextIterationPlan step() {
    NextIterationPlan plan = f_.scheduler.create_plan(std::move(active_), f_.batch);
    f_.check(plan.prefill_request);
    check_plan(plan);
    num_preempted_ += static_cast<int64_t>(plan.preempted_request_ids.size());
    if (plan.schedule_prefill) run_prefill(std::move(*plan.prefill_request));
    if (plan.schedule_decodes) run_decodes();
    f_.check(active_);
    return plan;
  }

  int32_t num_finished() const { return num_finished_; }
  int64_t num_preempted() const { return num_preempted_; }
  const Fixture& fixture() const { return f_; }
  bool idle() const {
    return !active_ && f_.batch.num_active() == 0 && f_.scheduler.prefill_queue().empty() &&
           f_.scheduler.decodes_queue().empty();
  }

 private:
  // Expected token at position q of request id (prompt, then model outputs).
  TokenId token_at(const std::string& id, int64_t q) const {
    const Expected& e = expected_.at(id);
    const auto& prompt = prompts_.at(id);
    return q < e.prompt_len ? prompt[static_cast<size_t>(q)] : model_token(e.number, q);
  }

  void check_plan(const NextIterationPlan& plan) const {
    const int32_t ps = f_.page_size();
    if (plan.schedule_prefill) {
      const InitialSequenceRequest& r = *plan.prefill_request;
      // Every token computed so far and in this chunk has its page.
      const int32_t need = static_cast<int32_t>(cdiv<int64_t>(r.chunk_end(), ps));
      for (int32_t j = 0; j < need; ++j) ASSERT_NE(r.page_indices[static_cast<size_t>(j)], 0);
      // A recomputed request's prompt is its original tokens and outputs.
      for (int32_t q = 0; q < r.prompt_len(); ++q) {
        ASSERT_EQ(r.prompt_token_ids[static_cast<size_t>(q)], token_at(r.id, q)) << r.id;
      }
    }
    for (int32_t slot : f_.batch.admission_order()) {
      const GenerationStepTask& t = f_.batch.at(slot);
      if (plan.schedule_decodes) {
        ASSERT_NE(t.page_indices[static_cast<size_t>(t.position / ps)], 0) << t.id;
      }
    }
    for (const SlotPageAssignment& u : plan.decodes_state_page_updates) {
      ASSERT_EQ(f_.batch.at(u.slot).page_indices[static_cast<size_t>(u.page_idx)], u.mapped_idx);
    }
  }

  void run_prefill(InitialSequenceRequest p) {
    ++p.chunk_idx;
    if (!p.is_complete()) {
      active_ = std::move(p);
      return;
    }
    const Expected& e = expected_.at(p.id);
    const TokenId sampled = model_token(e.number, p.prompt_len());
    if (p.prompt_len() + 1 == e.total_len) {  // its only output: done
      std::vector<TokenId> seq = p.prompt_token_ids;
      seq.push_back(sampled);
      finish(p.id, seq);
      f_.manager.free_hbm_pages(p.page_indices);
      return;
    }
    f_.scheduler.enqueue_decodes_request(GenerationStepTask::from_prefill(std::move(p), sampled));
  }

  void run_decodes() {
    const std::vector<int32_t> order = f_.batch.admission_order();
    for (int32_t slot : order) {
      const GenerationStepTask& t = f_.batch.at(slot);
      const Expected& e = expected_.at(t.id);
      ASSERT_EQ(t.prefill_token_id, token_at(t.id, t.position)) << t.id;
      f_.batch.advance(slot, model_token(e.number, t.position + 1));
      if (t.position + 1 == e.total_len) {
        std::vector<TokenId> seq = t.token_ids;
        seq.push_back(t.prefill_token_id);
        finish(t.id, seq);
        f_.scheduler.finish_decode(f_.batch, slot);
      }
    }
  }

  void finish(const std::string& id, const std::vector<TokenId>& seq) {
    const Expected& e = expected_.at(id);
    ASSERT_EQ(static_cast<int32_t>(seq.size()), e.total_len) << id;
    for (int32_t q = 0; q < e.total_len; ++q) {
      ASSERT_EQ(seq[static_cast<size_t>(q)], token_at(id, q)) << id << " at " << q;
    }
    ++num_finished_;
  }

  std::mt19937 rng_;
  Fixture f_;
  std::optional<InitialSequenceRequest> active_;
  std::map<std::string, Expected> expected_;
  std::map<std::string, std::vector<TokenId>> prompts_;
  int32_t next_ = 0;
  int32_t num_finished_ = 0;
  int64_t num_preempted_ = 0;
};

TEST(InferenceSchedulerRandom, ThousandsOfRequestsThroughATightPoolConservePagesAndFinish) {
  // Pools barely larger than one sequence (8 pages of 12 or 8 usable), and a wide batch whose
  // decodes share prefill steps (95% rule).
  struct Case {
    uint32_t seed;
    int32_t num_pages, page_size, batch_size, pages_per_seq;
  };
  int64_t preempted = 0;
  for (const Case& c : {Case{1, 13, 4, 5, 8}, Case{2, 9, 2, 3, 8}, Case{3, 40, 8, 20, 6}}) {
    SCOPED_TRACE(c.seed);
    RandomDriver d(c.seed, c.num_pages, c.page_size, c.batch_size, c.pages_per_seq);
    std::mt19937 arrivals(c.seed * 7);
    constexpr int32_t kRequests = 1500;
    int32_t enqueued = 0;
    int64_t steps = 0;
    while (enqueued < kRequests || !d.idle()) {
      const int32_t burst = std::uniform_int_distribution<int32_t>(0, 2)(arrivals);
      for (int32_t i = 0; i < burst && enqueued < kRequests; ++i, ++enqueued) d.enqueue_one();
      NextIterationPlan plan = d.step();
      if (::testing::Test::HasFatalFailure()) return;
      // Nothing runnable only when nothing is held or waiting.
      if (!plan.has_work()) {
        ASSERT_TRUE(d.idle());
      }
      ASSERT_LT(++steps, int64_t{200} * kRequests) << "no progress";
    }
    EXPECT_EQ(d.num_finished(), kRequests);
    EXPECT_EQ(d.fixture().manager.num_free_pages(), c.num_pages - 1);  // every page free again
    EXPECT_EQ(d.fixture().batch.num_available_slots(), c.batch_size);
    preempted += d.num_preempted();
  }
  EXPECT_GT(preempted, 0);  // the pools were tight enough to preempt
}

}  // namespace
}  // namespace pagedkv
