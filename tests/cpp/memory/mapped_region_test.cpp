#include "pagedkv/memory/mapped_region.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

size_t os_page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// Whether [p, p + n) is mapped (mincore fails with ENOMEM on unmapped addresses).
bool is_mapped(const void* p, size_t n) {
  std::vector<unsigned char> pages((n + os_page() - 1) / os_page());
  const int rc = mincore(const_cast<void*>(p), n, pages.data());
  EXPECT_TRUE(rc == 0 || errno == ENOMEM) << std::strerror(errno);
  return rc == 0;
}

// OS pages of [p, p + n) that are resident (touched).
size_t resident_pages(const void* p, size_t n) {
  std::vector<unsigned char> pages((n + os_page() - 1) / os_page());
  EXPECT_EQ(mincore(const_cast<void*>(p), n, pages.data()), 0) << std::strerror(errno);
  size_t count = 0;
  for (unsigned char c : pages) count += c & 1;
  return count;
}

TEST(MappedRegion, SmallRegionsArePageAlignedZeroedAndWritable) {
  MappedRegion r(10000);
  ASSERT_NE(r.data(), nullptr);
  EXPECT_EQ(r.size(), 10000u);
  EXPECT_FALSE(r.huge_pages());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data()) % os_page(), 0u);
  auto* b = static_cast<unsigned char*>(r.data());
  for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(b[i], 0) << i;
  std::memset(b, 0xab, r.size());
  EXPECT_EQ(b[9999], 0xab);
}

TEST(MappedRegion, LargeRegionsAreHugePageAlignedAndMappedLazily) {
  const size_t bytes = (size_t{64} << 20) + 12345;  // 64 MiB and a bit
  MappedRegion r(bytes);
  EXPECT_TRUE(r.huge_pages());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data()) % MappedRegion::kHugePageBytes, 0u);
  EXPECT_TRUE(is_mapped(r.data(), bytes));
  EXPECT_EQ(resident_pages(r.data(), bytes), 0u);  // nothing touched yet
  auto* b = static_cast<unsigned char*>(r.data());
  EXPECT_EQ(b[bytes - 1], 0);
  b[bytes - 1] = 7;  // touches the tail only
  EXPECT_LT(resident_pages(r.data(), bytes) * os_page(), size_t{8} << 20);
  EXPECT_EQ(b[bytes - 1], 7);
}

TEST(MappedRegion, TheThresholdOfHugePagesIsFourMebibytes) {
  EXPECT_FALSE(MappedRegion(MappedRegion::kHugePageMinBytes - 1).huge_pages());
  MappedRegion at(MappedRegion::kHugePageMinBytes);
  EXPECT_TRUE(at.huge_pages());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(at.data()) % MappedRegion::kHugePageBytes, 0u);
}

TEST(MappedRegion, MovesTransferOwnershipAndReleaseTheOldMappingOnce) {
  MappedRegion a(size_t{8} << 20);
  void* p = a.data();
  static_cast<char*>(p)[0] = 1;
  MappedRegion b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(static_cast<char*>(b.data())[0], 1);
  MappedRegion c(4096);
  void* q = c.data();
  c = std::move(b);  // releases c's own page
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), size_t{8} << 20);
  EXPECT_FALSE(is_mapped(q, 4096));
  EXPECT_TRUE(is_mapped(p, c.size()));
  { MappedRegion gone = std::move(c); }
  EXPECT_FALSE(is_mapped(p, 4096));
  MappedRegion empty;
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.size(), 0u);
}

TEST(MappedRegion, ZeroSizeIsInvalidAndAnImpossibleSizeIsACapacityErrorNamingIt) {
  EXPECT_THROW(MappedRegion(0), InvalidArgument);
  const size_t huge = size_t{1} << 62;
  try {
    MappedRegion r(huge);
    FAIL() << "mapped 2^62 bytes";
  } catch (const CapacityError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(huge)), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pagedkv
