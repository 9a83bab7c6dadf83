// pagedkv/compat/model_io_processor.h - seed 002's ModelIOProcessor: build_input turns an
// InferenceScheduler plan and the decode batch into one step's model inputs (a prefill chunk
// and/or every decode slot, with a PagedAttentionMetadata), and prepare_model_output splits the
// sampled tokens back into the prefill's token and the decode slots' tokens and next positions.
// The core equivalent is model_io's ModelInputBuilder over a SchedulerOutput (rules 47-48).
//
// Example (page size 4, chunk size 4; prompt "a" of 6 tokens in its second chunk, decode slot 1
// of 2 at position 9):
//   ModelInputBatch in = ModelIOProcessor::build_input(plan, decodes);
//   in.input_ids        // [a4, a5, 0, 0,  0, t]     chunk tokens (padded), then the 2 slots
//   in.positions        // [4, 5, 6, 7,  -1, 9]
//   in.attn_meta        // prefill_length 2, prefill_position [4..7], a's pages;
//                       // decodes_position [-1, 9], decodes_page_table [2, pages_per_seq]
//   ModelOutputBatch o = ModelIOProcessor::prepare_model_output(next, complete, in.attn_meta,
//                                                                in.sampling_params);
//   o.prefill_token_id, o.prefill_next_position (6), o.decodes_next_position ([-1, 10])
//
// build_input (seed behaviour, host-side):
//   - prefill part when plan.schedule_prefill: the chunk slice [chunk_idx * chunk_size,
//     + chunk_size) of the prompt padded with token 0 to a multiple of chunk_size (so the
//     seed's dynamic_slice never clamps); positions chunk_start .. chunk_start + chunk_size - 1;
//     prefill_page_table = the request's whole page_indices;
//   - decode part when plan.schedule_decodes: one row per slot of decodes_state (batch_size
//     rows): an active slot gives its task's prefill_token_id, position and page_indices; a
//     free slot gives token 0, position -1 (padding) and null pages. The plan's
//     new_decodes_requests are inserted into their slots and its decodes_state_page_updates
//     applied over that (the seed's insert_decode_state / apply_assignment); InferenceScheduler
//     has already applied both to decodes_state, so the rows agree - build_input checks that a
//     new request's slot is active with the same id (StateError otherwise);
//   - input_ids / positions: the prefill part, then the decode part.
// prepare_model_output (seed behaviour): next_token / complete hold the prefill's entry first
// (when there is a prefill), then one per decode row. prefill_next_position is the position
// after the chunk; decodes_next_position[b] = -1 for a finished (complete) or padded row, else
// decodes_position[b] + 1.
//
// Differences from the seed: prefill_length is the chunk's number of real tokens (the seed
// stores the prompt length; both agree for a one-chunk prompt), which keeps the metadata
// invariant prefill_length <= prefill_position.size(); sampling parameters are not device
// arrays here: sampling_params names each row's request (prefill first, then one id per
// decode row, empty for a free slot), and the driver keeps the parameters by id.
//
// Errors: InvalidArgument for a plan with no work (the seed's ValueError), a prefill without
// its request, a chunk starting past the prompt; next_token / complete sizes that do not match
// the metadata. Nothing is modified on error.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/compat/active_sequence_batch.h"
#include "pagedkv/compat/inference_types.h"
#include "pagedkv/compat/paged_attention_metadata.h"

namespace pagedkv {

struct ModelInputBatch {
  std::vector<TokenId> input_ids;  // [chunk_size (if prefill) + batch_size (if decodes)]
  std::vector<int32_t> positions;  // same shape; -1 for a free decode slot
  PagedAttentionMetadata attn_meta = PagedAttentionMetadata::init_empty();
  std::vector<std::string> sampling_params;  // [rows] request id per row (see above)
};

struct ModelOutputBatch {
  TokenId prefill_token_id = 0;
  bool prefill_complete = false;
  int32_t prefill_next_position = 0;           // 0 when there is no prefill
  std::vector<TokenId> decodes_token_ids;      // [batch_size] or empty
  std::vector<uint8_t> decodes_completes;      // [batch_size] or empty
  std::vector<int32_t> decodes_next_position;  // [batch_size]: -1 finished or padded
  std::vector<std::string> next_sampling_params;
};

class ModelIOProcessor {
 public:
  static ModelInputBatch build_input(const NextIterationPlan& iteration_plan,
                                     const ActiveSequenceBatch& decodes_state);
  // next_token [rows], complete [rows]: rows = has_prefill + decodes_batch_size.
  static ModelOutputBatch prepare_model_output(std::span<const TokenId> next_token,
                                               std::span<const uint8_t> complete,
                                               const PagedAttentionMetadata& attn_meta,
                                               std::span<const std::string> sampling_params);
};

}  // namespace pagedkv
