#include "pagedkv/model/linear.h"

#include <omp.h>

#include <algorithm>
#include <dnnl.hpp>
#include <unordered_map>

#include "linear_kernels.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using model_detail::LinearArgs;
using model_detail::LinearBlockFn;

// linear_block_for asks the CPU for its targets; do that once per ISA level.
LinearBlockFn block_fn_cached(Isa isa) {
  static const LinearBlockFn fns[] = {model_detail::linear_block_for(Isa::kScalar),
                                      model_detail::linear_block_for(Isa::kAvx2),
                                      model_detail::linear_block_for(Isa::kAvx512),
                                      model_detail::linear_block_for(Isa::kAvx512Bf16)};
  return fns[static_cast<int>(isa)];
}

// oneDNN's matmul is slower than the own kernel for a few rows (bench/linear_bench.cpp: up to
// 5x at rows == 1, still behind at rows == 8 on SmolLM-135M shapes), so kFast uses it above.
constexpr int32_t kFastOwnKernelMaxRows = 8;

// Below this many multiply-adds a call runs on the calling thread: forking costs more.
constexpr int64_t kParallelMacs = int64_t{1} << 17;
// Work items are blocks of up to kBlockRows rows x block_cols weight rows: both operands of a
// block stay in L2 while its tiles sweep it.
constexpr int32_t kBlockRows = 48;

int32_t block_cols(int64_t row_blocks, int32_t out, int threads) {
  // Wide blocks for locality, narrower ones when there would be too few to share.
  for (int32_t cols : {64, 32}) {
    if (row_blocks * ((out + cols - 1) / cols) >= 4 * int64_t{threads}) return cols;
  }
  return 16;
}

void forward_deterministic(const LinearArgs& a, int32_t rows) {
  const LinearBlockFn block = block_fn_cached(active_isa());
  const int64_t macs = int64_t{rows} * a.in * a.out;
  const int threads = macs >= kParallelMacs ? omp_get_max_threads() : 1;
  const int64_t row_blocks = (rows + kBlockRows - 1) / kBlockRows;
  const int32_t cols = block_cols(row_blocks, a.out, threads);
  const int64_t col_blocks = (a.out + cols - 1) / cols;
  const int64_t items = row_blocks * col_blocks;
  // Items are independent: each output element belongs to exactly one item, and its value
  // does not depend on which thread computes it or on the item's shape.
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < items; ++i) {
    const int32_t r0 = static_cast<int32_t>((i % row_blocks) * kBlockRows);
    const int32_t c0 = static_cast<int32_t>((i / row_blocks) * cols);
    block(a, r0, std::min(rows, r0 + kBlockRows), c0, std::min(a.out, c0 + cols));
  }
}

// oneDNN runs on the OpenMP runtime the rest of the engine uses (no second thread pool
// spinning against it). The primitive of each shape comes from oneDNN's primitive cache.
const dnnl::engine& dnnl_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

}  // namespace

Linear::Linear(const float* weight, const float* bias, int32_t out_features, int32_t in_features)
    : weight_(weight), bias_(bias), out_(out_features), in_(in_features) {
  PAGEDKV_CHECK_ARG(weight != nullptr, "Linear weight must not be null");
  PAGEDKV_CHECK_ARG(out_features >= 1, "Linear out_features must be >= 1, got {}", out_features);
  PAGEDKV_CHECK_ARG(in_features >= 1, "Linear in_features must be >= 1, got {}", in_features);
}

void Linear::forward(const float* x, int32_t rows, float* y, MatmulMode mode) const {
  PAGEDKV_CHECK_ARG(rows >= 0, "Linear::forward rows must be >= 0, got {}", rows);
  if (rows == 0) return;
  PAGEDKV_CHECK_ARG(x != nullptr && y != nullptr, "Linear::forward x and y must not be null");
  if (mode == MatmulMode::kFast && rows > kFastOwnKernelMaxRows) {
    forward_fast(x, rows, y);
  } else {
    forward_deterministic(LinearArgs{x, weight_, bias_, y, in_, out_}, rows);
  }
}

void Linear::forward_fast(const float* x, int32_t rows, float* y) const {
  using dnnl::memory;
  const dnnl::engine& eng = dnnl_engine();
  const memory::dim m = rows, k = in_, n = out_;
  const memory::desc x_md({m, k}, memory::data_type::f32, memory::format_tag::ab);
  const memory::desc w_md({k, n}, memory::data_type::f32, memory::format_tag::ba);  // W [n, k]
  const memory::desc y_md({m, n}, memory::data_type::f32, memory::format_tag::ab);
  const memory::desc b_md =
      bias_ != nullptr ? memory::desc({1, n}, memory::data_type::f32, memory::format_tag::ab)
                       : memory::desc();
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(x_md, w_md, b_md, y_md), eng);
  const dnnl::matmul prim(pd);
  // oneDNN's memory objects take non-const handles; it only reads x, W and the bias.
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(x_md, eng, const_cast<float*>(x))},
      {DNNL_ARG_WEIGHTS, memory(w_md, eng, const_cast<float*>(weight_))},
      {DNNL_ARG_DST, memory(y_md, eng, y)}};
  if (bias_ != nullptr) args.emplace(DNNL_ARG_BIAS, memory(b_md, eng, const_cast<float*>(bias_)));
  dnnl::stream stream(eng);
  prim.execute(stream, args);
  stream.wait();
}

}  // namespace pagedkv
