#include "pagedkv/kv_cache/token_tensor.h"

#include <gtest/gtest.h>

#include <string>
#include <type_traits>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

static_assert(std::is_convertible_v<TokenTensor, ConstTokenTensor>);
static_assert(!std::is_convertible_v<ConstTokenTensor, TokenTensor>);
static_assert(std::is_same_v<decltype(ConstTokenTensor{}.data), const void*>);
static_assert(std::is_same_v<decltype(TokenTensor{}.data), void*>);

TEST(TokenTensor, FactoriesSetTheDtypeAndAMutableTensorReadsAsConst) {
  std::vector<float> f(2 * 3 * 4);
  std::vector<uint16_t> b(2 * 3 * 4);
  const TokenTensor t = TokenTensor::f32(f.data(), 2, 3, 4);
  EXPECT_EQ(t.dtype, DType::kFloat32);
  EXPECT_EQ(t.elements(), 24);
  EXPECT_EQ(t.row_bytes(), 3u * 4u * 4u);
  const ConstTokenTensor c = t;
  EXPECT_EQ(c.data, f.data());
  EXPECT_EQ(c.dtype, t.dtype);
  EXPECT_EQ(c.rows, 2);
  EXPECT_EQ(c.heads, 3);
  EXPECT_EQ(c.dim, 4);
  const ConstTokenTensor q = ConstTokenTensor::bf16(b.data(), 2, 3, 4);
  EXPECT_EQ(q.dtype, DType::kBFloat16);
  EXPECT_EQ(q.row_bytes(), 3u * 4u * 2u);
}

TEST(TokenTensor, RowsSliceStartsAtTheFirstRowsBytes) {
  std::vector<uint16_t> b(5 * 2 * 8);
  const ConstTokenTensor t = ConstTokenTensor::bf16(b.data(), 5, 2, 8);
  const ConstTokenTensor s = t.rows_slice(3, 2);
  EXPECT_EQ(s.data, b.data() + 3 * 2 * 8);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.heads, 2);
  EXPECT_EQ(s.dim, 8);
  EXPECT_EQ(s.dtype, DType::kBFloat16);
}

std::string error_of(const ConstTokenTensor& t) {
  try {
    t.check("key");
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

TEST(TokenTensor, CheckNamesTheTensorTheFieldAndTheValue) {
  float x[8] = {};
  const ConstTokenTensor ok = ConstTokenTensor::f32(x, 1, 2, 4);
  EXPECT_EQ(error_of(ok), "");
  EXPECT_EQ(error_of(ConstTokenTensor::f32(nullptr, 0, 2, 4)), "");  // no rows, no data needed
  ConstTokenTensor t = ok;
  t.rows = -1;
  EXPECT_NE(error_of(t).find("key.rows must be >= 0, got -1"), std::string::npos);
  t = ok;
  t.heads = 0;
  EXPECT_NE(error_of(t).find("key.heads must be > 0, got 0"), std::string::npos);
  t = ok;
  t.dim = -4;
  EXPECT_NE(error_of(t).find("key.dim must be > 0, got -4"), std::string::npos);
  t = ok;
  t.data = nullptr;
  EXPECT_NE(error_of(t).find("key has 1 rows but its data is null"), std::string::npos);
  t = ok;
  t.dtype = DType{11};
  EXPECT_NE(error_of(t).find("key.dtype has unknown code 11"), std::string::npos);
  TokenTensor m{x, DType::kFloat32, 1, 0, 4};
  EXPECT_THROW(m.check("cache"), InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
