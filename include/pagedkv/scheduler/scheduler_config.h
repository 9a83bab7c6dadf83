// pagedkv/scheduler/scheduler_config.h - the one validated description of a Scheduler's limits
// and policy (vLLM's SchedulerConfig, the fields rules 34-46 read).
//
// Example:
//   SchedulerConfig config;
//   config.max_num_seqs = 32;              // running requests at most (rule 41)
//   config.max_num_batched_tokens = 512;   // token budget of one step (rule 34)
//   config.max_model_len = 2048;           // must equal the KVCacheManager's
//   config.policy = SchedulingPolicy::kPriority;
//   config.validate();                     // throws InvalidArgument naming the bad field
//   Scheduler scheduler(config, manager);  // validates again, and checks max_model_len
//
// Invariants (what validate() checks, rule 45):
//   - max_num_seqs, max_num_batched_tokens and max_model_len are >= 1;
//   - max_num_batched_tokens >= max_num_seqs (every running request can get a token);
//   - with chunked prefill off, max_num_batched_tokens >= max_model_len (a whole prompt fits
//     in one step's budget);
//   - long_prefill_token_threshold >= 0 (0 turns it off);
//   - policy is kFcfs or kPriority.
#pragma once

#include <cstdint>
#include <string_view>

namespace pagedkv {

enum class SchedulingPolicy : uint8_t {
  kFcfs,      // waiting: a deque in arrival order; victim: the last running request
  kPriority,  // waiting: ordered by (priority, arrival_time, request_id), lower first;
              // victim: the running request with the largest (priority, arrival_time)
};

std::string_view scheduling_policy_name(SchedulingPolicy policy);  // "fcfs" / "priority"
SchedulingPolicy parse_scheduling_policy(std::string_view name);   // throws InvalidArgument

struct SchedulerConfig {
  int32_t max_num_seqs = 128;             // running requests at most
  int32_t max_num_batched_tokens = 2048;  // tokens scheduled in one step at most
  int32_t max_model_len = 0;              // tokens per request; must be set (>= 1)
  // Split a prompt longer than the budget left over several steps (rule 38). Off: an admission
  // whose chunk would exceed the budget left stops admission for the step. Running requests
  // still in prefill are chunked either way (rule 34).
  bool enable_chunked_prefill = true;
  // Cap on one request's tokens per step while it has more than this left (0 = off).
  int32_t long_prefill_token_threshold = 0;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  // Rule 39 (a): admit a request only when its whole current sequence fits in the free pages,
  // not just its first chunk (vLLM's scheduler_reserve_full_isl).
  bool reserve_full_prompt = true;

  // Throws InvalidArgument naming the first bad field and its limit.
  void validate() const;
};

}  // namespace pagedkv
