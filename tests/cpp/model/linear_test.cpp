#include "pagedkv/model/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "model/model_test_util.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using testing::IsaCap;
using testing::model_isa_levels;
using testing::OmpThreads;
using testing::random_floats;

struct Shape {
  int32_t rows, in, out;
};

// Checks y against a float64 reference, with a bound scaled by sum_k |x_k w_k|.
void expect_close_to_reference(const std::vector<float>& x, const std::vector<float>& w,
                               const float* bias, const Shape& s, const std::vector<float>& y) {
  for (int32_t r = 0; r < s.rows; ++r) {
    for (int32_t o = 0; o < s.out; ++o) {
      double ref = bias != nullptr ? bias[o] : 0.0, mag = 0.0;
      for (int32_t k = 0; k < s.in; ++k) {
        const double t = double{x[size_t(r) * s.in + k]} * w[size_t(o) * s.in + k];
        ref += t;
        mag += std::abs(t);
      }
      const double got = y[size_t(r) * s.out + o];
      ASSERT_NEAR(got, ref, 1e-5 * mag + 1e-6) << "row " << r << " col " << o;
    }
  }
}

class LinearModes : public ::testing::TestWithParam<MatmulMode> {};

TEST_P(LinearModes, MatchesFloat64ReferenceWithAndWithoutBias) {
  const std::vector<Shape> shapes = {
      {1, 1, 1}, {1, 576, 192}, {7, 33, 65}, {70, 131, 17}, {64, 576, 100}};
  for (Isa isa : model_isa_levels()) {
    IsaCap cap(isa);
    for (const Shape& s : shapes) {
      const auto x = random_floats(int64_t{s.rows} * s.in, 1);
      const auto w = random_floats(int64_t{s.out} * s.in, 2);
      const auto b = random_floats(s.out, 3);
      for (const float* bias : {static_cast<const float*>(nullptr), b.data()}) {
        SCOPED_TRACE(::testing::Message() << isa_name(isa) << " rows " << s.rows << " in " << s.in
                                          << " out " << s.out << " bias " << !!bias);
        Linear lin(w.data(), bias, s.out, s.in);
        std::vector<float> y(size_t(s.rows) * s.out, NAN);
        lin.forward(x.data(), s.rows, y.data(), GetParam());
        expect_close_to_reference(x, w, bias, s, y);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Both, LinearModes,
                         ::testing::Values(MatmulMode::kFast, MatmulMode::kDeterministic),
                         [](const auto& info) {
                           return info.param == MatmulMode::kFast ? "Fast" : "Deterministic";
                         });

// Rule 49: in the deterministic mode a row's output does not depend on the other rows of the
// call nor on the thread count: row r of a batch of `rows` is bitwise equal to row r alone.
TEST(LinearDeterministic, EachRowOfABatchIsBitwiseEqualToThatRowAlone) {
  const std::vector<std::pair<int32_t, int32_t>> in_out = {{37, 29}, {131, 67}, {576, 70}};
  for (Isa isa : model_isa_levels()) {
    IsaCap cap(isa);
    for (auto [in, out] : in_out) {
      const auto x = random_floats(int64_t{70} * in, 11);
      const auto w = random_floats(int64_t{out} * in, 12);
      const auto b = random_floats(out, 13);
      for (const float* bias : {static_cast<const float*>(nullptr), b.data()}) {
        Linear lin(w.data(), bias, out, in);
        std::vector<float> alone(size_t(70) * out);
        {
          OmpThreads one(1);
          for (int32_t r = 0; r < 70; ++r)
            lin.forward(x.data() + size_t(r) * in, 1, alone.data() + size_t(r) * out,
                        MatmulMode::kDeterministic);
        }
        for (int threads : {1, 2}) {
          OmpThreads t(threads);
          for (int32_t rows = 1; rows <= 70; ++rows) {
            std::vector<float> y(size_t(rows) * out);
            lin.forward(x.data(), rows, y.data(), MatmulMode::kDeterministic);
            ASSERT_EQ(0, std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)))
                << isa_name(isa) << " in " << in << " out " << out << " bias " << !!bias << " rows "
                << rows << " threads " << threads;
          }
        }
      }
    }
  }
}

// A row's result does not depend on which rows surround it: the same row placed at another
// index of a different batch (another position in the register tile) gives the same bits.
TEST(LinearDeterministic, RowResultDoesNotDependOnItsPositionInTheBatch) {
  const int32_t in = 577, out = 1031;
  for (Isa isa : model_isa_levels()) {
    IsaCap cap(isa);
    const auto w = random_floats(int64_t{out} * in, 21);
    const auto probe = random_floats(in, 22);
    Linear lin(w.data(), nullptr, out, in);
    std::vector<float> alone(out);
    lin.forward(probe.data(), 1, alone.data(), MatmulMode::kDeterministic);
    for (int32_t at : {0, 1, 2, 3, 5, 50}) {
      auto x = random_floats(int64_t{53} * in, 23 + at);
      std::copy(probe.begin(), probe.end(), x.begin() + int64_t{at} * in);
      std::vector<float> y(size_t(53) * out);
      lin.forward(x.data(), 53, y.data(), MatmulMode::kDeterministic);
      ASSERT_EQ(0, std::memcmp(y.data() + size_t(at) * out, alone.data(), out * sizeof(float)))
          << isa_name(isa) << " at " << at;
    }
  }
}

TEST(LinearErrors, RejectsBadSizesAndNullPointersAndWritesNothing) {
  std::vector<float> w(6, 1.0f), x(3, 1.0f), y(2, -7.0f);
  EXPECT_THROW(Linear(nullptr, nullptr, 2, 3), InvalidArgument);
  EXPECT_THROW(Linear(w.data(), nullptr, 0, 3), InvalidArgument);
  EXPECT_THROW(Linear(w.data(), nullptr, 2, 0), InvalidArgument);
  Linear lin(w.data(), nullptr, 2, 3);
  EXPECT_EQ(lin.in_features(), 3);
  EXPECT_EQ(lin.out_features(), 2);
  EXPECT_THROW(lin.forward(x.data(), -1, y.data(), MatmulMode::kFast), InvalidArgument);
  EXPECT_THROW(lin.forward(nullptr, 1, y.data(), MatmulMode::kDeterministic), InvalidArgument);
  EXPECT_THROW(lin.forward(x.data(), 1, nullptr, MatmulMode::kDeterministic), InvalidArgument);
  EXPECT_EQ(y, std::vector<float>(2, -7.0f));
  lin.forward(x.data(), 0, y.data(), MatmulMode::kDeterministic);  // rows == 0: no-op
  EXPECT_EQ(y, std::vector<float>(2, -7.0f));
}

}  // namespace
}  // namespace pagedkv
