// Private: the deterministic matmul kernel of Linear (linear.h), one build per ISA level.
//
//   x    [rows, in]   row-major
//   w    [out, in]    row-major
//   bias [out]        or nullptr
//   y    [rows, out]  row-major; the call writes the block [r0, r1) x [c0, c1) only
//
// Every y[r][o] is computed by one sequence of operations that depends on (in, ISA) alone:
// one SIMD accumulator per output element, lanes filled from x[r, k..k+N) * w[o, k..k+N) with
// fused multiply-adds for k = 0, N, 2N, ... (the last partial vector zero-padded), then the
// target's fixed lane reduction, then + bias[o]. Register tiles of different shapes only
// interleave these independent sequences, so any split of the block is bitwise equivalent.
#pragma once

#include <cstdint>

#include "pagedkv/common/cpu_info.h"

namespace pagedkv::model_detail {

struct LinearArgs {
  const float* x;     // [rows, in]
  const float* w;     // [out, in]
  const float* bias;  // [out] or nullptr
  float* y;           // [rows, out]
  int32_t in;
  int32_t out;
};

using LinearBlockFn = void (*)(const LinearArgs& a, int32_t r0, int32_t r1, int32_t c0, int32_t c1);

// The kernel for min(isa, what was compiled and what the CPU runs).
LinearBlockFn linear_block_for(Isa isa);

}  // namespace pagedkv::model_detail
