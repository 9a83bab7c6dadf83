// pagedkv/compat/inference_types.h - the plain values the seed-002 InferenceScheduler reads and
// writes: a prompt going through its prefill (InitialSequenceRequest), a sequence decoding
// (GenerationStepTask), and one step's plan (NextIterationPlan with AllocatedPrefillPages and
// SlotPageAssignment). Host-side scheduler fields only: the seed's device arrays (token_ids,
// positions, sampling_params of the runtime) belong to the model step, which keeps them by id.
//
// Example (a driver's view of one request; page size 16, chunk size 32):
//   scheduler.enqueue_prefill_request({.id = "a", .prompt_token_ids = prompt /*40 tokens*/,
//                                      .chunk_size = 32});  // page_indices: all dummy pages
//   // plan 1 computes tokens [0, 32) into pages [1, 2]; the driver keeps the plan's
//   // prefill_request as `p` and does ++p.chunk_idx;
//   // plan 2 computes tokens [32, 40) into page [3]; now p.is_complete() after ++chunk_idx:
//   GenerationStepTask t = GenerationStepTask::from_prefill(std::move(p), sampled);
//   // t.position == 40, t.token_ids == prompt, t.prefill_token_id == sampled
//   scheduler.enqueue_decodes_request(std::move(t));
//
// Page tables: page_indices[j] is the page holding tokens [j * page_size, (j + 1) * page_size);
// 0 (the dummy page) means "not mapped". The mapped entries are always a prefix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv {

// A prompt waiting for its prefill or part-way through it. The scheduler maps the pages of one
// chunk per plan; the driver advances chunk_idx after the model step computed that chunk.
struct InitialSequenceRequest {
  std::string id;
  std::vector<TokenId> prompt_token_ids;  // [prompt_len]
  int32_t chunk_idx = 0;                  // the chunk the next plan computes
  int32_t chunk_size = 0;                 // tokens per chunk; the last chunk may be shorter
  std::vector<PageId> page_indices;       // [num_pages_per_sequence], 0 = not mapped

  int32_t prompt_len() const { return static_cast<int32_t>(prompt_token_ids.size()); }
  // Tokens [chunk_start(), chunk_end()) are the chunk the next plan computes.
  int64_t chunk_start() const { return int64_t{chunk_idx} * chunk_size; }
  int64_t chunk_end() const;
  // True once every chunk has been computed (chunk_start() >= prompt_len()).
  bool is_complete() const { return chunk_start() >= prompt_len(); }
};

// A sequence past its prefill: each decode step computes the K/V of prefill_token_id at
// `position` and samples the next token.
struct GenerationStepTask {
  std::string id;
  int32_t slot = -1;                 // decode-batch slot; -1 until the scheduler admits it
  int32_t position = 0;              // where the next token's K/V goes (= tokens computed)
  std::vector<PageId> page_indices;  // [num_pages_per_sequence], 0 = not mapped
  TokenId prefill_token_id = 0;      // the next step's input: the token sampled last
  // [position] the tokens whose K/V the pages hold (prompt, then outputs). Not in the seed: a
  // preempted task is recomputed from token_ids + [prefill_token_id].
  std::vector<TokenId> token_ids;

  // The task of a request whose prefill is complete (StateError otherwise): position =
  // prompt_len, token_ids = the prompt, its pages, slot -1.
  static GenerationStepTask from_prefill(InitialSequenceRequest prefill, TokenId prefill_token_id);
  // After a decode step: prefill_token_id joins token_ids, `sampled` becomes the next input,
  // position advances by one.
  void advance(TokenId sampled);
};

// The pages mapped for the planned prefill chunk, in page-table order.
struct AllocatedPrefillPages {
  std::vector<PageId> page_indices;
  bool operator==(const AllocatedPrefillPages&) const = default;
};

// One page-table update of an active decode: page_indices[page_idx] of the task in `slot`
// becomes mapped_idx.
struct SlotPageAssignment {
  int32_t slot = 0;
  int32_t page_idx = 0;
  PageId mapped_idx = kNullPageId;
  bool operator==(const SlotPageAssignment&) const = default;
};

// What the next model step computes. A plan with neither flag set has no work (the seed spun
// until a queue filled instead).
struct NextIterationPlan {
  bool schedule_prefill = false;  // compute prefill_request's chunk
  bool schedule_decodes = false;  // compute one token of every active decode
  // The request whose chunk [chunk_start(), chunk_end()) this step computes, with that chunk's
  // pages mapped; it owns its pages: the driver keeps it (it is the next create_plan's
  // active_prefill) or turns it into a GenerationStepTask. nullopt when none.
  std::optional<InitialSequenceRequest> prefill_request;
  std::optional<AllocatedPrefillPages> prefill_pages_update;  // nullopt when no prefill
  // Copies of the tasks admitted into the decode batch in this step, in admission order, with
  // this step's page updates applied. The batch keeps the tasks themselves.
  std::vector<GenerationStepTask> new_decodes_requests;
  // Pages mapped for active decodes crossing a page boundary, in admission order.
  std::vector<SlotPageAssignment> decodes_state_page_updates;
  // Not in the seed: requests preempted in this step, in preemption order. Each is back in the
  // prefill queue (its pages freed) and will be recomputed.
  std::vector<std::string> preempted_request_ids;

  bool has_work() const { return schedule_prefill || schedule_decodes; }
};

}  // namespace pagedkv
