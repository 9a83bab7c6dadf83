// Every rejected call of Scheduler throws its typed error and leaves the scheduler and its
// manager as they were (strong guarantee).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/scheduler/scheduler.h"
#include "scheduler/scheduler_test_util.h"

namespace pagedkv {
namespace {

using scheduler_testing::config;
using scheduler_testing::max_tokens;
using scheduler_testing::sample;
using scheduler_testing::snapshot;
using scheduler_testing::tokens;

// A scheduler with some history: "run" running (prefill done), "wait" waiting behind it.
// 8 usable pages of 4 tokens, max_model_len 64.
class SchedulerErrors : public ::testing::Test {
 protected:
  SchedulerErrors() : m(9, 4, 64), s(config(4, 64, 64), m) {
    s.add_request(Request("run", tokens(20, 100)), max_tokens(50), 2);
    s.add_request(Request("wait", tokens(24, 200)), max_tokens(50), 2);
    SchedulerOutput out = s.schedule();  // run: 5 pages; wait needs 6 of the 3 left
    s.update_from_output(out, sample(s, out, [](const std::string&) { return 7; }));
    s.verify();
  }

  template <typename E>
  void expect_rejected(const std::function<void()>& call) {
    const auto before = snapshot(s, m);
    EXPECT_THROW(call(), E);
    EXPECT_EQ(snapshot(s, m), before);
    s.verify();
  }

  void expect_add_rejected_as_invalid(Request r, SamplingParams p = max_tokens(4)) {
    expect_rejected<InvalidArgument>([&] { s.add_request(r, p, 2); });
  }

  KVCacheManager m;
  Scheduler s;
};

TEST_F(SchedulerErrors, DuplicateLiveIdIsInvalid) {
  expect_add_rejected_as_invalid(Request("run", tokens(4)));
  expect_add_rejected_as_invalid(Request("wait", tokens(4)));
}

TEST_F(SchedulerErrors, PromptOfMaxModelLenOrMoreIsInvalid) {
  expect_add_rejected_as_invalid(Request("new", tokens(64)));  // rule 45: length < 64
  EXPECT_THROW(Request("new", {}), InvalidArgument);           // an empty prompt cannot exist
}

TEST_F(SchedulerErrors, BadSamplingParamsAreInvalid) {
  expect_add_rejected_as_invalid(Request("new", tokens(4)), max_tokens(0));
  expect_add_rejected_as_invalid(Request("new", tokens(4)), max_tokens(2, 3));
  SamplingParams p;
  p.top_p = 0.0f;
  expect_add_rejected_as_invalid(Request("new", tokens(4)), p);
  expect_rejected<InvalidArgument>(
      [&] { s.add_request(Request("new", tokens(4)), max_tokens(4), /*eos_token_id=*/-1); });
  expect_rejected<InvalidArgument>([&] {
    s.add_request(Request("new", tokens(4)), max_tokens(4), 2, 0, /*arrival_time=*/INFINITY);
  });
}

TEST_F(SchedulerErrors, OtherHashAlgorithmOrUsedRequestIsInvalid) {
  RequestOptions sha;
  sha.hash_algorithm = HashAlgorithm::kSha256;
  expect_add_rejected_as_invalid(Request("new", tokens(4), sha));
  Request used("new", tokens(4));
  used.set_num_computed_tokens(2);
  expect_add_rejected_as_invalid(used);
}

TEST_F(SchedulerErrors, PromptThePoolCanNeverHoldIsACapacityError) {
  // 8 usable pages hold 32 tokens (rule 29); max_model_len is 64.
  expect_rejected<CapacityError>([&] { s.add_request(Request("new", tokens(33)), max_tokens(4)); });
  const auto before = snapshot(s, m);
  s.add_request(Request("new", tokens(32)), max_tokens(4));  // exactly fits an empty pool
  EXPECT_NE(snapshot(s, m), before);
}

TEST_F(SchedulerErrors, IdTheManagerHoldsIsAStateError) {
  Request other("other", tokens(4));
  ASSERT_TRUE(m.allocate_slots(other, 4));
  const auto before = snapshot(s, m);  // verify() would fail: the manager has another client
  EXPECT_THROW(s.add_request(Request("other", tokens(4)), max_tokens(4)), StateError);
  EXPECT_EQ(snapshot(s, m), before);
  m.free(other);
  s.verify();
}

TEST_F(SchedulerErrors, ScheduleWhileAnOutputAwaitsItsUpdateIsAStateError) {
  SchedulerOutput out = s.schedule();
  ASSERT_FALSE(out.num_scheduled_tokens.empty());
  expect_rejected<StateError>([&] { s.schedule(); });
  s.update_from_output(out, sample(s, out, [](const std::string&) { return 7; }));
  EXPECT_NO_THROW(s.schedule());
}

TEST_F(SchedulerErrors, UpdateWithAStaleOrAppliedOutputIsAStateError) {
  SchedulerOutput out = s.schedule();
  const auto sampled = sample(s, out, [](const std::string&) { return 7; });
  SchedulerOutput older = out;
  older.step -= 1;
  expect_rejected<StateError>([&] { s.update_from_output(older, sampled); });
  s.update_from_output(out, sampled);
  expect_rejected<StateError>([&] { s.update_from_output(out, sampled); });  // applied
}

TEST_F(SchedulerErrors, WrongSampledTokensAreInvalid) {
  SchedulerOutput out = s.schedule();
  ASSERT_EQ(out.num_scheduled_tokens.size(), 1u);  // run's decode
  using Tokens = std::vector<std::vector<TokenId>>;
  expect_rejected<InvalidArgument>([&] { s.update_from_output(out, Tokens{}); });
  expect_rejected<InvalidArgument>([&] { s.update_from_output(out, Tokens{{}}); });
  expect_rejected<InvalidArgument>([&] { s.update_from_output(out, Tokens{{7, 8}}); });
  expect_rejected<InvalidArgument>([&] { s.update_from_output(out, Tokens{{-7}}); });
  using ById = std::unordered_map<std::string, std::vector<TokenId>>;
  expect_rejected<InvalidArgument>([&] { s.update_from_output(out, ById{{"wait", {7}}}); });
  expect_rejected<InvalidArgument>([&] { s.update_from_output(out, ById{}); });
  SchedulerOutput renamed = out;
  renamed.num_scheduled_tokens[0].first = "wait";
  expect_rejected<InvalidArgument>([&] { s.update_from_output(renamed, Tokens{{7}}); });
  const auto results = s.update_from_output(out, ById{{"run", {7}}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].request_id, "run");
}

TEST(SchedulerUpdate, TokensForAPartialPrefillAreIgnored) {
  KVCacheManager m(16, 4, 64);
  Scheduler s(config(4, 8, 64), m);
  s.add_request(Request("long", tokens(20)), max_tokens(4));
  SchedulerOutput out = s.schedule();
  ASSERT_EQ(out.num_scheduled_tokens.size(), 1u);
  EXPECT_EQ(out.num_scheduled_tokens[0].second, 8);  // a partial chunk: produces no token
  const auto results = s.update_from_output(out, std::vector<std::vector<TokenId>>{{9}});
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(s.find_sequence("long")->num_tokens(), 20);
  s.verify();
}

TEST(SchedulerConstruction, ConfigContradictionsAreRejected) {
  KVCacheManager m(16, 4, 64);
  EXPECT_THROW(Scheduler(config(4, 64, 128), m), InvalidArgument);  // max_model_len differs
  EXPECT_THROW(Scheduler(config(65, 64, 64), m), InvalidArgument);  // budget < max_num_seqs
  SchedulerConfig c = config(4, 32, 64);
  c.enable_chunked_prefill = false;
  EXPECT_THROW(Scheduler(c, m), InvalidArgument);  // budget < max_model_len without chunking
  Request held("held", tokens(4));
  ASSERT_TRUE(m.allocate_slots(held, 4));
  EXPECT_THROW(Scheduler(config(4, 64, 64), m), StateError);  // not the manager's only client
}

}  // namespace
}  // namespace pagedkv
