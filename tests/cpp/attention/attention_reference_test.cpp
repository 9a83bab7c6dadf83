// Paged attention against a dense float64 reference, over a sampled sweep of layouts x dtypes x
// page sizes x head dims x GQA ratios x sliding window x soft cap x batch mixes x query dtype x
// page-table form, on every ISA path this CPU runs.
//
// Sampling: each axis is a sequence of shuffled copies of its values (fixed seed), so every
// value of every axis appears several times while combinations vary; the binary stays fast.
// Unoptimized builds run 30 cases (scalar ISA on every third), optimized builds 72.
//
// Tolerance: the reference reads the same dequantized cache values the kernels read, so every
// dtype compares at float32 rounding level: max |out - ref| <= 5e-6 for outputs of magnitude
// <= 1. Quantization error against the unquantized data is tested separately
// (attention_quantization_test.cpp).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "attention_test_util.h"
#include "pagedkv/common/cpu_info.h"

namespace pagedkv::testing {
namespace {

enum class Mix { kDecode, kPrefill, kMixed };

struct GqaShape {
  int32_t kv_heads;
  int32_t q_heads;
  const char* name;
};

struct SweepCase {
  int index;
  KVLayout layout;
  DType dtype;
  int32_t page_size;
  int32_t head_dim;
  GqaShape gqa;
  int32_t window;
  float soft_cap;
  Mix mix;
  bool bf16_query;
  bool csr;
};

constexpr double kTolerance = 5e-6;

template <typename T>
std::vector<T> cycle_axis(const std::vector<T>& values, int n, std::mt19937& rng) {
  std::vector<T> out;
  while (static_cast<int>(out.size()) < n) {
    std::vector<T> v = values;
    std::shuffle(v.begin(), v.end(), rng);
    out.insert(out.end(), v.begin(), v.end());
  }
  out.resize(n);
  return out;
}

std::vector<SweepCase> sweep_cases() {
  constexpr int kCases = kOptimizedBuild ? 72 : 30;
  std::mt19937 rng(20240611);
  const auto layouts = cycle_axis<KVLayout>({KVLayout::kHND, KVLayout::kNHD}, kCases, rng);
  const auto dtypes = cycle_axis<DType>(
      {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}, kCases,
      rng);
  const auto pages = cycle_axis<int32_t>({1, 16, 32, 128}, kCases, rng);
  const auto dims = cycle_axis<int32_t>({64, 128, 256}, kCases, rng);
  const auto gqas = cycle_axis<GqaShape>(
      {{2, 2, "g1"}, {2, 8, "g4"}, {1, 8, "g8"}, {1, 5, "mqa5"}, {2, 6, "g3"}, {1, 7, "mqa7"}},
      kCases, rng);
  const auto windows = cycle_axis<int32_t>({0, 0, 1, 16, 200}, kCases, rng);
  const auto caps = cycle_axis<float>({0.0f, 1.0f}, kCases, rng);
  const auto mixes = cycle_axis<Mix>({Mix::kDecode, Mix::kPrefill, Mix::kMixed}, kCases, rng);
  const auto qtypes = cycle_axis<bool>({false, true}, kCases, rng);
  const auto tables = cycle_axis<bool>({false, true}, kCases, rng);
  std::vector<SweepCase> cases;
  for (int i = 0; i < kCases; ++i) {
    cases.push_back({i, layouts[i], dtypes[i], pages[i], dims[i], gqas[i], windows[i], caps[i],
                     mixes[i], qtypes[i], tables[i]});
  }
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<SweepCase>& info) {
  const SweepCase& c = info.param;
  const char* mix = c.mix == Mix::kDecode ? "decode" : c.mix == Mix::kPrefill ? "prefill" : "mixed";
  return fmt::format("c{}_{}_{}_ps{}_d{}_{}_win{}_cap{}_{}{}{}", c.index,
                     c.layout == KVLayout::kHND ? "HND" : "NHD", dtype_name(c.dtype), c.page_size,
                     c.head_dim, c.gqa.name, c.window, c.soft_cap > 0 ? 1 : 0, mix,
                     c.bf16_query ? "_qbf16" : "", c.csr ? "_csr" : "");
}

std::vector<TestRequest> requests_for(Mix mix, std::mt19937& rng) {
  auto between = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  switch (mix) {
    case Mix::kDecode: return {{1, 1}, {1, 257}, {1, between(2, 700)}, {1, between(2, 300)}};
    case Mix::kPrefill: {
      const int a = between(1, 40), b = between(250, 290);
      return {{a, a}, {b, b}};
    }
    case Mix::kMixed: {
      const int s = between(100, 600);
      return {{1, between(2, 600)}, {48, s}, {17, 17}, {1, 300}, {3, between(3, 40)}};
    }
  }
  return {};
}

void PrintTo(const SweepCase& c, std::ostream* os) {
  *os << case_name(::testing::TestParamInfo<SweepCase>(c, c.index));
}

class AttentionSweep : public ::testing::TestWithParam<SweepCase> {};

TEST_P(AttentionSweep, EveryIsaPathMatchesTheFloat64Reference) {
  const SweepCase& c = GetParam();
  IsaCapGuard guard;
  std::mt19937 rng(1000 + c.index);
  const std::vector<TestRequest> reqs = requests_for(c.mix, rng);
  int64_t pages_needed = 1;
  for (const auto& r : reqs) pages_needed += (r.seq_len + c.page_size - 1) / c.page_size;
  TestCache cache(c.layout, c.dtype, pages_needed + 3, c.page_size, c.gqa.kv_heads, c.head_dim);
  const TestBatch tb = make_batch(cache, reqs, c.gqa.q_heads, 77 + c.index);

  AttentionOptions opt;
  opt.scale = 2.0f / std::sqrt(static_cast<float>(c.head_dim));
  opt.sliding_window = c.window;
  opt.soft_cap = c.soft_cap;
  RefOptions ro;
  ro.scale = opt.scale;
  ro.window = c.window;
  ro.soft_cap = c.soft_cap;
  ro.bf16_query = c.bf16_query;
  const std::vector<double> ref = reference_attention(cache, tb, ro);

  for (Isa isa : isa_levels()) {
    if (isa == Isa::kScalar && !kOptimizedBuild && c.index % 3 != 0) continue;
    set_isa_cap(isa);
    const std::vector<float> out = run_attention(cache, tb, opt, c.bf16_query, c.csr);
    EXPECT_LE(max_abs_diff(out, ref), kTolerance) << "isa " << isa_name(isa);
  }
}

INSTANTIATE_TEST_SUITE_P(Sampled, AttentionSweep, ::testing::ValuesIn(sweep_cases()), case_name);

// Full coverage of a few axes the sweep samples sparsely: long contexts crossing several
// chunks in every mix, and GQA ratios that do not divide the SIMD width.
TEST(AttentionReference, LongContextsAcrossManyChunksMatchTheReference) {
  TestCache cache(KVLayout::kHND, DType::kBFloat16, 260, 16, 2, 64);
  const TestBatch tb =
      make_batch(cache, {{1, 2100}, {70, 900}, {1, 513}, {2, 256}}, 14, /*seed=*/5);
  AttentionOptions opt{.scale = 0.25f};
  const std::vector<double> ref = reference_attention(cache, tb, {.scale = 0.25});
  EXPECT_LE(max_abs_diff(run_attention(cache, tb, opt), ref), kTolerance);
}

TEST(AttentionReference, SlidingWindowOfOneSeesOnlyTheQueryPosition) {
  TestCache cache(KVLayout::kNHD, DType::kFloat32, 40, 16, 1, 64);
  const TestBatch tb = make_batch(cache, {{30, 300}, {1, 40}}, 4, /*seed=*/6);
  AttentionOptions opt{.scale = 0.5f, .sliding_window = 1};
  const std::vector<float> out = run_attention(cache, tb, opt);
  // Each output row equals the V row at the query's own position.
  for (int32_t b = 0; b < tb.num_seqs(); ++b) {
    const int32_t q_len = tb.query_start_loc[b + 1] - tb.query_start_loc[b];
    for (int32_t t = 0; t < q_len; ++t) {
      const int32_t pos = tb.seq_lens[b] - q_len + t;
      const int64_t slot = int64_t{tb.pages[b][pos / 16]} * 16 + pos % 16;
      for (int32_t qh = 0; qh < 4; ++qh)
        for (int32_t d = 0; d < 64; ++d)
          ASSERT_NEAR(out[((tb.query_start_loc[b] + t) * 4 + qh) * 64 + d],
                      cache.get(slot, 0, false, d), 1e-6);
    }
  }
}

TEST(AttentionReference, RequestsWithoutNewTokensAreSkipped) {
  TestCache cache(KVLayout::kHND, DType::kFloat32, 40, 16, 2, 64);
  const TestBatch tb = make_batch(cache, {{0, 50}, {3, 60}, {0, 0}, {1, 20}}, 4, /*seed=*/8);
  AttentionOptions opt{.scale = 0.125f};
  const std::vector<double> ref = reference_attention(cache, tb, {.scale = 0.125});
  EXPECT_LE(max_abs_diff(run_attention(cache, tb, opt), ref), kTolerance);
}

TEST(AttentionReference, AnEmptyBatchWritesNothing) {
  TestCache cache(KVLayout::kHND, DType::kFloat32, 4, 16, 1, 64);
  const std::vector<int32_t> qsl = {0}, lens, table;
  std::vector<float> out;
  paged_attention(cache.view(), ConstTokenTensor::f32(nullptr, 0, 1, 64),
                  {qsl, lens, PageTableRef::dense(table, 1)}, {.scale = 1.0f}, out);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace pagedkv::testing
