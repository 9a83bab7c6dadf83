// Sequence: the per-request scheduling state and the stop check of rule 43.
#include "pagedkv/scheduler/sequence.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

std::string_view sequence_status_name(SequenceStatus status) {
  switch (status) {
    case SequenceStatus::kWaiting: return "waiting";
    case SequenceStatus::kRunning: return "running";
    case SequenceStatus::kPreempted: return "preempted";
    case SequenceStatus::kFinishedStopped: return "finished_stopped";
    case SequenceStatus::kFinishedLength: return "finished_length";
    case SequenceStatus::kFinishedAborted: return "finished_aborted";
  }
  return "unknown";
}

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
  }
  return "unknown";
}

namespace {

// The checks of the constructor, made before anything is moved in.
void check_sequence_inputs(const Request& request, const SamplingParams& params,
                           std::optional<TokenId> eos_token_id, double arrival_time) {
  params.validate();
  PAGEDKV_CHECK_ARG(!eos_token_id || *eos_token_id >= 0,
                    "request '{}': eos_token_id must be >= 0, got {}", request.request_id(),
                    eos_token_id.value_or(0));
  PAGEDKV_CHECK_ARG(std::isfinite(arrival_time), "request '{}': arrival_time must be finite",
                    request.request_id());
  PAGEDKV_CHECK_ARG(request.num_output_tokens() == 0 && request.num_computed_tokens() == 0,
                    "request '{}' is not fresh: it has {} output and {} computed tokens (0 "
                    "expected)",
                    request.request_id(), request.num_output_tokens(),
                    request.num_computed_tokens());
}

}  // namespace

Sequence::Sequence(Request request, SamplingParams params, std::optional<TokenId> eos_token_id,
                   int32_t priority, double arrival_time)
    : status_((check_sequence_inputs(request, params, eos_token_id, arrival_time),
               SequenceStatus::kWaiting)),
      eos_token_id_(eos_token_id),
      params_(std::move(params)),
      priority_(priority),
      arrival_time_(arrival_time),
      request_(std::move(request)) {}

void Sequence::admit(int32_t num_computed_tokens, GroupPages page_ids, int32_t kv_slot) {
  PAGEDKV_ASSERT(status_ == SequenceStatus::kWaiting || status_ == SequenceStatus::kPreempted,
                 "request '{}' admitted while {}", request_id(), sequence_status_name(status_));
  request_.set_num_computed_tokens(num_computed_tokens);
  page_ids_ = std::move(page_ids);
  kv_slot_ = kv_slot;
  status_ = SequenceStatus::kRunning;
}

void Sequence::preempt() {
  PAGEDKV_ASSERT(status_ == SequenceStatus::kRunning, "request '{}' preempted while {}",
                 request_id(), sequence_status_name(status_));
  request_.set_num_computed_tokens(0);
  page_ids_.clear();
  kv_slot_ = -1;
  ++num_preemptions_;
  status_ = SequenceStatus::kPreempted;
}

void Sequence::fail_not_running(const char* what) const {
  PAGEDKV_ASSERT(false, "request '{}' {} while {}", request_id(), what,
                 sequence_status_name(status_));
  std::abort();  // not reached: the assertion above throws
}

void Sequence::append_pages(const GroupPages& new_pages) {
  PAGEDKV_ASSERT(status_ == SequenceStatus::kRunning && new_pages.size() == page_ids_.size(),
                 "request '{}' ({}, {} groups) given pages of {} groups", request_id(),
                 sequence_status_name(status_), page_ids_.size(), new_pages.size());
  for (size_t g = 0; g < new_pages.size(); ++g) {
    page_ids_[g].insert(page_ids_[g].end(), new_pages[g].begin(), new_pages[g].end());
  }
}

inline std::optional<FinishReason> Sequence::check_stop(TokenId last,
                                                        int32_t max_num_tokens) const {
  const int32_t outputs = request_.num_output_tokens();
  const bool at_length_limit = request_.num_tokens() >= max_num_tokens;
  if (outputs < params_.min_tokens) {
    // min_tokens never takes a request past max_model_len (or what the pool can hold).
    return at_length_limit ? std::optional(FinishReason::kLength) : std::nullopt;
  }
  if (!params_.ignore_eos && eos_token_id_ == last) return FinishReason::kStop;
  const std::vector<TokenId>& stops = params_.stop_token_ids;
  if (!stops.empty() && std::find(stops.begin(), stops.end(), last) != stops.end()) {
    return FinishReason::kStop;
  }
  if (at_length_limit || outputs >= params_.max_tokens) return FinishReason::kLength;
  return std::nullopt;
}

std::optional<FinishReason> Sequence::append_output_token(TokenId token, int32_t max_num_tokens) {
  if (status_ != SequenceStatus::kRunning) [[unlikely]]
    fail_not_running("given a token");
  request_.append_output_token_id(token);
  const std::optional<FinishReason> reason = check_stop(token, max_num_tokens);
  if (reason) [[unlikely]] {
    if (*reason == FinishReason::kStop && !(eos_token_id_ == token && !params_.ignore_eos)) {
      stop_reason_ = token;  // check 3: a stop token, reported as vLLM's stop_reason
    }
    finish(*reason);
  }
  return reason;
}

void Sequence::finish(FinishReason reason) {
  PAGEDKV_ASSERT(!is_finished(), "request '{}' finished twice (already {})", request_id(),
                 sequence_status_name(status_));
  switch (reason) {
    case FinishReason::kStop: status_ = SequenceStatus::kFinishedStopped; break;
    case FinishReason::kLength: status_ = SequenceStatus::kFinishedLength; break;
    case FinishReason::kAbort: status_ = SequenceStatus::kFinishedAborted; break;
  }
  finish_reason_ = reason;
  page_ids_.clear();
  kv_slot_ = -1;
}

void Sequence::verify() const {
  const std::string& id = request_id();
  PAGEDKV_ASSERT(num_computed_tokens() >= 0 && num_computed_tokens() <= num_tokens(),
                 "request '{}': {} computed of {} tokens", id, num_computed_tokens(), num_tokens());
  PAGEDKV_ASSERT(num_output_tokens() <= params_.max_tokens,
                 "request '{}': {} outputs, max_tokens {}", id, num_output_tokens(),
                 params_.max_tokens);
  PAGEDKV_ASSERT(is_finished() == finish_reason_.has_value(),
                 "request '{}' is {} but has {} finish reason", id, sequence_status_name(status_),
                 finish_reason_ ? "a" : "no");
  if (status_ != SequenceStatus::kRunning) {
    PAGEDKV_ASSERT(page_ids_.empty(), "request '{}' is {} but lists pages", id,
                   sequence_status_name(status_));
  }
  if (status_ == SequenceStatus::kWaiting || status_ == SequenceStatus::kPreempted) {
    PAGEDKV_ASSERT(num_computed_tokens() == 0, "request '{}' is {} with {} computed tokens", id,
                   sequence_status_name(status_), num_computed_tokens());
  }
  if (status_ == SequenceStatus::kWaiting) {
    PAGEDKV_ASSERT(num_preemptions_ == 0, "request '{}' is waiting after {} preemptions", id,
                   num_preemptions_);
  }
  if (status_ == SequenceStatus::kPreempted) {
    PAGEDKV_ASSERT(num_preemptions_ >= 1, "request '{}' is preempted but counts none", id);
  }
}

}  // namespace pagedkv
