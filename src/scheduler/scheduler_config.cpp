// SchedulerConfig validation (rule 45): one place that decides what a usable config is.
#include "pagedkv/scheduler/scheduler_config.h"

#include "pagedkv/common/errors.h"

namespace pagedkv {

std::string_view scheduling_policy_name(SchedulingPolicy policy) {
  switch (policy) {
    case SchedulingPolicy::kFcfs: return "fcfs";
    case SchedulingPolicy::kPriority: return "priority";
  }
  return "unknown";
}

SchedulingPolicy parse_scheduling_policy(std::string_view name) {
  if (name == "fcfs") return SchedulingPolicy::kFcfs;
  if (name == "priority") return SchedulingPolicy::kPriority;
  PAGEDKV_CHECK_ARG(false, "unknown scheduling policy '{}' (expected 'fcfs' or 'priority')", name);
  return SchedulingPolicy::kFcfs;  // unreachable
}

void SchedulerConfig::validate() const {
  PAGEDKV_CHECK_ARG(max_num_seqs >= 1, "max_num_seqs must be >= 1, got {}", max_num_seqs);
  PAGEDKV_CHECK_ARG(max_num_batched_tokens >= 1, "max_num_batched_tokens must be >= 1, got {}",
                    max_num_batched_tokens);
  PAGEDKV_CHECK_ARG(max_model_len >= 1, "max_model_len must be >= 1, got {}", max_model_len);
  PAGEDKV_CHECK_ARG(long_prefill_token_threshold >= 0,
                    "long_prefill_token_threshold must be >= 0 (0 = off), got {}",
                    long_prefill_token_threshold);
  PAGEDKV_CHECK_ARG(policy == SchedulingPolicy::kFcfs || policy == SchedulingPolicy::kPriority,
                    "unknown scheduling policy {}", static_cast<int>(policy));
  // Rule 45: every running request must be able to get at least one token per step.
  PAGEDKV_CHECK_ARG(max_num_batched_tokens >= max_num_seqs,
                    "max_num_batched_tokens ({}) must be >= max_num_seqs ({})",
                    max_num_batched_tokens, max_num_seqs);
  // Rule 45: without chunking a prompt is scheduled whole, so the longest must fit the budget.
  PAGEDKV_CHECK_ARG(enable_chunked_prefill || max_num_batched_tokens >= max_model_len,
                    "with enable_chunked_prefill off, max_num_batched_tokens ({}) must be >= "
                    "max_model_len ({})",
                    max_num_batched_tokens, max_model_len);
}

}  // namespace pagedkv
