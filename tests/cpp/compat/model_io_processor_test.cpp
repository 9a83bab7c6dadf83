// ModelIOProcessor (seed 002): build_input over real InferenceScheduler plans, checked by hand
// (chunk slicing by chunk_idx * chunk_size, decode rows per slot, padding), and
// prepare_model_output's split with -1 for finished and padded decode rows.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/compat/hbm_page_manager.h"
#include "pagedkv/compat/inference_scheduler.h"
#include "pagedkv/compat/model_io_processor.h"

namespace pagedkv {
namespace {

using V = std::vector<int32_t>;

std::vector<TokenId> prompt(int32_t n, int32_t base) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = base + i;
  return t;
}

TEST(ModelIOProcessor, PrefillChunksAreSlicedByChunkIndexAndPaddedWithZeros) {
  HBMPageManager manager(16, 4);
  InferenceScheduler scheduler(manager, {.batch_size = 2, .num_pages_per_sequence = 4});
  ActiveSequenceBatch batch(2);
  scheduler.enqueue_prefill_request(
      {.id = "a", .prompt_token_ids = prompt(6, 100), .chunk_size = 4, .page_indices = {}});

  NextIterationPlan plan = scheduler.create_plan(std::nullopt, batch);
  ModelInputBatch in = ModelIOProcessor::build_input(plan, batch);
  EXPECT_EQ(in.input_ids, (V{100, 101, 102, 103}));
  EXPECT_EQ(in.positions, (V{0, 1, 2, 3}));
  EXPECT_TRUE(in.attn_meta.is_prefill_mode());
  EXPECT_EQ(in.attn_meta.prefill_length(), 4);
  EXPECT_EQ(in.attn_meta.prefill_page_table(), (V{1, 0, 0, 0}));
  EXPECT_EQ(in.sampling_params, (std::vector<std::string>{"a"}));

  std::optional<InitialSequenceRequest> active = std::move(plan.prefill_request);
  ++active->chunk_idx;
  plan = scheduler.create_plan(std::move(active), batch);
  in = ModelIOProcessor::build_input(plan, batch);
  EXPECT_EQ(in.input_ids, (V{104, 105, 0, 0}));  // tokens [4, 8) of the padded prompt
  EXPECT_EQ(in.positions, (V{4, 5, 6, 7}));
  EXPECT_EQ(in.attn_meta.prefill_length(), 2);
  EXPECT_EQ(in.attn_meta.prefill_page_table(), (V{1, 2, 0, 0}));

  const std::vector<TokenId> next = {55};
  const std::vector<uint8_t> complete = {0};
  ModelOutputBatch o =
      ModelIOProcessor::prepare_model_output(next, complete, in.attn_meta, in.sampling_params);
  EXPECT_EQ(o.prefill_token_id, 55);
  EXPECT_FALSE(o.prefill_complete);
  EXPECT_EQ(o.prefill_next_position, 6);  // the prompt length: where decoding continues
  EXPECT_TRUE(o.decodes_token_ids.empty());
  EXPECT_TRUE(o.decodes_next_position.empty());
}

TEST(ModelIOProcessor, DecodeRowsFollowTheSlotsAndFreeSlotsArePadding) {
  HBMPageManager manager(16, 4);
  InferenceScheduler scheduler(manager, {.batch_size = 3, .num_pages_per_sequence = 4});
  ActiveSequenceBatch batch(3);
  scheduler.enqueue_prefill_request(
      {.id = "a", .prompt_token_ids = prompt(4, 10), .chunk_size = 8, .page_indices = {}});
  NextIterationPlan plan = scheduler.create_plan(std::nullopt, batch);
  InitialSequenceRequest a = std::move(*plan.prefill_request);
  ++a.chunk_idx;
  scheduler.enqueue_decodes_request(GenerationStepTask::from_prefill(std::move(a), 77));
  // "a" joins the decode batch and its position 4 crosses into its second page.
  plan = scheduler.create_plan(std::nullopt, batch);
  ASSERT_TRUE(plan.schedule_decodes);
  ASSERT_FALSE(plan.schedule_prefill);
  ASSERT_EQ(plan.decodes_state_page_updates.size(), 1u);
  ASSERT_EQ(plan.new_decodes_requests.size(), 1u);
  const int32_t slot = plan.new_decodes_requests[0].slot;
  const GenerationStepTask& task = batch.at(slot);
  ModelInputBatch in = ModelIOProcessor::build_input(plan, batch);

  ASSERT_TRUE(in.attn_meta.is_decode_mode());
  V want_tokens(3, 0), want_positions(3, -1);
  want_tokens[static_cast<size_t>(slot)] = 77;
  want_positions[static_cast<size_t>(slot)] = 4;
  EXPECT_EQ(in.input_ids, want_tokens);
  EXPECT_EQ(in.positions, want_positions);
  EXPECT_EQ(in.attn_meta.decodes_position(), want_positions);
  ASSERT_EQ(in.attn_meta.decodes_pages_per_sequence(), 4);
  for (int32_t c = 0; c < 4; ++c) {
    EXPECT_EQ(in.attn_meta.decodes_page(slot, c), task.page_indices[static_cast<size_t>(c)]);
  }
  EXPECT_NE(task.page_indices[1], kNullPageId);  // position 4 needed its second page
  for (int32_t s = 0; s < 3; ++s) {
    if (s == slot) continue;
    for (int32_t c = 0; c < 4; ++c) EXPECT_EQ(in.attn_meta.decodes_page(s, c), kNullPageId);
  }
  ASSERT_EQ(in.sampling_params.size(), 3u);
  EXPECT_EQ(in.sampling_params[static_cast<size_t>(slot)], "a");
}

TEST(ModelIOProcessor, FinishedAndPaddedDecodeRowsGetMinusOne) {
  // Prefill row first, then decode rows at positions 9, -1 (padding), 3, 5.
  const PagedAttentionMetadata meta(3, V{0, 1, 2, 3}, V{4}, V{9, -1, 3, 5}, V(16, 0),
                                    /*pages_per_sequence=*/4);
  const std::vector<TokenId> next = {1, 2, 3, 4, 5};
  const std::vector<uint8_t> complete = {1, 0, 0, 1, 0};
  const std::vector<std::string> ids = {"p", "x", "", "y", "z"};
  ModelOutputBatch o = ModelIOProcessor::prepare_model_output(next, complete, meta, ids);
  EXPECT_EQ(o.prefill_token_id, 1);
  EXPECT_TRUE(o.prefill_complete);
  EXPECT_EQ(o.prefill_next_position, 3);
  EXPECT_EQ(o.decodes_token_ids, (V{2, 3, 4, 5}));
  EXPECT_EQ(o.decodes_completes, (std::vector<uint8_t>{0, 0, 1, 0}));
  EXPECT_EQ(o.decodes_next_position, (V{10, -1, -1, 6}));
  EXPECT_EQ(o.next_sampling_params, ids);

  const std::vector<TokenId> short_next = {1, 2};
  EXPECT_THROW(ModelIOProcessor::prepare_model_output(short_next, complete, meta, ids),
               InvalidArgument);
}

TEST(ModelIOProcessor, APlanWithoutWorkIsRefused) {
  ActiveSequenceBatch batch(2);
  EXPECT_THROW(ModelIOProcessor::build_input(NextIterationPlan{}, batch), InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
