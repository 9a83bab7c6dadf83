// Quantization error of attention over reduced-precision caches, measured against the float64
// reference on the UNQUANTIZED K/V (the data before it was written to the cache).
//
// Documented bounds, for K, V, Q ~ U(-1, 1), scale 2 / sqrt(head_dim), head_dim 128, contexts
// up to 600 (outputs are softmax-weighted means of V, so |out| <= 1). Observed maxima are about
// a third of each bound:
//   float16   max |out - ref| <= 3e-4
//   bfloat16  max |out - ref| <= 3e-3
//   int8      max |out - ref| <= 6e-3   (per token+head scale = max|x| / 127)
//   fp8 e4m3  max |out - ref| <= 3e-2   (per-tensor scales 1/256; 3 mantissa bits)
#include <gtest/gtest.h>

#include "attention_test_util.h"

namespace pagedkv::testing {
namespace {

struct QuantCase {
  DType dtype;
  double bound;
};

TEST(AttentionQuantization, QuantizedCachesStayWithinDocumentedErrorOfTheUnquantizedData) {
  for (const QuantCase& c : {QuantCase{DType::kFloat16, 3e-4}, QuantCase{DType::kBFloat16, 3e-3},
                             QuantCase{DType::kInt8, 6e-3}, QuantCase{DType::kFp8E4M3, 3e-2}}) {
    // One layout per dtype: HND and NHD give bitwise identical results (invariance test).
    const KVLayout layout = c.dtype == DType::kInt8 ? KVLayout::kNHD : KVLayout::kHND;
    TestCache cache(layout, c.dtype, 100, 16, 2, 128, /*fp8_k_scale=*/1.0f / 256,
                    /*fp8_v_scale=*/1.0f / 256);
    const TestBatch tb = make_batch(cache, {{1, 600}, {24, 400}, {1, 33}}, 8, /*seed=*/21);
    const float scale = 2.0f / std::sqrt(128.0f);
    const std::vector<float> out = run_attention(cache, tb, {.scale = scale});
    const double err =
        max_abs_diff(out, reference_attention(cache, tb, {.scale = scale, .use_truth = true}));
    EXPECT_LE(err, c.bound) << dtype_name(c.dtype);
    // The same outputs are exact (float32 rounding) against the dequantized cache contents.
    EXPECT_LE(max_abs_diff(out, reference_attention(cache, tb, {.scale = scale})), 5e-6);
  }
}

TEST(AttentionQuantization, Fp8PerTensorScalesAreApplied) {
  // Data ~ U(-8, 8) stored with scales 1/32 (codes up to 256): the reference dequantizes with
  // the scales, so a kernel that ignored k_scale or v_scale would be off by a factor of 32.
  TestCache cache(KVLayout::kHND, DType::kFp8E4M3, 40, 16, 1, 64, 1.0f / 32, 1.0f / 16);
  const TestBatch tb = make_batch(cache, {{1, 200}, {9, 90}}, 2, /*seed=*/5, /*amplitude=*/8.0f);
  const std::vector<float> out = run_attention(cache, tb, {.scale = 0.05f});
  EXPECT_LE(max_abs_diff(out, reference_attention(cache, tb, {.scale = 0.05})), 4e-5);
}

}  // namespace
}  // namespace pagedkv::testing
