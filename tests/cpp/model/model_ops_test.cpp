#include "pagedkv/model/model_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/model_test_util.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using testing::random_floats;

TEST(RmsNorm, MatchesFloat64ReferenceWithWeightUsedAsIs) {
  for (int32_t n : {1, 7, 8, 9, 576, 1001}) {
    const int32_t rows = 5;
    const auto x = random_floats(int64_t{rows} * n, 1, -3.0f, 3.0f);
    const auto w = random_floats(n, 2, 0.5f, 1.5f);
    std::vector<float> y(x.size());
    rms_norm(x.data(), w.data(), rows, n, 1e-5f, y.data());
    for (int32_t r = 0; r < rows; ++r) {
      double ms = 0;
      for (int32_t k = 0; k < n; ++k) ms += double{x[size_t(r) * n + k]} * x[size_t(r) * n + k];
      const double inv = 1.0 / std::sqrt(ms / n + 1e-5);
      for (int32_t k = 0; k < n; ++k) {
        const double ref = x[size_t(r) * n + k] * inv * w[size_t(k)];
        ASSERT_NEAR(y[size_t(r) * n + k], ref, 1e-5 * std::abs(ref) + 1e-6) << n << " " << r;
      }
    }
  }
}

TEST(RmsNorm, EpsDominatesForAZeroRowAndInPlaceGivesTheSameBits) {
  const int32_t n = 37;
  std::vector<float> zero(n, 0.0f), w(n, 2.0f), y(n, 1.0f);
  rms_norm(zero.data(), w.data(), 1, n, 1e-6f, y.data());
  for (float v : y) EXPECT_EQ(v, 0.0f);
  auto x = random_floats(3 * n, 4);
  std::vector<float> out(x.size());
  rms_norm(x.data(), w.data(), 3, n, 1e-6f, out.data());
  rms_norm(x.data(), w.data(), 3, n, 1e-6f, x.data());
  EXPECT_EQ(0, std::memcmp(out.data(), x.data(), x.size() * sizeof(float)));
}

TEST(RmsNorm, RowResultDoesNotDependOnTheOtherRows) {
  const int32_t n = 577;
  const auto x = random_floats(9 * n, 6);
  const auto w = random_floats(n, 7);
  std::vector<float> batch(x.size()), one(n);
  rms_norm(x.data(), w.data(), 9, n, 1e-5f, batch.data());
  for (int32_t r = 0; r < 9; ++r) {
    rms_norm(x.data() + size_t(r) * n, w.data(), 1, n, 1e-5f, one.data());
    EXPECT_EQ(0, std::memcmp(one.data(), batch.data() + size_t(r) * n, n * sizeof(float))) << r;
  }
}

TEST(SiluMul, MatchesFloat64ReferenceIncludingLargeMagnitudes) {
  auto g = random_floats(1000, 8, -10.0f, 10.0f);
  g.insert(g.end(), {-100.0f, 100.0f, 0.0f, -0.0f});
  const auto u = random_floats(static_cast<int64_t>(g.size()), 9, -2.0f, 2.0f);
  std::vector<float> y(g.size());
  silu_mul(g.data(), u.data(), static_cast<int64_t>(g.size()), y.data());
  for (size_t i = 0; i < g.size(); ++i) {
    const double ref = double{g[i]} / (1.0 + std::exp(-double{g[i]})) * u[i];
    ASSERT_NEAR(y[i], ref, 1e-6 * std::abs(ref) + 1e-7) << g[i];
  }
}

TEST(AddInplace, AddsElementwise) {
  std::vector<float> x = {1, 2, 3}, y = {0.5f, -2, 4};
  add_inplace(x.data(), y.data(), 3);
  EXPECT_EQ(x, (std::vector<float>{1.5f, 0, 7}));
  EXPECT_THROW(add_inplace(x.data(), y.data(), -1), InvalidArgument);
}

TEST(EmbeddingLookup, CopiesTheRowOfEachId) {
  const int32_t vocab = 11, hidden = 5;
  const auto table = random_floats(vocab * hidden, 10);
  const std::vector<int32_t> ids = {3, 0, 10, 3};
  std::vector<float> out(ids.size() * hidden);
  embedding_lookup(table.data(), vocab, hidden, ids, out.data());
  for (size_t i = 0; i < ids.size(); ++i)
    for (int32_t k = 0; k < hidden; ++k)
      EXPECT_EQ(out[i * hidden + k], table[size_t(ids[i]) * hidden + k]);
}

TEST(EmbeddingLookup, OutOfRangeIdNamesTheIdAndVocabAndWritesNothing) {
  const int32_t vocab = 11, hidden = 2;
  const auto table = random_floats(vocab * hidden, 11);
  for (int32_t bad : {11, -1}) {
    const std::vector<int32_t> ids = {1, bad};
    std::vector<float> out(4, -9.0f);
    try {
      embedding_lookup(table.data(), vocab, hidden, ids, out.data());
      FAIL() << "no throw for " << bad;
    } catch (const OutOfRange& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("token id " + std::to_string(bad)), std::string::npos) << msg;
      EXPECT_NE(msg.find("11)"), std::string::npos) << msg;
    }
    EXPECT_EQ(out, std::vector<float>(4, -9.0f));
  }
}

}  // namespace
}  // namespace pagedkv
