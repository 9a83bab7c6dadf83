// Sequence: the lifecycle transitions and the stop check of rule 43 (with pagedkv's guard that
// min_tokens never takes a request past max_model_len).
#include <gtest/gtest.h>

#include <optional>

#include "pagedkv/common/errors.h"
#include "pagedkv/scheduler/sequence.h"

namespace pagedkv {
namespace {

constexpr TokenId kEos = 2;

Sequence make_sequence(SamplingParams params, int32_t prompt_len = 4,
                       std::optional<TokenId> eos = kEos) {
  std::vector<TokenId> prompt(static_cast<size_t>(prompt_len), 100);
  return Sequence(Request("r", prompt), std::move(params), eos, /*priority=*/0,
                  /*arrival_time=*/0.0);
}

SamplingParams params(int32_t max_tokens, int32_t min_tokens = 0) {
  SamplingParams p;
  p.max_tokens = max_tokens;
  p.min_tokens = min_tokens;
  return p;
}

// A sequence admitted and through its prefill, ready for tokens.
Sequence running(SamplingParams p, int32_t prompt_len = 4, std::optional<TokenId> eos = kEos) {
  Sequence s = make_sequence(std::move(p), prompt_len, eos);
  s.admit(0, GroupPages(1));
  s.advance(prompt_len);
  return s;
}

TEST(Sequence, StartsWaitingAndMovesThroughItsLifecycle) {
  Sequence s = make_sequence(params(8));
  EXPECT_EQ(s.status(), SequenceStatus::kWaiting);
  s.verify();
  s.admit(0, GroupPages{{5}});
  EXPECT_EQ(s.status(), SequenceStatus::kRunning);
  s.advance(4);
  s.append_pages(GroupPages{{6}});
  EXPECT_EQ(s.page_ids(), (GroupPages{{5, 6}}));
  EXPECT_EQ(s.append_output_token(7, 100), std::nullopt);
  s.preempt();
  EXPECT_EQ(s.status(), SequenceStatus::kPreempted);
  EXPECT_EQ(s.num_computed_tokens(), 0);
  EXPECT_EQ(s.num_output_tokens(), 1);  // outputs are kept (rule 36)
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_TRUE(s.page_ids().empty());
  s.verify();
  s.finish(FinishReason::kAbort);
  EXPECT_EQ(s.status(), SequenceStatus::kFinishedAborted);
  EXPECT_EQ(s.finish_reason(), FinishReason::kAbort);
  s.verify();
}

TEST(Sequence, TransitionsFromTheWrongStateAreInternalErrors) {
  Sequence s = make_sequence(params(8));
  EXPECT_THROW(s.preempt(), InternalError);
  EXPECT_THROW(s.advance(1), InternalError);
  EXPECT_THROW(s.append_output_token(5, 100), InternalError);
  s.finish(FinishReason::kAbort);
  EXPECT_THROW(s.finish(FinishReason::kAbort), InternalError);
  EXPECT_THROW(s.admit(0, GroupPages(1)), InternalError);
}

TEST(Sequence, BadInputsAreInvalidArguments) {
  EXPECT_THROW(make_sequence(params(0)), InvalidArgument);
  EXPECT_THROW(make_sequence(params(4), 4, -1), InvalidArgument);
  EXPECT_THROW(Sequence(Request("r", {1, 2}), params(4), kEos, 0, std::nan("")), InvalidArgument);
  Request used("u", {1, 2, 3});
  const TokenId out[1] = {4};
  used.append_output_token_ids(out);
  EXPECT_THROW(Sequence(used, params(4), kEos, 0, 0.0), InvalidArgument);
}

TEST(Sequence, EosStops) {
  Sequence s = running(params(8));
  EXPECT_EQ(s.append_output_token(kEos, 100), FinishReason::kStop);
  EXPECT_EQ(s.status(), SequenceStatus::kFinishedStopped);
  EXPECT_EQ(s.stop_reason(), std::nullopt);  // EOS is not a stop token
}

TEST(Sequence, EosBeforeMinTokensIsIgnored) {
  Sequence s = running(params(8, /*min_tokens=*/2));
  EXPECT_EQ(s.append_output_token(kEos, 100), std::nullopt);
  EXPECT_EQ(s.append_output_token(kEos, 100), FinishReason::kStop);
}

TEST(Sequence, IgnoreEosAndNoEosTokenNeverStopOnEos) {
  SamplingParams p = params(3);
  p.ignore_eos = true;
  Sequence s = running(p);
  EXPECT_EQ(s.append_output_token(kEos, 100), std::nullopt);
  Sequence t = running(params(3), 4, std::nullopt);
  EXPECT_EQ(t.append_output_token(kEos, 100), std::nullopt);
}

TEST(Sequence, StopTokenStopsAndIsReported) {
  SamplingParams p = params(8);
  p.stop_token_ids = {42, 43};
  Sequence s = running(p);
  EXPECT_EQ(s.append_output_token(41, 100), std::nullopt);
  EXPECT_EQ(s.append_output_token(43, 100), FinishReason::kStop);
  EXPECT_EQ(s.stop_reason(), 43);
  EXPECT_EQ(s.num_output_tokens(), 2);  // the stop token is kept
}

TEST(Sequence, StopTokenBeforeMinTokensIsIgnored) {
  SamplingParams p = params(8, 2);
  p.stop_token_ids = {42};
  Sequence s = running(p);
  EXPECT_EQ(s.append_output_token(42, 100), std::nullopt);
}

TEST(Sequence, MaxTokensFinishesWithLength) {
  Sequence s = running(params(2));
  EXPECT_EQ(s.append_output_token(7, 100), std::nullopt);
  EXPECT_EQ(s.append_output_token(7, 100), FinishReason::kLength);
  EXPECT_EQ(s.status(), SequenceStatus::kFinishedLength);
}

TEST(Sequence, MaxModelLenFinishesWithLength) {
  Sequence s = running(params(50), /*prompt_len=*/4);
  EXPECT_EQ(s.append_output_token(7, 6), std::nullopt);           // 5 tokens
  EXPECT_EQ(s.append_output_token(7, 6), FinishReason::kLength);  // 6 = max_model_len
}

TEST(Sequence, EosAtMaxModelLenIsAStop) {
  Sequence s = running(params(50), 5);
  EXPECT_EQ(s.append_output_token(kEos, 6), FinishReason::kStop);  // check 2 before check 4
}

TEST(Sequence, MinTokensNeverRunsPastMaxModelLen) {
  Sequence s = running(params(50, /*min_tokens=*/10), 4);
  EXPECT_EQ(s.append_output_token(kEos, 6), std::nullopt);
  EXPECT_EQ(s.append_output_token(kEos, 6), FinishReason::kLength);
  EXPECT_EQ(s.num_output_tokens(), 2);  // below min_tokens, but at max_model_len
}

TEST(Sequence, NamesAreVllms) {
  EXPECT_EQ(finish_reason_name(FinishReason::kStop), "stop");
  EXPECT_EQ(finish_reason_name(FinishReason::kLength), "length");
  EXPECT_EQ(finish_reason_name(FinishReason::kAbort), "abort");
  EXPECT_EQ(sequence_status_name(SequenceStatus::kPreempted), "preempted");
}

}  // namespace
}  // namespace pagedkv
