#include "pagedkv/model/rope.h"

#include <cmath>
#include <numbers>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

void check_scaling(const RopeParams& s) {
  if (s.type == RopeParams::Type::kNone) return;
  PAGEDKV_CHECK_ARG(s.factor > 0, "rope scaling factor must be > 0, got {}", s.factor);
  if (s.type != RopeParams::Type::kLlama3) return;
  PAGEDKV_CHECK_ARG(s.low_freq_factor > 0, "llama3 low_freq_factor must be > 0, got {}",
                    s.low_freq_factor);
  PAGEDKV_CHECK_ARG(s.high_freq_factor > s.low_freq_factor,
                    "llama3 high_freq_factor ({}) must be > low_freq_factor ({})",
                    s.high_freq_factor, s.low_freq_factor);
  PAGEDKV_CHECK_ARG(s.original_max_position_embeddings > 0,
                    "llama3 original_max_position_embeddings must be > 0, got {}",
                    s.original_max_position_embeddings);
}

// Hugging Face's llama3 rule on one frequency, in double.
double llama3_frequency(double f, const RopeParams& s) {
  const double old_len = s.original_max_position_embeddings;
  const double wavelen = 2 * std::numbers::pi / f;
  const double low_freq_wavelen = old_len / s.low_freq_factor;
  const double high_freq_wavelen = old_len / s.high_freq_factor;
  if (wavelen < high_freq_wavelen) return f;
  if (wavelen > low_freq_wavelen) return f / s.factor;
  const double smooth =
      (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1 - smooth) * f / s.factor + smooth * f;
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(int32_t head_dim, double theta, const RopeParams& scaling)
    : head_dim_(head_dim), position_scale_(1.0f), divide_position_(false) {
  PAGEDKV_CHECK_ARG(head_dim >= 2 && head_dim % 2 == 0,
                    "rope head_dim must be even and >= 2, got {}", head_dim);
  PAGEDKV_CHECK_ARG(theta > 0, "rope theta must be > 0, got {}", theta);
  check_scaling(scaling);
  if (scaling.type == RopeParams::Type::kLinear) {
    divide_position_ = true;
    position_scale_ = static_cast<float>(scaling.factor);
  }
  const int32_t half = head_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int32_t j = 0; j < half; ++j) {
    double f = std::pow(theta, -2.0 * j / head_dim);
    if (scaling.type == RopeParams::Type::kLlama3) f = llama3_frequency(f, scaling);
    inv_freq_[static_cast<size_t>(j)] = static_cast<float>(f);
  }
}

void RotaryEmbedding::apply(float* x, int32_t tokens, int32_t heads,
                            const int32_t* positions) const {
  PAGEDKV_CHECK_ARG(tokens >= 0 && heads >= 0, "rope tokens ({}) and heads ({}) must be >= 0",
                    tokens, heads);
  if (tokens == 0 || heads == 0) return;
  PAGEDKV_CHECK_ARG(x != nullptr && positions != nullptr, "rope x and positions must not be null");
  for (int32_t t = 0; t < tokens; ++t) {
    PAGEDKV_CHECK_RANGE(positions[t] >= 0, "rope position of token {} is {}, must be >= 0", t,
                        positions[t]);
  }
  const int32_t half = head_dim_ / 2;
  for (int32_t t = 0; t < tokens; ++t) {
    float p = static_cast<float>(positions[t]);
    if (divide_position_) p = p / position_scale_;
    float* row = x + int64_t{t} * heads * head_dim_;
    for (int32_t j = 0; j < half; ++j) {
      const float angle = p * inv_freq_[static_cast<size_t>(j)];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int32_t h = 0; h < heads; ++h) {
        float* v = row + int64_t{h} * head_dim_;
        const float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;
        v[j + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace pagedkv
