// What one SchedulerOutput carries (rules 40-41): page ids of new, resumed and running
// requests, token counts as before the step, output order, finished ids one step later.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "pagedkv/scheduler/scheduler.h"
#include "scheduler/scheduler_test_util.h"

namespace pagedkv {
namespace {

using scheduler_testing::config;
using scheduler_testing::max_tokens;
using scheduler_testing::sample;
using scheduler_testing::tokens;
using Scheduled = std::vector<std::pair<std::string, int32_t>>;

class SchedulerOutputs : public ::testing::Test {
 protected:
  SchedulerOutputs() : m(64, 4, 64), s(config(4, 64, 64), m) {}

  SchedulerOutput step() {
    SchedulerOutput out = s.schedule();
    s.update_from_output(out, sample(s, out, [](const std::string&) { return 7; }));
    s.verify();
    return out;
  }

  KVCacheManager m;
  Scheduler s;
};

TEST_F(SchedulerOutputs, ARunningRequestListsOnlyThePagesAddedInTheStep) {
  s.add_request(Request("A", tokens(6)), max_tokens(10));
  SchedulerOutput out = step();
  ASSERT_EQ(out.scheduled_new_reqs.size(), 1u);
  EXPECT_EQ(out.scheduled_new_reqs[0].page_ids, (GroupPages{{1, 2}}));
  EXPECT_EQ(out.scheduled_new_reqs[0].num_computed_tokens, 0);
  EXPECT_EQ(out.scheduled_new_reqs[0].prompt_token_ids, tokens(6));

  for (int32_t computed : {6, 7}) {  // positions 6 and 7 fit the two pages
    out = step();
    const CachedRequestData& c = out.scheduled_cached_reqs;
    ASSERT_EQ(c.size(), 1);
    EXPECT_EQ(c.resumed[0], 0);
    EXPECT_EQ(c.new_page_ids[0], std::nullopt);
    EXPECT_EQ(c.num_computed_tokens[0], computed);  // before the step (rule 41)
  }
  s.add_request(Request("B", tokens(5, 500)), max_tokens(10));
  out = step();  // position 8 needs a third page; B is admitted after the running pass
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"A", 1}, {"B", 5}}));
  EXPECT_EQ(out.total_num_scheduled_tokens, 6);
  const CachedRequestData& c = out.scheduled_cached_reqs;
  ASSERT_EQ(c.size(), 1);
  EXPECT_EQ(c.new_page_ids[0], (GroupPages{{3}}));
  EXPECT_EQ(c.num_computed_tokens[0], 8);
  ASSERT_EQ(out.scheduled_new_reqs.size(), 1u);
  EXPECT_EQ(out.scheduled_new_reqs[0].page_ids, (GroupPages{{4, 5}}));
  EXPECT_EQ(out.step, 4);
  EXPECT_EQ(s.stats().num_steps, 4);
  EXPECT_EQ(s.find_sequence("A")->page_ids(), (GroupPages{{1, 2, 3}}));
}

TEST_F(SchedulerOutputs, FinishedIdsAreReportedOnceInTheNextStep) {
  s.add_request(Request("A", tokens(4)), max_tokens(1));
  s.add_request(Request("B", tokens(4, 500)), max_tokens(2));
  EXPECT_TRUE(step().finished_req_ids.empty());  // A finishes in this step's update
  EXPECT_EQ(step().finished_req_ids, (std::vector<std::string>{"A"}));
  EXPECT_EQ(step().finished_req_ids, (std::vector<std::string>{"B"}));
  EXPECT_TRUE(step().finished_req_ids.empty());
}

TEST_F(SchedulerOutputs, ReusedOutputBuffersCarryNothingFromTheLastStep) {
  s.add_request(Request("A", tokens(8)), max_tokens(3));
  s.add_request(Request("B", tokens(8, 500)), max_tokens(1));
  SchedulerOutput out;
  s.schedule(out);
  ASSERT_EQ(out.scheduled_new_reqs.size(), 2u);
  s.update_from_output(out, sample(s, out, [](const std::string&) { return 7; }));
  s.schedule(out);
  EXPECT_TRUE(out.scheduled_new_reqs.empty());
  EXPECT_EQ(out.num_scheduled_tokens, (Scheduled{{"A", 1}}));
  EXPECT_EQ(out.scheduled_cached_reqs.request_ids, (std::vector<std::string>{"A"}));
  EXPECT_EQ(out.scheduled_cached_reqs.new_page_ids[0], (GroupPages{{5}}));  // B had 3, 4
  EXPECT_EQ(out.finished_req_ids, (std::vector<std::string>{"B"}));
  EXPECT_TRUE(out.preempted_req_ids.empty());
}

TEST_F(SchedulerOutputs, StatsCountStepsAndReportKvUsage) {
  s.add_request(Request("A", tokens(8)), max_tokens(3));
  step();
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.num_steps, 1);
  EXPECT_EQ(st.num_running, 1);
  EXPECT_EQ(st.num_waiting, 0);
  EXPECT_DOUBLE_EQ(st.kv_cache_usage, 2.0 / 63.0);  // 8 computed tokens: 2 of 63 pages
  EXPECT_EQ(st.prefix_cache.requests(), 1);
}

}  // namespace
}  // namespace pagedkv
