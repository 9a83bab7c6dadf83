// ModelInputBuilder errors: each bad output is refused with InvalidArgument (naming the
// request and the limit) and changes nothing; split_sampled_tokens and update_from_sampled
// check their shapes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/model_io/model_input_builder.h"

namespace pagedkv {
namespace {

ModelInputBuilderConfig config() {
  return {.max_num_reqs = 2, .max_model_len = 32, .max_num_batched_tokens = 16, .page_sizes = {4}};
}

NewRequestData new_req(const std::string& id, int32_t prompt_len, std::vector<PageId> pages,
                       int32_t computed = 0) {
  return {id, std::vector<TokenId>(static_cast<size_t>(prompt_len), 9), GroupPages{pages},
          computed};
}

SchedulerOutput step_with(std::vector<NewRequestData> reqs, int64_t step) {
  SchedulerOutput out;
  out.step = step;
  for (const NewRequestData& r : reqs) {
    const auto n = static_cast<int32_t>(r.prompt_token_ids.size()) - r.num_computed_tokens;
    out.num_scheduled_tokens.emplace_back(r.request_id, n);
    out.total_num_scheduled_tokens += n;
  }
  out.scheduled_new_reqs = std::move(reqs);
  return out;
}

// Everything a failed build must leave as it was.
struct Snapshot {
  int32_t tracked;
  std::vector<PageId> staging;
  std::vector<TokenId> tokens_a;
  bool operator==(const Snapshot&) const = default;
};
Snapshot snapshot(const ModelInputBuilder& b) {
  const PageTableView v = b.page_table()[0].get_cpu_tensor();
  const std::span<const TokenId> a = b.tokens("a");
  return {b.num_tracked_requests(),
          std::vector<PageId>(v.data, v.data + static_cast<size_t>(v.num_rows) * v.num_cols),
          std::vector<TokenId>(a.begin(), a.end())};
}

class ModelInputErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    SchedulerOutput first = step_with({new_req("a", 6, {3, 4})}, 1);
    const ModelInput& in = builder_.build(first);
    ASSERT_EQ(in.num_logits(), 1);
    builder_.update_from_sampled(first, std::vector<std::vector<TokenId>>{{11}});
    before_ = snapshot(builder_);
  }
  void expect_refused(const SchedulerOutput& out, const std::string& needle) {
    try {
      builder_.build(out);
      FAIL() << "expected InvalidArgument mentioning '" << needle << "'";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_EQ(snapshot(builder_), before_);
    builder_.verify();
  }
  ModelInputBuilder builder_{config()};
  Snapshot before_;
};

TEST_F(ModelInputErrors, UnknownCachedRequestIsRefusedAndChangesNothing) {
  SchedulerOutput out;
  out.step = 2;
  out.num_scheduled_tokens = {{"zz", 1}};
  out.total_num_scheduled_tokens = 1;
  out.scheduled_cached_reqs.request_ids = {"zz"};
  out.scheduled_cached_reqs.resumed = {0};
  out.scheduled_cached_reqs.new_page_ids = {std::nullopt};
  out.scheduled_cached_reqs.num_computed_tokens = {0};
  out.finished_req_ids = {"a"};  // would drop "a" if applied
  expect_refused(out, "'zz'");
}

TEST_F(ModelInputErrors, MoreRequestsThanMaxNumReqsIsRefused) {
  SchedulerOutput out =
      step_with({new_req("b", 2, {5}), new_req("c", 2, {6}), new_req("d", 2, {7})}, 2);
  expect_refused(out, "max_num_reqs 2");
}

TEST_F(ModelInputErrors, MoreTokensThanTheBatchBudgetIsRefused) {
  SchedulerOutput out = step_with({new_req("b", 20, {5, 6, 7, 8, 9})}, 2);
  expect_refused(out, "max_num_batched_tokens 16");
}

TEST_F(ModelInputErrors, ComputingPastTheKnownTokensIsRefused) {
  // "a" has 7 tokens (6 + 1 sampled); 6 + 2 = 8 > 7.
  SchedulerOutput out;
  out.step = 2;
  out.num_scheduled_tokens = {{"a", 2}};
  out.total_num_scheduled_tokens = 2;
  out.scheduled_cached_reqs.request_ids = {"a"};
  out.scheduled_cached_reqs.resumed = {0};
  out.scheduled_cached_reqs.new_page_ids = {std::nullopt};
  out.scheduled_cached_reqs.num_computed_tokens = {6};
  expect_refused(out, "7 known tokens");
}

TEST_F(ModelInputErrors, TooFewPagesForTheScheduledTokensIsRefused) {
  SchedulerOutput out = step_with({new_req("b", 9, {5, 6})}, 2);  // 9 tokens need 3 pages
  expect_refused(out, "'b'");
}

TEST_F(ModelInputErrors, SampledTokensOfAnotherShapeAreRefused) {
  SchedulerOutput out;
  out.step = 2;
  out.num_scheduled_tokens = {{"a", 1}};
  out.total_num_scheduled_tokens = 1;
  out.scheduled_cached_reqs.request_ids = {"a"};
  out.scheduled_cached_reqs.resumed = {0};
  out.scheduled_cached_reqs.new_page_ids = {GroupPages{{8}}};
  out.scheduled_cached_reqs.num_computed_tokens = {6};
  const ModelInput& in = builder_.build(out);
  EXPECT_EQ(in.seq_lens[0], 7);
  EXPECT_EQ(in.token_ids[0], 11);
  EXPECT_EQ(in.slot_mapping[0], 4 * 4 + 2);
  std::vector<std::vector<TokenId>> split;
  EXPECT_THROW(split_sampled_tokens(in, std::vector<TokenId>{1, 2}, split), InvalidArgument);
  EXPECT_THROW(builder_.update_from_sampled(out, std::vector<std::vector<TokenId>>{{1, 2}}),
               InvalidArgument);
  EXPECT_THROW(builder_.update_from_sampled(out, std::vector<std::vector<TokenId>>{}),
               InvalidArgument);
  builder_.update_from_sampled(out, std::vector<std::vector<TokenId>>{{12}});
  EXPECT_THROW(builder_.update_from_sampled(out, std::vector<std::vector<TokenId>>{{12}}),
               StateError);  // applied already
  EXPECT_EQ(builder_.tokens("a").size(), 8u);
}

TEST(ModelInputBuilderConfig, BadLimitsAreRefused) {
  auto c = config();
  c.page_sizes = {};
  EXPECT_THROW(ModelInputBuilder{c}, InvalidArgument);
  c = config();
  c.max_num_reqs = 0;
  EXPECT_THROW(ModelInputBuilder{c}, InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
