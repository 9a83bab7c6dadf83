#include "pagedkv/common/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

// Independent float64 decoders written from the format definitions.
double ref_fp16(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double mag;
  if (e == 0x1f) {
    mag = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else if (e == 0) {
    mag = std::ldexp(m, -24);
  } else {
    mag = std::ldexp(1024 + m, e - 25);
  }
  return s ? -mag : mag;
}

double ref_fp8(uint8_t v) {
  const int s = v >> 7, e = (v >> 3) & 0xf, m = v & 7;
  double mag;
  if (e == 0xf && m == 7) {
    mag = std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    mag = std::ldexp(m, -9);
  } else {
    mag = std::ldexp(8 + m, e - 10);
  }
  return s ? -mag : mag;
}

TEST(DType, SizesNamesAndParseAgree) {
  for (DType t :
       {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}) {
    EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  }
  EXPECT_EQ(dtype_size(DType::kFloat32), 4u);
  EXPECT_EQ(dtype_size(DType::kFloat16), 2u);
  EXPECT_EQ(dtype_size(DType::kBFloat16), 2u);
  EXPECT_EQ(dtype_size(DType::kInt8), 1u);
  EXPECT_EQ(dtype_size(DType::kFp8E4M3), 1u);
  EXPECT_EQ(parse_dtype("bf16"), DType::kBFloat16);
  EXPECT_EQ(parse_dtype("fp8"), DType::kFp8E4M3);
  EXPECT_TRUE(dtype_is_quantized(DType::kInt8));
  EXPECT_FALSE(dtype_is_quantized(DType::kBFloat16));
  EXPECT_THROW(parse_dtype("float64"), InvalidArgument);
  EXPECT_THROW(dtype_size(static_cast<DType>(42)), InvalidArgument);
}

TEST(DType, EveryFp16CodeDecodesExactlyAndRoundTrips) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const auto h = static_cast<uint16_t>(c);
    const float f = fp16_to_float(h);
    const double want = ref_fp16(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << c;
      const uint16_t back = float_to_fp16(f);
      ASSERT_EQ(back & 0x7c00, 0x7c00) << c;
      ASSERT_NE(back & 0x3ff, 0) << c;
      ASSERT_EQ(back & 0x8000, h & 0x8000) << c;
      ASSERT_EQ(back | 0x200, h | 0x200) << c;  // payload kept; quiet bit set
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << c;
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << c;
    ASSERT_EQ(float_to_fp16(f), h) << c;
  }
}

TEST(DType, Fp16RoundsMidpointsToEvenAndNeighboursToNearest) {
  // Every pair of adjacent finite positive codes: the midpoint is exact in float.
  for (uint16_t c = 0; c < 0x7bff; ++c) {
    const double lo = ref_fp16(c), hi = ref_fp16(static_cast<uint16_t>(c + 1));
    const auto mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    const uint16_t even = (c & 1) ? static_cast<uint16_t>(c + 1) : c;
    ASSERT_EQ(float_to_fp16(mid), even) << c;
    ASSERT_EQ(float_to_fp16(-mid), even | 0x8000) << c;
    ASSERT_EQ(float_to_fp16(std::nextafter(mid, 0.0f)), c) << c;
    ASSERT_EQ(float_to_fp16(std::nextafter(mid, 1e9f)), c + 1) << c;
  }
}

TEST(DType, Fp16OverflowUnderflowAndSpecials) {
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_fp16(1e30f), 0x7c00);
  EXPECT_EQ(float_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even zero
  EXPECT_EQ(float_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp -> even 2
  EXPECT_EQ(float_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_fp16(-std::numeric_limits<float>::denorm_min()), 0x8000);
  EXPECT_EQ(float_to_fp16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(std::nanf("")))));
}

TEST(DType, Fp16EncodesRandomFloatsToTheNearestCode) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-28.0f, 17.0f);
  for (int i = 0; i < 200000; ++i) {
    const float x = std::exp2(mag(rng)) * ((i & 1) ? -1.0f : 1.0f);
    const uint16_t c = float_to_fp16(x);
    const double ax = std::fabs(static_cast<double>(x));
    const auto mc = static_cast<uint16_t>(c & 0x7fff);
    if (ax >= 65520.0) {
      ASSERT_EQ(mc, 0x7c00) << x;
      continue;
    }
    ASSERT_LT(mc, 0x7c00) << x;
    const double err = std::fabs(ax - ref_fp16(mc));
    if (mc > 0) {
      ASSERT_LE(err, std::fabs(ax - ref_fp16(static_cast<uint16_t>(mc - 1)))) << x;
    }
    if (mc < 0x7bff) {
      ASSERT_LE(err, std::fabs(ax - ref_fp16(static_cast<uint16_t>(mc + 1)))) << x;
    }
  }
}

TEST(DType, EveryBf16CodeRoundTrips) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const auto b = static_cast<uint16_t>(c);
    const float f = bf16_to_float(b);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f)))) << c;
      continue;
    }
    ASSERT_EQ(float_to_bf16(f), b) << c;
  }
}

TEST(DType, EveryFp8CodeDecodesExactlyAndRoundTrips) {
  int nans = 0;
  for (int c = 0; c < 256; ++c) {
    const auto v = static_cast<uint8_t>(c);
    const float f = fp8_e4m3_to_float(v);
    const double want = ref_fp8(v);
    if (std::isnan(want)) {
      ++nans;
      ASSERT_TRUE(std::isnan(f)) << c;
      ASSERT_EQ(float_to_fp8_e4m3(f), v) << c;  // 0x7f -> 0x7f, 0xff -> 0xff
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << c;
    ASSERT_EQ(std::signbit(f), (v & 0x80) != 0) << c;
    ASSERT_EQ(float_to_fp8_e4m3(f), v) << c;
  }
  EXPECT_EQ(nans, 2);
  EXPECT_EQ(fp8_e4m3_to_float(0x7e), kFp8E4M3Max);
}

TEST(DType, Fp8RoundsMidpointsToEvenAndNeighboursToNearest) {
  for (int c = 0; c < 0x7e; ++c) {
    const double lo = ref_fp8(static_cast<uint8_t>(c)), hi = ref_fp8(static_cast<uint8_t>(c + 1));
    const auto mid = static_cast<float>((lo + hi) / 2);
    const int even = (c & 1) ? c + 1 : c;
    ASSERT_EQ(float_to_fp8_e4m3(mid), even) << c;
    ASSERT_EQ(float_to_fp8_e4m3(-mid), even | 0x80) << c;
    ASSERT_EQ(float_to_fp8_e4m3(std::nextafter(mid, 0.0f)), c) << c;
    ASSERT_EQ(float_to_fp8_e4m3(std::nextafter(mid, 1e9f)), c + 1) << c;
  }
}

TEST(DType, Fp8SaturatesAtPlusMinus448AndKeepsNaN) {
  EXPECT_EQ(float_to_fp8_e4m3(448.0f), 0x7e);
  EXPECT_EQ(float_to_fp8_e4m3(std::nextafter(448.0f, 0.0f)), 0x7e);
  EXPECT_EQ(float_to_fp8_e4m3(464.0f), 0x7e);
  EXPECT_EQ(float_to_fp8_e4m3(1e6f), 0x7e);
  EXPECT_EQ(float_to_fp8_e4m3(-1e6f), 0xfe);
  EXPECT_EQ(float_to_fp8_e4m3(std::numeric_limits<float>::infinity()), 0x7e);
  EXPECT_EQ(float_to_fp8_e4m3(-std::numeric_limits<float>::infinity()), 0xfe);
  EXPECT_EQ(float_to_fp8_e4m3(std::nanf("")), 0x7f);
  EXPECT_EQ(float_to_fp8_e4m3(-std::nanf("")), 0xff);
  EXPECT_EQ(float_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // tie to even zero
  EXPECT_EQ(float_to_fp8_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_EQ(float_to_fp8_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_fp8_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(DType, Fp8EncodesRandomFloatsToTheNearestCode) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> mag(-12.0f, 9.5f);
  for (int i = 0; i < 100000; ++i) {
    const float x = std::exp2(mag(rng)) * ((i & 1) ? -1.0f : 1.0f);
    const uint8_t c = float_to_fp8_e4m3(x);
    const double ax = std::fabs(static_cast<double>(x));
    const int mc = c & 0x7f;
    if (ax >= 448.0) {
      ASSERT_EQ(mc, 0x7e) << x;
      continue;
    }
    const double err = std::fabs(ax - ref_fp8(static_cast<uint8_t>(mc)));
    if (mc > 0) {
      ASSERT_LE(err, std::fabs(ax - ref_fp8(static_cast<uint8_t>(mc - 1)))) << x;
    }
    if (mc < 0x7e) {
      ASSERT_LE(err, std::fabs(ax - ref_fp8(static_cast<uint8_t>(mc + 1)))) << x;
    }
  }
}

}  // namespace
}  // namespace pagedkv
