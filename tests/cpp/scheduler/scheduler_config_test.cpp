// SchedulerConfig and SamplingParams validation (rule 45): every contradiction is an
// InvalidArgument whose message names the field.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "pagedkv/common/errors.h"
#include "pagedkv/scheduler/sampling_params.h"
#include "pagedkv/scheduler/scheduler_config.h"

namespace pagedkv {
namespace {

SchedulerConfig valid_config() {
  SchedulerConfig c;
  c.max_num_seqs = 4;
  c.max_num_batched_tokens = 64;
  c.max_model_len = 128;
  return c;
}

// `edit` applied to a valid config must make validate() throw naming `field`.
void expect_config_rejected(const std::function<void(SchedulerConfig&)>& edit,
                            const std::string& field) {
  SchedulerConfig c = valid_config();
  edit(c);
  try {
    c.validate();
    ADD_FAILURE() << "validate() accepted a bad " << field;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(SchedulerConfig, ValidConfigPasses) {
  EXPECT_NO_THROW(valid_config().validate());
  SchedulerConfig c = valid_config();
  c.enable_chunked_prefill = false;
  c.max_num_batched_tokens = 128;  // == max_model_len: enough without chunking
  EXPECT_NO_THROW(c.validate());
}

TEST(SchedulerConfig, CountsMustBePositive) {
  expect_config_rejected([](auto& c) { c.max_num_seqs = 0; }, "max_num_seqs");
  expect_config_rejected([](auto& c) { c.max_num_batched_tokens = 0; }, "max_num_batched_tokens");
  expect_config_rejected([](auto& c) { c.max_model_len = 0; }, "max_model_len");
  expect_config_rejected([](auto& c) { c.long_prefill_token_threshold = -1; },
                         "long_prefill_token_threshold");
}

TEST(SchedulerConfig, BudgetBelowMaxNumSeqsIsRejected) {
  expect_config_rejected(
      [](auto& c) {
        c.max_num_seqs = 65;
        c.max_num_batched_tokens = 64;
      },
      "max_num_seqs");
}

TEST(SchedulerConfig, NoChunkingNeedsABudgetOfMaxModelLen) {
  expect_config_rejected([](auto& c) { c.enable_chunked_prefill = false; }, "max_model_len");
}

TEST(SchedulerConfig, PolicyNamesRoundTrip) {
  for (SchedulingPolicy p : {SchedulingPolicy::kFcfs, SchedulingPolicy::kPriority}) {
    EXPECT_EQ(parse_scheduling_policy(scheduling_policy_name(p)), p);
  }
  EXPECT_THROW(parse_scheduling_policy("lifo"), InvalidArgument);
}

void expect_params_rejected(const std::function<void(SamplingParams&)>& edit,
                            const std::string& field) {
  SamplingParams p;
  edit(p);
  try {
    p.validate();
    ADD_FAILURE() << "validate() accepted a bad " << field;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(SamplingParams, DefaultsAreValid) { EXPECT_NO_THROW(SamplingParams{}.validate()); }

TEST(SamplingParams, OutputBudgetIsChecked) {
  expect_params_rejected([](auto& p) { p.max_tokens = 0; }, "max_tokens");
  expect_params_rejected([](auto& p) { p.min_tokens = -1; }, "min_tokens");
  expect_params_rejected([](auto& p) { p.min_tokens = p.max_tokens + 1; }, "min_tokens");
  expect_params_rejected([](auto& p) { p.stop_token_ids = {3, -2}; }, "stop_token_ids[1]");
}

TEST(SamplingParams, SamplerKnobsAreChecked) {
  expect_params_rejected([](auto& p) { p.temperature = -0.5f; }, "temperature");
  expect_params_rejected([](auto& p) { p.temperature = std::nanf(""); }, "temperature");
  expect_params_rejected([](auto& p) { p.top_k = -2; }, "top_k");
  expect_params_rejected([](auto& p) { p.top_p = 0.0f; }, "top_p");
  expect_params_rejected([](auto& p) { p.top_p = 1.5f; }, "top_p");
  expect_params_rejected([](auto& p) { p.logprobs = -1; }, "logprobs");
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.top_k = -1;
  greedy.seed = -7;
  greedy.logprobs = 0;
  EXPECT_NO_THROW(greedy.validate());
}

}  // namespace
}  // namespace pagedkv
