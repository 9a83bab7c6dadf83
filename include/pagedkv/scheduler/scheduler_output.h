// pagedkv/scheduler/scheduler_output.h - what one Scheduler::schedule() step hands the model
// step, and what update_from_output() hands back (vLLM's SchedulerOutput, NewRequestData,
// CachedRequestData, EngineCoreOutput). Plain values: the model step reads them without
// touching the scheduler.
//
// Example (a step admitting "b" while "a" decodes; page size 4):
//   SchedulerOutput out = scheduler.schedule();
//   out.num_scheduled_tokens         // [("a", 1), ("b", 6)]: running pass, then admissions
//   out.scheduled_cached_reqs        // request_ids ["a"], resumed [0],
//                                    // new_page_ids [nullopt] (a's pages still suffice),
//                                    // num_computed_tokens [9]
//   out.scheduled_new_reqs[0]        // {"b", prompt, page_ids [[7, 8]], num_computed_tokens 0}
//   ... run the model over the scheduled tokens, sample ...
//   auto results = scheduler.update_from_output(out, {{11}, {}});  // b's chunk is partial
//
// Invariants (the Scheduler guarantees them; its tests check them):
//   - every scheduled request appears once in num_scheduled_tokens, in output order (rule 41):
//     the running pass first, then admissions; each n >= 1; their sum is
//     total_num_scheduled_tokens <= max_num_batched_tokens;
//   - a scheduled request is in exactly one of scheduled_new_reqs (never admitted before) and
//     scheduled_cached_reqs (running, or resumed after a preemption);
//   - token counts are the values BEFORE the step: request r computes the tokens at positions
//     num_computed_tokens .. num_computed_tokens + n - 1;
//   - page ids count from the pool (the null page 0 included): a new or resumed request lists
//     all its pages per group, a running one only the pages added in this step (nullopt when
//     none).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/scheduler/sequence.h"

namespace pagedkv {

// A request scheduled for the first time.
struct NewRequestData {
  std::string request_id;
  std::vector<TokenId> prompt_token_ids;  // [num_prompt_tokens]
  GroupPages page_ids;                    // [num_groups][pages]: all its pages
  int32_t num_computed_tokens = 0;        // its prefix-cache hit
};

// Requests scheduled before (running) or resumed after a preemption, one entry per request in
// output order: the running pass's requests, then the resumed admissions.
struct CachedRequestData {
  std::vector<std::string> request_ids;
  // [i] = 1 when request i was resumed in this step (it was preempted; its page list and
  // computed tokens start over), 0 when it was running.
  std::vector<uint8_t> resumed;
  // [i]: a resumed request's pages (all of them, per group); a running request's pages added
  // in this step, or nullopt when it got none.
  std::vector<std::optional<GroupPages>> new_page_ids;
  std::vector<int32_t> num_computed_tokens;

  int32_t size() const { return static_cast<int32_t>(request_ids.size()); }
};

struct SchedulerOutput {
  // Which schedule() call made this output (1 for the first). update_from_output accepts only
  // the latest.
  int64_t step = 0;
  std::vector<NewRequestData> scheduled_new_reqs;
  CachedRequestData scheduled_cached_reqs;
  // (request id, tokens computed in this step), in output order (rule 41).
  std::vector<std::pair<std::string, int32_t>> num_scheduled_tokens;
  int32_t total_num_scheduled_tokens = 0;
  // Requests preempted in this step, in preemption order (rule 36).
  std::vector<std::string> preempted_req_ids;
  // Requests finished or aborted since the previous schedule() call, in the order they did.
  std::vector<std::string> finished_req_ids;
};

// What update_from_output reports for one scheduled request that produced a token (rule 43),
// in output order.
struct RequestOutput {
  std::string request_id;
  std::vector<TokenId> new_token_ids;  // the token appended (one per step)
  bool finished = false;
  std::optional<FinishReason> finish_reason;
  std::optional<TokenId> stop_reason;  // the stop token, when one finished it
};

}  // namespace pagedkv
