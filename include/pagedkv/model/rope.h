// pagedkv/model/rope.h - rotary position embedding of queries and keys (rule 53), in place.
//
// Example (SmolLM-135M: head_dim 64, theta 10000, no scaling; 9 query heads):
//   pagedkv::RotaryEmbedding rope(64, 10000.0, pagedkv::RopeParams{});
//   rope.apply(q.data(), tokens, 9, positions.data());   // q [tokens, 9, 64]
//
// Contract
//   x          [tokens, heads, head_dim]  float32, rotated in place
//   positions  [tokens]                   >= 0: the absolute position of each token
//   head_dim even and >= 2; theta > 0; the scaling fields of RopeParams (rope_params.h).
//
// Arithmetic (what the tests check against a float64 reference)
//   - NeoX pairing: dimension j pairs with j + d/2 (j < d/2), d = head_dim:
//       x'[j]       = x[j] cos(a_j) - x[j + d/2] sin(a_j)
//       x'[j + d/2] = x[j + d/2] cos(a_j) + x[j] sin(a_j)
//   - inv_freq f_j = theta^(-2j/d) is computed in double and rounded to float once. llama3
//     scaling adjusts it in double before that rounding (Hugging Face's formula: wavelength
//     2 pi / f; above original_max / low_freq_factor divide by factor; below original_max /
//     high_freq_factor keep; in between blend (1 - s) f / factor + s f with
//     s = (original_max / wavelength - low) / (high - low)).
//   - The angle is a_j = float(p) * f_j in float32, as PyTorch forms positions * inv_freq in
//     float32; linear scaling first divides the position: a_j = (float(p) / float(factor)) *
//     f_j. cos and sin are float32 (std::cos/std::sin on float, within 1 ulp of PyTorch's
//     vectorized ones, so results agree with Hugging Face to float32 rounding, not bitwise).
//   - Per token and pair the computation depends on (p, j, x) only: batch invariant (rule 49).
//
// Errors: InvalidArgument for a bad head_dim, theta or scaling field (constructor) and for
// negative tokens/heads or a null pointer (apply); OutOfRange for a negative position, naming
// the token. apply checks every position before rotating anything.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/model/rope_params.h"

namespace pagedkv {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int32_t head_dim, double theta, const RopeParams& scaling);

  void apply(float* x, int32_t tokens, int32_t heads, const int32_t* positions) const;

  // [head_dim / 2] the (scaled) inverse frequencies f_j.
  std::span<const float> inv_freq() const { return inv_freq_; }
  int32_t head_dim() const { return head_dim_; }

 private:
  int32_t head_dim_;
  float position_scale_;  // 1 / factor for kLinear, else 1 (see the angle above)
  bool divide_position_;
  std::vector<float> inv_freq_;
};

}  // namespace pagedkv
