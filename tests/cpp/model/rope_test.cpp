#include "pagedkv/model/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "model/model_test_util.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using testing::random_floats;

// Rule 53's inverse frequencies in double, written independently of rope.cpp.
std::vector<double> reference_inv_freq(int32_t d, double theta, const RopeParams& s) {
  std::vector<double> f(static_cast<size_t>(d / 2));
  for (int32_t j = 0; j < d / 2; ++j) {
    double v = 1.0 / std::pow(theta, 2.0 * j / d);
    if (s.type == RopeParams::Type::kLlama3) {
      const double len = s.original_max_position_embeddings;
      const double wl = 2 * std::numbers::pi / v;
      if (wl > len / s.low_freq_factor) {
        v /= s.factor;
      } else if (wl >= len / s.high_freq_factor) {
        const double sm = (len / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        v = (1 - sm) * v / s.factor + sm * v;
      }
    }
    f[static_cast<size_t>(j)] = v;
  }
  return f;
}

// Rotates in double. With float_angle the angle is formed as rope.h specifies (float32
// position times float32 frequency), otherwise entirely in double.
std::vector<double> reference_rotate(const std::vector<float>& x, int32_t tokens, int32_t heads,
                                     int32_t d, const std::vector<int32_t>& pos,
                                     const std::vector<double>& f, const RopeParams& s,
                                     bool float_angle) {
  std::vector<double> out(x.begin(), x.end());
  const int32_t half = d / 2;
  for (int32_t t = 0; t < tokens; ++t) {
    for (int32_t j = 0; j < half; ++j) {
      double angle;
      if (float_angle) {
        float p = static_cast<float>(pos[t]);
        if (s.type == RopeParams::Type::kLinear) p /= static_cast<float>(s.factor);
        angle = p * static_cast<float>(f[size_t(j)]);
      } else {
        const double p = s.type == RopeParams::Type::kLinear ? pos[t] / s.factor : pos[t];
        angle = p * f[size_t(j)];
      }
      for (int32_t h = 0; h < heads; ++h) {
        const size_t base = (size_t(t) * heads + h) * d;
        const double a = x[base + j], b = x[base + j + half];
        out[base + j] = a * std::cos(angle) - b * std::sin(angle);
        out[base + j + half] = b * std::cos(angle) + a * std::sin(angle);
      }
    }
  }
  return out;
}

RopeParams linear(double factor) { return {.type = RopeParams::Type::kLinear, .factor = factor}; }
RopeParams llama3() {
  return {.type = RopeParams::Type::kLlama3,
          .factor = 8,
          .low_freq_factor = 1,
          .high_freq_factor = 4,
          .original_max_position_embeddings = 8192};
}

struct Named {
  const char* name;
  RopeParams params;
};
const Named kScalings[] = {{"none", RopeParams{}}, {"linear4", linear(4)}, {"llama3", llama3()}};

TEST(Rope, InvFreqIsTheDoubleFormulaRoundedOnce) {
  for (const Named& s : kScalings) {
    for (double theta : {10000.0, 500000.0}) {
      RotaryEmbedding rope(128, theta, s.params);
      const auto ref = reference_inv_freq(128, theta, s.params);
      ASSERT_EQ(rope.inv_freq().size(), ref.size());
      for (size_t j = 0; j < ref.size(); ++j)
        EXPECT_EQ(rope.inv_freq()[j], static_cast<float>(ref[j])) << s.name << " j " << j;
    }
  }
}

TEST(Rope, Llama3KeepsHighFrequenciesDividesLowOnesAndBlendsTheBand) {
  RotaryEmbedding plain(128, 500000.0, RopeParams{});
  RotaryEmbedding scaled(128, 500000.0, llama3());
  int kept = 0, divided = 0, blended = 0;
  for (size_t j = 0; j < 64; ++j) {
    const double f = plain.inv_freq()[j], g = scaled.inv_freq()[j];
    const double wl = 2 * std::numbers::pi / f;
    if (wl < 8192.0 / 4) {
      EXPECT_EQ(g, f) << j;
      ++kept;
    } else if (wl > 8192.0) {
      EXPECT_NEAR(g, f / 8, 1e-7 * f) << j;
      ++divided;
    } else {
      EXPECT_LT(g, f) << j;
      EXPECT_GT(g, f / 8) << j;
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(Rope, MatchesFloat64ReferenceForEveryScalingIncludingLongPositions) {
  const int32_t tokens = 9, heads = 3, d = 64;
  // Positions beyond original_max_position_embeddings (8192) included.
  const std::vector<int32_t> pos = {0, 1, 7, 100, 4095, 8191, 8192, 20000, 131071};
  for (const Named& s : kScalings) {
    RotaryEmbedding rope(d, 10000.0, s.params);
    const auto x = random_floats(int64_t{tokens} * heads * d, 5);
    auto y = x;
    rope.apply(y.data(), tokens, heads, pos.data());
    const auto f = reference_inv_freq(d, 10000.0, s.params);
    const auto exact_angle = reference_rotate(x, tokens, heads, d, pos, f, s.params, true);
    const auto double_angle = reference_rotate(x, tokens, heads, d, pos, f, s.params, false);
    for (size_t i = 0; i < y.size(); ++i) {
      const int32_t p = pos[i / (size_t(heads) * d)];
      // Same float32 angle: only the float32 cos/sin and products differ.
      ASSERT_NEAR(y[i], exact_angle[i], 2e-6) << s.name << " element " << i;
      // Angle formed in double: float32 rounding of p * f grows with p (|a| * 2^-23).
      ASSERT_NEAR(y[i], double_angle[i], 2e-6 + 3.0 * p * 1.2e-7) << s.name << " element " << i;
    }
  }
}

TEST(Rope, PositionZeroIsIdentityAndRotationKeepsPairNorms) {
  RotaryEmbedding rope(16, 10000.0, RopeParams{});
  const auto x = random_floats(2 * 16, 8);
  auto y = x;
  const std::vector<int32_t> pos = {0, 12345};
  rope.apply(y.data(), 2, 1, pos.data());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(y[i], x[i]);
  for (int j = 0; j < 8; ++j) {
    const double before = std::hypot(x[16 + j], x[16 + j + 8]);
    const double after = std::hypot(y[16 + j], y[16 + j + 8]);
    EXPECT_NEAR(after, before, 1e-6);
  }
}

TEST(Rope, TokenResultDoesNotDependOnTheOtherTokens) {
  RotaryEmbedding rope(64, 10000.0, llama3());
  const auto x = random_floats(5 * 2 * 64, 9);
  const std::vector<int32_t> pos = {3, 9000, 17, 0, 70000};
  auto batch = x;
  rope.apply(batch.data(), 5, 2, pos.data());
  for (int32_t t = 0; t < 5; ++t) {
    std::vector<float> one(x.begin() + t * 128, x.begin() + (t + 1) * 128);
    rope.apply(one.data(), 1, 2, &pos[t]);
    EXPECT_EQ(0, std::memcmp(one.data(), batch.data() + t * 128, 128 * sizeof(float))) << t;
  }
}

TEST(RopeErrors, RejectsBadParametersAndNegativePositionsChangingNothing) {
  EXPECT_THROW(RotaryEmbedding(63, 10000.0, RopeParams{}), InvalidArgument);
  EXPECT_THROW(RotaryEmbedding(0, 10000.0, RopeParams{}), InvalidArgument);
  EXPECT_THROW(RotaryEmbedding(64, 0.0, RopeParams{}), InvalidArgument);
  EXPECT_THROW(RotaryEmbedding(64, 1e4, linear(0)), InvalidArgument);
  RopeParams bad = llama3();
  bad.original_max_position_embeddings = 0;
  EXPECT_THROW(RotaryEmbedding(64, 1e4, bad), InvalidArgument);
  bad = llama3();
  bad.high_freq_factor = bad.low_freq_factor;
  EXPECT_THROW(RotaryEmbedding(64, 1e4, bad), InvalidArgument);

  RotaryEmbedding rope(4, 10000.0, RopeParams{});
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  const auto before = x;
  const std::vector<int32_t> pos = {5, -1};
  EXPECT_THROW(rope.apply(x.data(), 2, 1, pos.data()), OutOfRange);
  EXPECT_EQ(x, before);
}

}  // namespace
}  // namespace pagedkv
