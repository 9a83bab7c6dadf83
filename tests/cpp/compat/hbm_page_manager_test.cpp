#include "pagedkv/compat/hbm_page_manager.h"

#include <gtest/gtest.h>

#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using V = std::vector<PageId>;

TEST(HBMPageManager, ExposesPageSizeDummyPageAndFreeCount) {
  HBMPageManager mgr(8, 16);
  mgr.verify();
  EXPECT_EQ(mgr.page_size(), 16);
  EXPECT_EQ(mgr.current_page_index(), 0);
  EXPECT_EQ(mgr.num_pages(), 8);
  EXPECT_EQ(mgr.num_free_pages(), 7);
  EXPECT_FALSE(mgr.pool().enable_caching());
}

TEST(HBMPageManager, PrefillAllocatesCdivOfThePromptLength) {
  HBMPageManager mgr(10, 16);
  EXPECT_EQ(mgr.alloc_prefill_hbm_pages(40), (V{1, 2, 3}));
  EXPECT_EQ(mgr.alloc_prefill_hbm_pages(16), V{4});
  EXPECT_EQ(mgr.alloc_prefill_hbm_pages(17), (V{5, 6}));
  mgr.verify();
  EXPECT_EQ(mgr.num_free_pages(), 3);
}

TEST(HBMPageManager, NotEnoughPagesOrANonPositiveCountGivesAnEmptyListAndChangesNothing) {
  HBMPageManager mgr(5, 4);
  EXPECT_EQ(mgr.alloc_hbm_pages(5), V{});
  EXPECT_EQ(mgr.alloc_hbm_pages(0), V{});
  EXPECT_EQ(mgr.alloc_hbm_pages(-3), V{});
  EXPECT_EQ(mgr.alloc_prefill_hbm_pages(17), V{});  // 5 pages > 4 free
  EXPECT_EQ(mgr.alloc_prefill_hbm_pages(0), V{});
  EXPECT_EQ(mgr.alloc_prefill_hbm_pages(-8), V{});
  mgr.verify();
  EXPECT_EQ(mgr.num_free_pages(), 4);
  EXPECT_EQ(mgr.pool().get_all_free_pages(), (V{1, 2, 3, 4}));
}

TEST(HBMPageManager, FreedPagesReturnInGivenOrderAndTheDummyPageIsIgnored) {
  HBMPageManager mgr(6, 4);
  const V got = mgr.alloc_hbm_pages(4);
  EXPECT_EQ(got, (V{1, 2, 3, 4}));
  mgr.free_hbm_pages(V{3, 0, 1});
  mgr.verify();
  EXPECT_EQ(mgr.num_free_pages(), 3);
  EXPECT_EQ(mgr.alloc_hbm_pages(3), (V{5, 3, 1}));
}

TEST(HBMPageManager, ConstructorRejectsBadSizes) {
  EXPECT_THROW(HBMPageManager(1, 16), InvalidArgument);
  EXPECT_THROW(HBMPageManager(8, 0), InvalidArgument);
  EXPECT_THROW(HBMPageManager(8, -16), InvalidArgument);
}

TEST(HBMPageManager, DoubleFreeAndBadIdsFailAndChangeNothing) {
  HBMPageManager mgr(6, 4);
  const V got = mgr.alloc_hbm_pages(2);
  const V before = mgr.pool().get_all_free_pages();
  EXPECT_THROW(mgr.free_hbm_pages(V{1, 3}), StateError);  // 3 was never allocated
  EXPECT_THROW(mgr.free_hbm_pages(V{1, 1}), StateError);
  EXPECT_THROW(mgr.free_hbm_pages(V{2, 6}), OutOfRange);
  mgr.verify();
  EXPECT_EQ(mgr.pool().get_all_free_pages(), before);
  EXPECT_EQ(mgr.pool().ref_count(1), 1);
  EXPECT_EQ(mgr.pool().ref_count(2), 1);
}

}  // namespace
}  // namespace pagedkv
