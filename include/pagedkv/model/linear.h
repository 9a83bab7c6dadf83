// pagedkv/model/linear.h - a dense layer y = x W^T + b over float32 weights that the caller
// owns (a projection of the reference Llama/Qwen2 forward pass, rule 55).
//
// Example (a q_proj of SmolLM-135M: in 576, out 576, with a Qwen2-style bias):
//   pagedkv::Linear q_proj(w.data(), b.data(), /*out_features=*/576, /*in_features=*/576);
//   q_proj.forward(x.data(), tokens, q.data(), pagedkv::MatmulMode::kDeterministic);
//
// Contract
//   weight  [out_features, in_features]  row-major, NOT copied: it must outlive the Linear
//   bias    [out_features]               or nullptr (no bias); NOT copied either
//   x       [rows, in_features]          row-major
//   y       [rows, out_features]         every element written; must not overlap x
//   out_features, in_features >= 1; rows >= 0 (rows == 0 writes nothing).
//
// Modes
//   kFast           rows > 8: oneDNN matmul reading the weight where it is (no packed copy),
//                   on the OpenMP threads (omp_get_max_threads()); rows <= 8: the
//                   deterministic kernel below, which is faster there (bench/linear_bench.cpp).
//                   oneDNN picks its kernel and blocking by shape: a row's result may change
//                   (within rounding) with the rows of the call.
//   kDeterministic  pagedkv's own SIMD kernel (ISA = pagedkv::active_isa() at call time).
//                   Rule 49's batch invariance: every y[r][o] = bias[o] + dot(x[r,:], W[o,:])
//                   is reduced in one fixed order - SIMD lanes accumulated along in_features,
//                   a fixed lane reduction, then the bias - whatever `rows`, whatever the other
//                   rows of the call and whatever the OpenMP thread count, so a row's output
//                   is bitwise equal to computing it alone. Results differ (within rounding)
//                   between ISA levels, never within one.
//
// Accuracy: both modes are within float32 summation rounding of a float64 reference
// (tests assert |err| <= 1e-5 * sum_k |x_k w_k| + 1e-6).
//
// Threads: both modes use omp_get_max_threads() threads when the work is large enough; call
// forward from outside any OpenMP parallel region.
#pragma once

#include <cstdint>

namespace pagedkv {

enum class MatmulMode : uint8_t { kFast, kDeterministic };

class Linear {
 public:
  // Throws InvalidArgument when weight is null or a size is < 1.
  Linear(const float* weight, const float* bias, int32_t out_features, int32_t in_features);

  // y [rows, out] = x [rows, in] W^T + bias. Throws InvalidArgument when rows < 0 or, with
  // rows > 0, x or y is null. Nothing is written on error.
  void forward(const float* x, int32_t rows, float* y, MatmulMode mode) const;

  int32_t in_features() const { return in_; }
  int32_t out_features() const { return out_; }
  const float* weight() const { return weight_; }
  const float* bias() const { return bias_; }

 private:
  void forward_fast(const float* x, int32_t rows, float* y) const;

  const float* weight_;
  const float* bias_;
  int32_t out_;
  int32_t in_;
};

}  // namespace pagedkv
