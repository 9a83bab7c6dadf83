// pagedkv/scheduler/sequence.h - one request as the scheduler tracks it (vLLM v1's Request):
// the hash module's Request (tokens, page hashes, computed tokens) plus the scheduling state -
// status, priority, arrival time, sampling parameters, EOS token, preemptions - and the stop
// check of rule 43.
//
// Example (what the Scheduler does with it; callers only read sequences):
//   Sequence seq(Request("r1", prompt), params, /*eos_token_id=*/2, /*priority=*/0,
//                /*arrival_time=*/0.0);                     // kWaiting
//   seq.admit(/*num_computed_tokens=*/hit, manager.get_page_ids("r1"),   // kRunning (rule 40)
//             manager.slot_of("r1"));
//   seq.advance(n);                                         // computed += n (rule 41)
//   if (auto reason = seq.append_output_token(token, max_num_tokens)) {
//     manager.free(seq.request());                          // finished: status set (rule 44)
//   }
//   seq.preempt();                                          // kPreempted, computed 0 (rule 36)
//
// Lifecycle: kWaiting -> kRunning <-> kPreempted, then one of the finished states; any live
// state may be aborted. Each transition asserts the state it starts from (InternalError).
//
// Invariants (verify()):
//   - 0 <= num_computed_tokens <= num_tokens; num_output_tokens <= max_tokens;
//   - a finished status has a finish reason (stop, length, abort) and a live one has none;
//   - a sequence that is not running holds no pages (page_ids() is empty) and has computed 0.
//
// The stop check (rule 43), made after each appended token, in this order:
//   1. fewer outputs than min_tokens: the request goes on - unless num_tokens has reached
//      max_num_tokens (see below): a request never runs past max_model_len, not even to reach
//      min_tokens; it then finishes with "length";
//   2. the token is the EOS token (unless ignore_eos): "stop";
//   3. the token is in stop_token_ids: "stop" (stop_reason() is that token);
//   4. num_tokens >= max_num_tokens or outputs >= max_tokens: "length".
// max_num_tokens is max_model_len, or less when the pool cannot hold that many (the
// Scheduler's max_num_tokens()). vLLM's check_stop makes checks 1-4 in the same order but
// without the exception in 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/scheduler/sampling_params.h"

namespace pagedkv {

enum class SequenceStatus : uint8_t {
  kWaiting,          // added, never admitted; in the waiting queue
  kRunning,          // admitted; in `running`, holds pages
  kPreempted,        // preempted (rule 36); back in the waiting queue, holds no pages
  kFinishedStopped,  // EOS or a stop token
  kFinishedLength,   // max_tokens or max_model_len reached
  kFinishedAborted,  // aborted by the caller
};

enum class FinishReason : uint8_t { kStop, kLength, kAbort };

// "waiting", "running", "preempted", "finished_stopped", "finished_length", "finished_aborted".
std::string_view sequence_status_name(SequenceStatus status);
// "stop", "length", "abort" (vLLM's names).
std::string_view finish_reason_name(FinishReason reason);
inline bool is_finished(SequenceStatus status) {
  return status >= SequenceStatus::kFinishedStopped;
}

// 64-byte aligned so that the fields a decode step touches fill three cache lines (below).
class alignas(64) Sequence {
 public:
  // Throws InvalidArgument (nothing taken) for bad params (SamplingParams::validate), a
  // negative EOS token id, a non-finite arrival time, or a request that is not fresh (it has
  // output tokens or computed tokens).
  Sequence(Request request, SamplingParams params, std::optional<TokenId> eos_token_id,
           int32_t priority, double arrival_time);

  const std::string& request_id() const { return request_.request_id(); }
  const Request& request() const { return request_; }
  const SamplingParams& sampling_params() const { return params_; }
  std::optional<TokenId> eos_token_id() const { return eos_token_id_; }
  int32_t priority() const { return priority_; }
  double arrival_time() const { return arrival_time_; }

  SequenceStatus status() const { return status_; }
  bool is_finished() const { return pagedkv::is_finished(status_); }
  std::optional<FinishReason> finish_reason() const { return finish_reason_; }
  // The stop token that finished the request (check 3), as vLLM's stop_reason.
  std::optional<TokenId> stop_reason() const { return stop_reason_; }
  int32_t num_preemptions() const { return num_preemptions_; }

  int32_t num_tokens() const { return request_.num_tokens(); }
  int32_t num_prompt_tokens() const { return request_.num_prompt_tokens(); }
  int32_t num_output_tokens() const { return request_.num_output_tokens(); }
  int32_t num_computed_tokens() const { return request_.num_computed_tokens(); }
  // The pages the scheduler's outputs have announced for this request, per group (what the
  // model's page table holds); empty unless running.
  const GroupPages& page_ids() const { return page_ids_; }
  // The request's KVCacheManager slot while running (AllocationRequest::slot_hint), else -1.
  int32_t kv_slot() const { return kv_slot_; }

  // ---- Transitions (the Scheduler's) ----
  // kWaiting or kPreempted -> kRunning with `num_computed_tokens` (the prefix hit), all its
  // pages (rule 40) and the manager slot holding them.
  void admit(int32_t num_computed_tokens, GroupPages page_ids, int32_t kv_slot = -1);
  // kRunning -> kPreempted: computed 0, pages forgotten, outputs kept (rule 36).
  void preempt();
  // kRunning: computed += num_tokens (rule 41).
  void advance(int32_t num_tokens) {
    if (status_ != SequenceStatus::kRunning) [[unlikely]]
      fail_not_running("advanced");
    request_.set_num_computed_tokens(request_.num_computed_tokens() + num_tokens);
  }
  // kRunning: appends the newly allocated pages of each group.
  void append_pages(const GroupPages& new_pages);
  // kRunning: appends `token` and makes the stop check above. Returns the finish reason when
  // it finishes (the status is then finished; freeing pages is the caller's job).
  std::optional<FinishReason> append_output_token(TokenId token, int32_t max_num_tokens);
  // Any live state -> the finished state of `reason`; pages forgotten.
  void finish(FinishReason reason);

  // Walks the invariants above; throws InternalError naming the first broken.
  void verify() const;

  // Starts loading the cache lines a decode step reads (state, stop check, the request's hot
  // fields), for a caller that walks many sequences and calls it a few ahead of its work.
  void prefetch() const {
    __builtin_prefetch(this);
    __builtin_prefetch(&request_);
    __builtin_prefetch(reinterpret_cast<const char*>(&request_) + 64);
  }

 private:
  // Checks 1-4 on the latest output token, `last`; nullopt: the request goes on.
  std::optional<FinishReason> check_stop(TokenId last, int32_t max_num_tokens) const;
  // Throws InternalError: "request '<id>' <what> while <status>".
  [[noreturn]] void fail_not_running(const char* what) const;

  // First cache line: the state and what the stop check reads (SamplingParams starts with
  // the fields the scheduler reads). Then the colder fields, and the request from the third
  // line on (its hot fields come first).
  SequenceStatus status_ = SequenceStatus::kWaiting;
  std::optional<FinishReason> finish_reason_;
  int32_t kv_slot_ = -1;
  std::optional<TokenId> eos_token_id_;
  std::optional<TokenId> stop_reason_;
  SamplingParams params_;
  int32_t priority_ = 0;
  int32_t num_preemptions_ = 0;
  double arrival_time_ = 0.0;
  alignas(64) Request request_;
  GroupPages page_ids_;
};

}  // namespace pagedkv
