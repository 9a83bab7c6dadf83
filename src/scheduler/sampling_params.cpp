// SamplingParams validation: the limits vLLM's SamplingParams enforces for these fields.
#include "pagedkv/scheduler/sampling_params.h"

#include <cmath>

#include "pagedkv/common/errors.h"

namespace pagedkv {

void SamplingParams::validate() const {
  PAGEDKV_CHECK_ARG(max_tokens >= 1, "max_tokens must be >= 1, got {}", max_tokens);
  PAGEDKV_CHECK_ARG(min_tokens >= 0 && min_tokens <= max_tokens,
                    "min_tokens must be in [0, max_tokens = {}], got {}", max_tokens, min_tokens);
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    PAGEDKV_CHECK_ARG(stop_token_ids[i] >= 0, "stop_token_ids[{}] must be >= 0, got {}", i,
                      stop_token_ids[i]);
  }
  PAGEDKV_CHECK_ARG(std::isfinite(temperature) && temperature >= 0.0f,
                    "temperature must be finite and >= 0, got {}", temperature);
  PAGEDKV_CHECK_ARG(top_k >= -1, "top_k must be >= -1 (0 and -1 = off), got {}", top_k);
  PAGEDKV_CHECK_ARG(top_p > 0.0f && top_p <= 1.0f, "top_p must be in (0, 1], got {}", top_p);
  PAGEDKV_CHECK_ARG(!logprobs || *logprobs >= 0, "logprobs must be >= 0, got {}",
                    logprobs.value_or(0));
}

}  // namespace pagedkv
