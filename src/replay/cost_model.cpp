#include "pagedkv/replay/cost_model.h"

#include <cmath>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

void check_coefficient(double value, const char* field) {
  PAGEDKV_CHECK_ARG(std::isfinite(value) && value >= 0.0,
                    "cost model: {} must be finite and >= 0, got {}", field, value);
}

}  // namespace

void CostModel::validate() const {
  check_coefficient(step_ms, "step_ms");
  check_coefficient(prefill_ms_per_1k_tokens, "prefill_ms_per_1k_tokens");
  check_coefficient(decode_ms_per_request, "decode_ms_per_request");
  check_coefficient(kv_ms_per_1k_tokens, "kv_ms_per_1k_tokens");
}

double CostModel::step_seconds(const StepWork& work) const {
  const double ms = step_ms +
                    prefill_ms_per_1k_tokens * static_cast<double>(work.prefill_tokens) / 1000.0 +
                    decode_ms_per_request * static_cast<double>(work.decode_requests) +
                    kv_ms_per_1k_tokens * static_cast<double>(work.kv_tokens) / 1000.0;
  return ms / 1000.0;
}

}  // namespace pagedkv
