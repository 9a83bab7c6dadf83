// The sampler's randomness: Philox4x32-10 against Random123's known answers, and the
// per-request keys and uniforms built on it (sampling_rng.h).
#include "pagedkv/engine/sampling_rng.h"

#include <gtest/gtest.h>

#include <set>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

TEST(Philox, MatchesRandom123KnownAnswers) {
  using C = std::array<uint32_t, 4>;
  using K = std::array<uint32_t, 2>;
  EXPECT_EQ(philox4x32_10(C{0, 0, 0, 0}, K{0, 0}),
            (C{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10(C{~0u, ~0u, ~0u, ~0u}, K{~0u, ~0u}),
            (C{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(
      philox4x32_10(C{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, K{0xa4093822, 0x299f31d0}),
      (C{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(RequestSamplingKey, SeedAloneDeterminesTheKey) {
  EXPECT_EQ(request_sampling_key("a", 42), request_sampling_key("b", 42));
  EXPECT_NE(request_sampling_key("a", 42), request_sampling_key("a", 43));
  EXPECT_NE(request_sampling_key("a", 42), request_sampling_key("a", std::nullopt));
}

TEST(RequestSamplingKey, UnseededKeyIsAStableHashOfTheId) {
  EXPECT_EQ(request_sampling_key("req-1", std::nullopt),
            request_sampling_key(std::string("req-1"), std::nullopt));
  EXPECT_NE(request_sampling_key("req-1", std::nullopt),
            request_sampling_key("req-2", std::nullopt));
}

TEST(SamplingUniform, IsInUnitIntervalAndDiffersPerIndex) {
  std::set<double> seen;
  double sum = 0.0;
  constexpr int kN = 10000;
  for (int i = 0; i < kN; ++i) {
    const double u = sampling_uniform(0x1234, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    seen.insert(u);
    sum += u;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kN));
  EXPECT_NEAR(sum / kN, 0.5, 0.01);  // mean of U(0,1); sd of the mean is 0.003
  EXPECT_EQ(sampling_uniform(7, 3), sampling_uniform(7, 3));
  EXPECT_NE(sampling_uniform(7, 3), sampling_uniform(8, 3));
}

TEST(SamplingUniform, NegativeIndexIsRejected) {
  EXPECT_THROW(sampling_uniform(1, -1), InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
