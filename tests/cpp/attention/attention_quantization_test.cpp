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

TEST(AttentionQuantization, EveryFp8CodeDecodesExactlyAndNanPropagatesOnEveryIsa) {
  // One key per request: the output is the key's V row times v_scale, exactly. V rows hold all
  // 256 codes (2 rows of 128); 0x7f and 0xff are NaN in e4m3fn. The decode path and the gemm
  // path (17 query rows) both dequantize through the same loads.
  constexpr int32_t kDim = 128, kGroup = 17;
  std::vector<uint8_t> k(2 * 16 * kDim, 0x38), v(2 * 16 * kDim, 0);  // K = 1.0 everywhere
  for (int32_t c = 0; c < 256; ++c) v[(c / kDim) * 16 * kDim + c % kDim] = static_cast<uint8_t>(c);
  PagedKVView view{.layout = KVLayout::kHND,
                   .dtype = DType::kFp8E4M3,
                   .num_pages = 2,
                   .page_size = 16,
                   .num_kv_heads = 1,
                   .head_dim = kDim,
                   .k_data = k.data(),
                   .v_data = v.data(),
                   .k_scale = 1.0f,
                   .v_scale = 0.5f};
  const std::vector<int32_t> table = {0, 1}, qsl = {0, 1, 2}, lens = {1, 1};
  const std::vector<float> query(2 * kGroup * kDim, 0.25f);
  IsaCapGuard guard;
  for (Isa isa : isa_levels()) {
    set_isa_cap(isa);
    for (int32_t heads : {1, kGroup}) {
      std::vector<float> out(2 * heads * kDim);
      AttentionWorkspace ws;
      paged_attention(view, ConstTokenTensor::f32(query.data(), 2, heads, kDim),
                      {qsl, lens, PageTableRef::dense(table, 1)}, {.scale = 1.0f}, out, ws);
      for (int32_t c = 0; c < 256; ++c) {
        const float want = 0.5f * fp8_e4m3_to_float(static_cast<uint8_t>(c));
        for (int32_t h = 0; h < heads; ++h) {
          const float got = out[(int64_t{c / kDim} * heads + h) * kDim + c % kDim];
          if (std::isnan(want)) {
            EXPECT_TRUE(std::isnan(got)) << "code " << c << " isa " << isa_name(isa);
          } else {
            EXPECT_EQ(got, want) << "code " << c << " isa " << isa_name(isa);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace pagedkv::testing
