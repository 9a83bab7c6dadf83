// pagedkv/scheduler/sampling_params.h - how one request generates: its output budget and stop
// conditions (read by the scheduler, rule 43), and the sampler's knobs (read by the engine's
// sampler only). Field names and defaults follow vLLM's SamplingParams.
//
// Example:
//   SamplingParams params;
//   params.max_tokens = 64;           // finish with "length" after 64 outputs
//   params.min_tokens = 4;            // EOS and stop tokens are ignored before 4 outputs
//   params.stop_token_ids = {13};     // token 13 finishes with "stop"
//   params.temperature = 0.0f;        // greedy
//   params.validate();                // throws InvalidArgument naming the bad field
//
// Invariants (what validate() checks):
//   - max_tokens >= 1 and 0 <= min_tokens <= max_tokens;
//   - stop token ids are >= 0;
//   - temperature is finite and >= 0 (0 = greedy); top_k >= -1 (0 and -1 = off);
//     0 < top_p <= 1; logprobs, when set, >= 0.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv {

struct SamplingParams {
  // ---- Read by the scheduler (rule 43) ----
  int32_t max_tokens = 16;              // output tokens at most
  int32_t min_tokens = 0;               // EOS and stop tokens do not stop before this many
  bool ignore_eos = false;              // the EOS token does not stop the request
  std::vector<TokenId> stop_token_ids;  // any of these stops the request (it is kept)

  // ---- Read by the engine's sampler, not by the scheduler ----
  float temperature = 1.0f;         // 0 = greedy
  int32_t top_k = 0;                // 0 or -1 = off
  float top_p = 1.0f;               // in (0, 1]; 1 = off
  std::optional<int64_t> seed;      // per-request generator seed
  std::optional<int32_t> logprobs;  // log-probabilities of this many top tokens

  // Throws InvalidArgument naming the first bad field and its limit.
  void validate() const;
};

}  // namespace pagedkv
