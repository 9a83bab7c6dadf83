// find_computed_pages: the lookup of get_computed_pages without the statistics (rule 46).
#include <gtest/gtest.h>

#include "manager/manager_test_util.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv {
namespace {

using manager_testing::admit;
using manager_testing::iota_tokens;

TEST(FindComputedPages, FindsWhatGetComputedPagesFindsAndRecordsNothing) {
  KVCacheManager m(32, 4, 64);
  Request a("a", iota_tokens(13));
  ASSERT_EQ(admit(m, a), 0);
  const int64_t requests = m.prefix_cache_stats().requests();
  const int64_t queries = m.prefix_cache_stats().queries();

  Request b("b", iota_tokens(10));
  ComputedPages found;
  m.find_computed_pages(b, found);
  EXPECT_EQ(found.num_computed_tokens, 8);
  EXPECT_EQ(m.prefix_cache_stats().requests(), requests);
  EXPECT_EQ(m.prefix_cache_stats().queries(), queries);

  const ComputedPages got = m.get_computed_pages(b);
  EXPECT_EQ(got.pages, found.pages);
  EXPECT_EQ(got.num_computed_tokens, found.num_computed_tokens);
  EXPECT_EQ(m.prefix_cache_stats().requests(), requests + 1);
  m.verify();
}

}  // namespace
}  // namespace pagedkv
