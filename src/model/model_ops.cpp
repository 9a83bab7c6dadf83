#include "pagedkv/model/model_ops.h"

#include <cmath>
#include <cstring>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

// Sum of squares in the fixed order model_ops.h states (8 partial sums, a fixed tree), written
// so the compiler can keep the partial sums in vector registers.
float sum_of_squares(const float* x, int32_t n) {
  float s[8] = {};
  int32_t k = 0;
  for (; k + 8 <= n; k += 8) {
    for (int l = 0; l < 8; ++l) s[l] += x[k + l] * x[k + l];
  }
  for (int l = 0; k < n; ++k, ++l) s[l] += x[k] * x[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

}  // namespace

void rms_norm(const float* x, const float* weight, int32_t rows, int32_t n, float eps, float* out) {
  PAGEDKV_CHECK_ARG(rows >= 0 && n >= 1, "rms_norm needs rows >= 0 and n >= 1, got {} and {}", rows,
                    n);
  if (rows == 0) return;
  PAGEDKV_CHECK_ARG(x != nullptr && weight != nullptr && out != nullptr,
                    "rms_norm pointers must not be null");
  for (int32_t r = 0; r < rows; ++r) {
    const float* xr = x + int64_t{r} * n;
    float* yr = out + int64_t{r} * n;
    const float ms = sum_of_squares(xr, n) / static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(ms + eps);
    for (int32_t k = 0; k < n; ++k) yr[k] = (xr[k] * inv) * weight[k];
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  PAGEDKV_CHECK_ARG(n >= 0, "silu_mul n must be >= 0, got {}", n);
  if (n == 0) return;
  PAGEDKV_CHECK_ARG(gate != nullptr && up != nullptr && out != nullptr,
                    "silu_mul pointers must not be null");
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
  PAGEDKV_CHECK_ARG(n >= 0, "add_inplace n must be >= 0, got {}", n);
  if (n == 0) return;
  PAGEDKV_CHECK_ARG(x != nullptr && y != nullptr, "add_inplace pointers must not be null");
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void embedding_lookup(const float* table, int32_t vocab, int32_t hidden,
                      std::span<const int32_t> ids, float* out) {
  PAGEDKV_CHECK_ARG(vocab >= 1 && hidden >= 1,
                    "embedding_lookup needs vocab >= 1 and hidden >= 1, got {} and {}", vocab,
                    hidden);
  if (ids.empty()) return;
  PAGEDKV_CHECK_ARG(table != nullptr && out != nullptr,
                    "embedding_lookup pointers must not be null");
  for (size_t i = 0; i < ids.size(); ++i) {
    PAGEDKV_CHECK_RANGE(ids[i] >= 0 && ids[i] < vocab,
                        "embedding_lookup: token id {} (at index {}) out of range [0, {})", ids[i],
                        i, vocab);
  }
  const size_t row_bytes = sizeof(float) * static_cast<size_t>(hidden);
  for (size_t i = 0; i < ids.size(); ++i) {
    std::memcpy(out + i * static_cast<size_t>(hidden),
                table + static_cast<size_t>(ids[i]) * static_cast<size_t>(hidden), row_bytes);
  }
}

}  // namespace pagedkv
