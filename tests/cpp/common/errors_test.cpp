#include <gtest/gtest.h>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

TEST(Errors, CheckMacrosThrowTypedErrorsWithTheMessage) {
  const int n = -3;
  try {
    PAGEDKV_CHECK_ARG(n >= 0, "num_pages must be >= 0, got {}", n);
    FAIL() << "no throw";
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "num_pages must be >= 0, got -3");
  }
  EXPECT_THROW(PAGEDKV_CHECK_RANGE(false, "row {} out of range [0, {})", 5, 4), OutOfRange);
  EXPECT_THROW(PAGEDKV_CHECK_STATE(false, "x"), StateError);
  EXPECT_THROW(PAGEDKV_CHECK_CAPACITY(false, "x"), CapacityError);
  EXPECT_THROW(PAGEDKV_CHECK_FORMAT(false, "x"), FormatError);
  EXPECT_THROW(PAGEDKV_ASSERT(false, "x"), InternalError);
  EXPECT_NO_THROW(PAGEDKV_CHECK_ARG(true, "never"));
}

TEST(CpuInfo, CapLimitsTheActiveIsa) {
  const Isa old = isa_cap();
  set_isa_cap(Isa::kScalar);
  EXPECT_EQ(active_isa(), Isa::kScalar);
  set_isa_cap(Isa::kAvx512Bf16);
  EXPECT_EQ(active_isa(), detected_isa());
  EXPECT_EQ(parse_isa("avx2"), Isa::kAvx2);
  EXPECT_THROW(parse_isa("sse9"), InvalidArgument);
  set_isa_cap(old);
}

}  // namespace
}  // namespace pagedkv
