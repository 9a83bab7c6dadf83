// Sliding-window groups and hybrid (full + sliding window) configs: rules 23, 24, 25.
#include <gtest/gtest.h>

#include <algorithm>

#include "manager/manager_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv {
namespace {

using manager_testing::admit;
using manager_testing::decode_step;
using manager_testing::iota_tokens;
using manager_testing::prompt;
using manager_testing::snapshot;

KVCacheConfig sliding(int32_t num_pages, int32_t page_size, int32_t window,
                      int32_t max_model_len = 4096) {
  KVCacheConfig c;
  c.num_pages = num_pages;
  c.max_model_len = max_model_len;
  c.groups = {KVCacheGroupSpec::sliding_window_attention(page_size, window)};
  return c;
}

KVCacheConfig hybrid(int32_t num_pages, int32_t full_page_size, int32_t sw_page_size,
                     int32_t window) {
  KVCacheConfig c;
  c.num_pages = num_pages;
  c.max_model_len = 4096;
  c.groups = {KVCacheGroupSpec::full_attention(full_page_size),
              KVCacheGroupSpec::sliding_window_attention(sw_page_size, window)};
  return c;
}

int32_t non_null(const std::vector<PageId>& pages) {
  return static_cast<int32_t>(
      std::count_if(pages.begin(), pages.end(), [](PageId p) { return p != kNullPageId; }));
}

// ---- Rule 23 ----

TEST(SlidingWindow, SlidingWindowReplacesOutOfWindowPagesWithNull) {
  KVCacheManager m(sliding(64, 16, 32));
  Request r("r", iota_tokens(100));
  ASSERT_EQ(admit(m, r), 0);
  EXPECT_EQ(m.get_page_ids("r")[0], (std::vector<PageId>{1, 2, 3, 4, 5, 6, 7}));
  // 100 computed: tokens before 100 - 32 + 1 = 69 are out of the window; pages 0..3 (tokens
  // 0..63) lie wholly before it, page 4 (64..79) does not.
  ASSERT_TRUE(decode_step(m, r, 7));
  EXPECT_EQ(m.get_page_ids("r")[0], (std::vector<PageId>{0, 0, 0, 0, 5, 6, 7}));
  for (PageId p : {1, 2, 3, 4}) EXPECT_EQ(m.page_pool().ref_count(p), 0);
  // Freed right to left, so the page nearest the window is evicted last.
  std::vector<PageId> free_pages = m.page_pool().get_all_free_pages();
  EXPECT_EQ(std::vector<PageId>(free_pages.end() - 4, free_pages.end()),
            (std::vector<PageId>{4, 3, 2, 1}));
  EXPECT_TRUE(m.page_pool().page_hash(1).has_value());  // still cached until reallocated
  m.verify();
  m.free(r);
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 63);
  m.verify();
}

TEST(SlidingWindow, RequestHoldsOnlyThePagesOfItsWindow) {
  KVCacheManager m(sliding(32, 16, 64));
  Request r("r", iota_tokens(20));
  ASSERT_EQ(admit(m, r), 0);
  for (int step = 0; step < 600; ++step) {
    ASSERT_TRUE(decode_step(m, r, step % 1000));
    // At most the pages touching the window plus the page of the newest token.
    ASSERT_LE(non_null(m.get_page_ids("r")[0]), cdiv(64 - 1, 16) + 2);
    m.verify();
  }
  EXPECT_EQ(m.get_page_ids("r")[0].size(), static_cast<size_t>(cdiv(620, 16)));
}

TEST(SlidingWindow, PagesLeavingTheWindowCountAsFreeForTheSameAllocation) {
  KVCacheManager m(sliding(8, 16, 32));  // 7 usable pages
  Request r("r", iota_tokens(100));
  ASSERT_EQ(admit(m, r), 0);
  ASSERT_EQ(m.page_pool().get_num_free_pages(), 0);
  r.append_output_token_ids(iota_tokens(13, 5000));  // 113 tokens: 8 pages, one new
  auto pages = m.allocate_slots(r, 13);
  ASSERT_TRUE(pages);                              // the 4 pages leaving the window pay for it
  EXPECT_EQ((*pages)[0], std::vector<PageId>{4});  // freed as [4, 3, 2, 1]: 4 is the head
  m.verify();
}

TEST(SlidingWindow, FailedAllocationKeepsOutOfWindowPages) {
  KVCacheManager m(sliding(11, 16, 32));  // 10 usable pages
  Request other("other", prompt(0, 48, 9000));
  ASSERT_EQ(admit(m, other), 0);
  Request r("r", iota_tokens(100));
  ASSERT_EQ(admit(m, r), 0);
  ASSERT_EQ(m.page_pool().get_num_free_pages(), 0);
  r.append_output_token_ids(iota_tokens(80, 5000));  // 180 tokens: 12 pages, 5 new > 4 freed
  const auto before = snapshot(m, {"r", "other"});
  EXPECT_FALSE(m.allocate_slots(r, 80));
  EXPECT_EQ(snapshot(m, {"r", "other"}), before);
  m.verify();
}

// ---- Rule 24 ----

TEST(SlidingWindow, SlidingWindowHitNeedsContiguousPagesFromTheRight) {
  KVCacheManager m(sliding(64, 16, 33));  // cdiv(32, 16) = 2 contiguous pages
  Request a("a", iota_tokens(100));
  ASSERT_EQ(admit(m, a), 0);
  // Same first 80 tokens: pages 0..4 are cached, page 5 is not. From the right, pages 4 and 3
  // form the run; pages 0..2 are outside the window of the hit and count as null.
  Request b("b", prompt(80, 20, 7000));
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 80);
  EXPECT_EQ(hit.pages[0], (std::vector<PageId>{0, 0, 0, 4, 5}));
  auto pages = m.allocate_slots(
      b, {.num_new_tokens = 20, .num_new_computed_tokens = 80, .new_computed_pages = &hit.pages});
  ASSERT_TRUE(pages);
  EXPECT_EQ((*pages)[0], (std::vector<PageId>{8, 9}));
  EXPECT_EQ(m.get_page_ids("b")[0], (std::vector<PageId>{0, 0, 0, 4, 5, 8, 9}));
  EXPECT_EQ(m.page_pool().ref_count(4), 2);
  EXPECT_EQ(m.page_pool().ref_count(1), 1);  // the null entries touched nothing
  m.verify();
  m.free(b);
  m.free(a);
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 63);
  m.verify();
}

TEST(SlidingWindow, HitFallsBackToTheRunFromPageZero) {
  KVCacheManager m(sliding(9, 16, 40));  // 8 usable pages; cdiv(39, 16) = 3 contiguous pages
  Request a("a", iota_tokens(100));
  ASSERT_EQ(admit(m, a), 0);          // pages 1..7
  ASSERT_TRUE(decode_step(m, a, 1));  // pages 1..3 leave the window: queue [8, 3, 2, 1]
  Request c("c", prompt(0, 32, 9000));
  ASSERT_EQ(admit(m, c), 0);  // takes 8 and 3: A's page 2 (id 3) is evicted
  ASSERT_TRUE(m.page_pool().page_hash(3) != std::optional<PageHash>(a.page_hashes(16)[2]));
  // B shares A's first 64 tokens: pages 0, 1, 3 cached, page 2 evicted. No run of 3 from the
  // right; the run starting at page 0 (2 pages) is still a valid hit.
  Request b("b", prompt(64, 36, 7000));
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 32);
  EXPECT_EQ(hit.pages[0], (std::vector<PageId>{1, 2}));
  m.verify();
}

TEST(SlidingWindow, SlidingWindowHasNoCommonPrefixPages) {
  KVCacheManager m(sliding(64, 16, 32));
  Request a("a", iota_tokens(40));
  Request b("b", iota_tokens(40));
  ASSERT_EQ(admit(m, a), 0);
  ASSERT_EQ(admit(m, b), 32);
  EXPECT_EQ(m.get_num_common_prefix_pages(a, 2), std::vector<int32_t>{0});
}

TEST(SlidingWindow, NullHitPageAfterARealOneIsInvalid) {
  KVCacheManager m(sliding(64, 16, 32));
  Request a("a", iota_tokens(100));
  ASSERT_EQ(admit(m, a), 0);
  Request b("b", iota_tokens(100));
  GroupPages hits = {{0, 1, 0}};
  const auto before = snapshot(m, {"a", "b"});
  const AllocationRequest alloc{
      .num_new_tokens = 52, .num_new_computed_tokens = 48, .new_computed_pages = &hits};
  EXPECT_THROW(m.allocate_slots(b, alloc), InvalidArgument);
  EXPECT_EQ(snapshot(m, {"a", "b"}), before);
  m.verify();
}

// ---- Rule 25 ----

TEST(HybridGroups, HybridGroupsHitIsLcmMultiple) {
  // Full attention with 16-token pages, sliding window (64 tokens) with 32-token pages: lcm 32.
  KVCacheManager m(hybrid(64, 16, 32, 64));
  Request a("a", iota_tokens(100));
  ASSERT_EQ(admit(m, a), 0);
  EXPECT_EQ(m.get_page_ids("a"), (GroupPages{{1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11}}));
  // B shares 80 tokens: full attention accepts 80, which is no multiple of 32; the hit is 64,
  // where the sliding-window group (2 pages of 32 in its window) accepts too.
  Request b("b", prompt(80, 20, 7000));
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 64);
  EXPECT_EQ(hit.pages, (GroupPages{{1, 2, 3, 4}, {8, 9}}));
  auto pages = m.allocate_slots(
      b, {.num_new_tokens = 36, .num_new_computed_tokens = 64, .new_computed_pages = &hit.pages});
  ASSERT_TRUE(pages);
  EXPECT_EQ((*pages)[0].size(), 3u);  // cdiv(100, 16) - 4
  EXPECT_EQ((*pages)[1].size(), 2u);  // cdiv(100, 32) - 2
  m.verify();
  // The same prompt again: 96 tokens (3 pages of 32, 6 of 16).
  Request c("c", iota_tokens(100));
  EXPECT_EQ(m.get_computed_pages(c).num_computed_tokens, 96);
}

TEST(HybridGroups, HitIsThePrefixEveryGroupAccepts) {
  KVCacheManager m(hybrid(15, 16, 16, 32));  // 14 usable; the window needs 2 pages
  Request a("a", iota_tokens(100));
  ASSERT_EQ(admit(m, a), 0);          // full 1..7, sliding window 8..14
  ASSERT_TRUE(decode_step(m, a, 3));  // window pages 8..11 freed: queue [11, 10, 9, 8]
  EXPECT_EQ(m.get_page_ids("a")[1], (std::vector<PageId>{0, 0, 0, 0, 12, 13, 14}));
  Request c("c", prompt(0, 16, 9000));
  ASSERT_EQ(admit(m, c), 0);  // takes 11 and 10: window pages 2 and 3 of A are evicted
  // B shares 64 tokens. Full attention accepts 64; the sliding window at 64 would need pages
  // 2 and 3 (evicted) and accepts only 32 (pages 0 and 1); so does full attention.
  Request b("b", prompt(64, 1, 7000));
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 32);
  EXPECT_EQ(hit.pages, (GroupPages{{1, 2}, {8, 9}}));
  // Room for B. The free queue now starts with the window pages 9, 8 that B hits in group 1:
  // they must be touched before group 0 takes its new pages from the queue head.
  m.free(a);
  m.free(c);
  ASSERT_EQ(m.page_pool().get_all_free_pages().front(), 9);
  auto pages = m.allocate_slots(
      b, {.num_new_tokens = 33, .num_new_computed_tokens = 32, .new_computed_pages = &hit.pages});
  ASSERT_TRUE(pages);
  EXPECT_EQ(m.get_page_ids("b")[1],
            (std::vector<PageId>{8, 9, (*pages)[1][0], (*pages)[1][1], (*pages)[1][2]}));
  EXPECT_EQ(m.page_pool().page_hash(8), std::optional<PageHash>(b.page_hashes(16)[0]));
  m.verify();
  m.free(b);
  m.verify();
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 14);
}

TEST(HybridGroups, NeverFitCountsThePagesOfEveryGroup) {
  KVCacheManager m(hybrid(11, 16, 16, 1024));  // 10 usable pages
  Request r("r", iota_tokens(90));             // 6 + 6 pages
  const auto before = snapshot(m, {"r"});
  EXPECT_THROW(m.allocate_slots(r, 90), CapacityError);
  EXPECT_EQ(snapshot(m, {"r"}), before);
  Request s("s", iota_tokens(80));  // 5 + 5 pages
  EXPECT_TRUE(m.allocate_slots(s, 80));
  m.verify();
}

TEST(HybridGroups, SpeculativeDecodingShortensTheCommonHit) {
  KVCacheConfig config = hybrid(64, 16, 16, 32);
  config.num_speculative_tokens = 2;
  KVCacheManager m(config);
  Request a("a", iota_tokens(100));
  ASSERT_EQ(admit(m, a), 0);
  Request b("b", iota_tokens(100));
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 80);  // 96 without speculation
  EXPECT_EQ(hit.pages[0].size(), 5u);
  EXPECT_EQ(hit.pages[1], (std::vector<PageId>{0, 0, 0, 11, 12}));
  ASSERT_TRUE(m.allocate_slots(
      b, {.num_new_tokens = 20, .num_new_computed_tokens = 80, .new_computed_pages = &hit.pages}));
  m.verify();
}

}  // namespace
}  // namespace pagedkv
