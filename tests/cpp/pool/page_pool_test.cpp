// PagePool behaviour, one test (or more) per docs/rules.md rule 1-11 and 14, the
// events of rule 21, and every error case with an object-unchanged check.
#include "pagedkv/pool/page_pool.h"

#include <gtest/gtest.h>

#include <vector>

#include "pagedkv/common/errors.h"
#include "pool/pool_test_util.h"

namespace pagedkv {
namespace {

using testing::chain_of;
using testing::make_request;
using testing::reversed;
using testing::snapshot;
using V = std::vector<PageId>;

constexpr int32_t kPageSize = 16;

// The prefix-cache hit of a request as the KV-cache manager computes it: consecutive pages
// of `req` found in the index (group 0), stopping at the first miss.
V longest_hit(const PagePool& pool, const Request& req, int32_t max_pages) {
  V hits;
  const auto& hashes = req.page_hashes(kPageSize);
  for (int32_t i = 0; i < max_pages && i < static_cast<int32_t>(hashes.size()); ++i) {
    const auto p = pool.get_cached_page(hashes[static_cast<size_t>(i)], 0);
    if (!p) break;
    hits.push_back(*p);
  }
  return hits;
}

// ---- Rule 1: null page ------------------------------------------------------------------

TEST(PagePoolRule1, NullPageIsTakenAtConstructionAndNeverHandedOut) {
  PagePool pool(5, true);
  pool.verify();
  EXPECT_EQ(pool.null_page(), 0);
  EXPECT_EQ(pool.num_pages(), 5);
  EXPECT_EQ(pool.get_num_free_pages(), 4);
  EXPECT_EQ(pool.get_all_free_pages(), (V{1, 2, 3, 4}));
  EXPECT_EQ(pool.get_new_pages(4), (V{1, 2, 3, 4}));
  pool.verify();
  EXPECT_THROW(pool.get_new_pages(1), CapacityError);
}

TEST(PagePoolRule1, NullPageIsIgnoredByFreeTouchAndCaching) {
  PagePool pool(5, true);
  const Request req = make_request("r", 64, 0, 0);
  const V pages = pool.get_new_pages(2);  // [1, 2]
  pool.touch(V{0, 0});
  pool.verify();
  EXPECT_EQ(pool.ref_count(0), 0);
  // Null pages inside the cached range are skipped (a sliding-window table).
  pool.cache_full_pages(chain_of(req, kPageSize), V{0, 1, 0, 2}, 0, 4, 0);
  pool.verify();
  EXPECT_FALSE(pool.page_hash(0).has_value());
  EXPECT_EQ(pool.page_hash(1), req.page_hashes(kPageSize)[1]);
  EXPECT_EQ(pool.page_hash(2), req.page_hashes(kPageSize)[3]);
  pool.free_pages(V{2, 0, 1, 0});
  pool.verify();
  EXPECT_EQ(pool.ref_count(0), 0);
  EXPECT_EQ(pool.get_all_free_pages(), (V{3, 4, 2, 1}));
}

// ---- Rule 2: usage ----------------------------------------------------------------------

TEST(PagePoolRule2, UsageIsHeldOverUsablePagesAndZeroWhenNothingIsHeld) {
  PagePool pool(5, false);
  EXPECT_DOUBLE_EQ(pool.get_usage(), 0.0);
  const V a = pool.get_new_pages(1);
  EXPECT_DOUBLE_EQ(pool.get_usage(), 0.25);
  const V b = pool.get_new_pages(3);
  EXPECT_DOUBLE_EQ(pool.get_usage(), 1.0);
  pool.free_pages(b);
  pool.free_pages(a);
  EXPECT_DOUBLE_EQ(pool.get_usage(), 0.0);
  pool.verify();
}

// ---- Rule 3: allocation -----------------------------------------------------------------

TEST(PagePoolRule3, GetNewPagesPopsFromTheHeadInQueueOrderWithRefCountOne) {
  PagePool pool(8, true);
  pool.free_pages(reversed(pool.get_new_pages(7)));  // queue [7..1]
  EXPECT_EQ(pool.get_all_free_pages(), (V{7, 6, 5, 4, 3, 2, 1}));
  const V got = pool.get_new_pages(3);
  pool.verify();
  EXPECT_EQ(got, (V{7, 6, 5}));
  for (PageId p : got) EXPECT_EQ(pool.ref_count(p), 1);
  EXPECT_EQ(pool.get_all_free_pages(), (V{4, 3, 2, 1}));
  EXPECT_EQ(pool.get_new_pages(0), V{});
}

TEST(PagePoolRule3, GetNewPagesAppendsToAnExistingVector) {
  PagePool pool(6, false);
  V out{42};
  pool.get_new_pages(2, out);
  EXPECT_EQ(out, (V{42, 1, 2}));
  pool.verify();
}

TEST(PagePoolRule3, GetNewPagesFailsWhenNotEnoughPagesAreFreeAndChangesNothing) {
  PagePool pool(5, true);
  const V held = pool.get_new_pages(2);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.get_new_pages(3), CapacityError);
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
  V out{9};
  EXPECT_THROW(pool.get_new_pages(3, out), CapacityError);
  EXPECT_EQ(out, V{9});
}

TEST(PagePoolRule3, ReallocatingACachedPageEvictsItsHashAndEmitsOneRemovedEvent) {
  PagePool pool(4, true, /*enable_kv_events=*/true);
  const Request req = make_request("r", 48, 0, 0);
  const V pages = pool.get_new_pages(3);
  pool.cache_full_pages(chain_of(req, kPageSize), pages, 0, 3, 0);
  pool.free_pages(reversed(pages));  // queue [3, 2, 1]
  pool.take_events();
  const V got = pool.get_new_pages(2);  // evicts pages 3 and 2
  pool.verify();
  EXPECT_EQ(got, (V{3, 2}));
  EXPECT_FALSE(pool.page_hash(3).has_value());
  EXPECT_FALSE(pool.page_hash(2).has_value());
  EXPECT_EQ(pool.page_hash(1), req.page_hashes(kPageSize)[0]);
  EXPECT_EQ(pool.num_evictions(), 2);
  EXPECT_EQ(pool.num_cached_pages(), 1);
  const auto events = pool.take_events();
  ASSERT_EQ(events.size(), 2u);
  const auto& hashes = req.page_hashes(kPageSize);
  EXPECT_EQ(events[0].kind, KVEvent::Kind::kRemoved);
  EXPECT_EQ(events[0].page_hashes, std::vector<PageHash>{hashes[2]});
  EXPECT_EQ(events[0].page_ids, V{3});
  EXPECT_EQ(events[1].kind, KVEvent::Kind::kRemoved);
  EXPECT_EQ(events[1].page_hashes, std::vector<PageHash>{hashes[1]});
  EXPECT_EQ(events[1].page_ids, V{2});
}

// ---- Rule 4: free order -----------------------------------------------------------------

TEST(PagePoolRule4, FreePagesAppendsPagesReachingZeroToTheTailInGivenOrder) {
  PagePool pool(8, false);
  const V a = pool.get_new_pages(3);  // [1,2,3]
  const V b = pool.get_new_pages(2);  // [4,5]
  pool.touch(V{2});                   // page 2 now shared
  pool.free_pages(reversed(a));       // 3 and 1 reach 0; 2 stays held
  pool.verify();
  EXPECT_EQ(pool.get_all_free_pages(), (V{6, 7, 3, 1}));
  EXPECT_EQ(pool.ref_count(2), 1);
  pool.free_pages(V{5, 2, 4});
  pool.verify();
  EXPECT_EQ(pool.get_all_free_pages(), (V{6, 7, 3, 1, 5, 2, 4}));
}

TEST(PagePoolRule4, APageListedTwiceWithinItsCountJoinsTheQueueOnce) {
  PagePool pool(5, false);
  const V a = pool.get_new_pages(2);  // [1,2]
  pool.touch(V{1});                   // count 2
  pool.free_pages(V{1, 2, 1});
  pool.verify();
  EXPECT_EQ(pool.ref_count(1), 0);
  EXPECT_EQ(pool.get_all_free_pages(), (V{3, 4, 1, 2}));
}

// ---- Rule 5: the worked example ---------------------------------------------------------

TEST(PagePoolRule5, WorkedExampleFromTheReferenceSemantics) {
  PagePool pool(11, true);
  // req0: 3 full pages + a partial one; req1 and req2 share req0's 3 full pages.
  const Request req0 = make_request("req0", 48, 7, 1000);
  const Request req1 = make_request("req1", 48, 7, 2000);
  const Request req2 = make_request("req2", 48, 7, 3000);

  const V p0 = pool.get_new_pages(4);
  EXPECT_EQ(p0, (V{1, 2, 3, 4}));
  pool.cache_full_pages(chain_of(req0, kPageSize), p0, 0, 3, 0);
  pool.verify();

  V p1 = longest_hit(pool, req1, 3);
  EXPECT_EQ(p1, (V{1, 2, 3}));
  pool.touch(p1);
  pool.get_new_pages(1, p1);
  EXPECT_EQ(p1, (V{1, 2, 3, 5}));
  pool.cache_full_pages(chain_of(req1, kPageSize), p1, 3, 3, 0);
  pool.verify();

  pool.free_pages(reversed(p0));
  pool.verify();
  pool.free_pages(reversed(p1));
  pool.verify();
  EXPECT_EQ(pool.get_all_free_pages(), (V{6, 7, 8, 9, 10, 4, 5, 3, 2, 1}));

  V p2 = longest_hit(pool, req2, 3);  // lazy eviction: 1..3 still hit while free
  EXPECT_EQ(p2, (V{1, 2, 3}));
  pool.touch(p2);
  pool.get_new_pages(1, p2);
  EXPECT_EQ(p2, (V{1, 2, 3, 6}));
  pool.free_pages(reversed(p2));
  pool.verify();
  EXPECT_EQ(pool.get_new_pages(10), (V{7, 8, 9, 10, 4, 5, 6, 3, 2, 1}));
  pool.verify();
}

// ---- Rule 6: shared pages ---------------------------------------------------------------

TEST(PagePoolRule6, ASharedPageIsRequeuedOnlyByItsLastHolderAtTheTailOfThatMoment) {
  PagePool pool(6, true);
  const V a = pool.get_new_pages(2);  // [1,2]
  pool.touch(V{1});                   // second holder of page 1
  pool.free_pages(V{1});
  pool.verify();
  EXPECT_EQ(pool.get_all_free_pages(), (V{3, 4, 5}));  // still held once
  pool.free_pages(V{2});
  EXPECT_EQ(pool.get_all_free_pages(), (V{3, 4, 5, 2}));
  pool.free_pages(V{1});  // last holder: joins behind page 2
  pool.verify();
  EXPECT_EQ(pool.get_all_free_pages(), (V{3, 4, 5, 2, 1}));
}

// ---- Rule 7: lazy eviction --------------------------------------------------------------

TEST(PagePoolRule7, FreedPagesKeepTheirHashUntilReallocated) {
  PagePool pool(4, true);
  const Request req = make_request("r", 32, 0, 0);
  const V pages = pool.get_new_pages(2);
  pool.cache_full_pages(chain_of(req, kPageSize), pages, 0, 2, 0);
  pool.free_pages(reversed(pages));  // queue [3, 2, 1]
  pool.verify();
  const auto& hashes = req.page_hashes(kPageSize);
  EXPECT_EQ(pool.page_hash(1), hashes[0]);
  EXPECT_EQ(pool.page_hash(2), hashes[1]);
  EXPECT_EQ(pool.get_cached_page(hashes[0], 0), PageId{1});
  EXPECT_EQ(pool.num_cached_pages(), 2);
  EXPECT_EQ(pool.get_new_pages(1), V{3});  // uncached page: nothing evicted
  EXPECT_EQ(pool.num_cached_pages(), 2);
  EXPECT_EQ(pool.get_new_pages(1), V{2});  // now page 2 loses its hash
  pool.verify();
  EXPECT_FALSE(pool.get_cached_page(hashes[1], 0).has_value());
  EXPECT_EQ(pool.get_cached_page(hashes[0], 0), PageId{1});
}

// ---- Rule 8: touch ----------------------------------------------------------------------

TEST(PagePoolRule8, TouchUnlinksFreePagesInPlaceAndLowersTheFreeCount) {
  PagePool pool(6, true);
  pool.touch(V{3});
  pool.verify();
  EXPECT_EQ(pool.get_num_free_pages(), 4);
  EXPECT_EQ(pool.ref_count(3), 1);
  EXPECT_EQ(pool.get_all_free_pages(), (V{1, 2, 4, 5}));
  pool.touch(V{3, 1});  // held page: count only; free page: unlinked
  pool.verify();
  EXPECT_EQ(pool.ref_count(3), 2);
  EXPECT_EQ(pool.ref_count(1), 1);
  EXPECT_EQ(pool.get_all_free_pages(), (V{2, 4, 5}));
}

// ---- Rule 9: duplicates -----------------------------------------------------------------

TEST(PagePoolRule9, DuplicateHashesAreAllKeptAndLookupReturnsTheFirstInserted) {
  PagePool pool(8, true);
  const Request a = make_request("a", 32, 0, 0);
  const Request b = make_request("b", 32, 0, 0);  // same content: same hashes
  const V pa = pool.get_new_pages(2);
  const V pb = pool.get_new_pages(2);
  pool.cache_full_pages(chain_of(a, kPageSize), pa, 0, 2, 0);
  pool.cache_full_pages(chain_of(b, kPageSize), pb, 0, 2, 0);
  pool.verify();
  const auto& hashes = a.page_hashes(kPageSize);
  EXPECT_EQ(pool.num_cached_pages(), 4);
  EXPECT_EQ(pool.prefix_index().pages_for(hashes[0], 0), (V{1, 3}));
  EXPECT_EQ(pool.prefix_index().pages_for(hashes[1], 0), (V{2, 4}));
  EXPECT_EQ(pool.get_cached_page(hashes[0], 0), PageId{1});
}

TEST(PagePoolRule9, EvictingOneDuplicateKeepsTheOthersFindable) {
  PagePool pool(6, true);
  const Request a = make_request("a", 16, 0, 0);
  const Request b = make_request("b", 16, 0, 0);
  const V pa = pool.get_new_pages(1);  // [1]
  const V pb = pool.get_new_pages(1);  // [2]
  pool.cache_full_pages(chain_of(a, kPageSize), pa, 0, 1, 0);
  pool.cache_full_pages(chain_of(b, kPageSize), pb, 0, 1, 0);
  pool.get_new_pages(3);  // drain [3,4,5] so that page 1 is next
  pool.free_pages(pa);
  pool.free_pages(pb);
  EXPECT_EQ(pool.get_new_pages(1), V{1});  // evicts the first duplicate
  pool.verify();
  const PageHash& h = a.page_hashes(kPageSize)[0];
  EXPECT_EQ(pool.get_cached_page(h, 0), PageId{2});
  EXPECT_EQ(pool.prefix_index().pages_for(h, 0), V{2});
}

// ---- Rule 10: reset ---------------------------------------------------------------------

TEST(PagePoolRule10, ResetPrefixCacheReturnsFalseAndChangesNothingWhilePagesAreHeld) {
  PagePool pool(5, true, true);
  const Request req = make_request("r", 32, 0, 0);
  const V pages = pool.get_new_pages(2);
  pool.cache_full_pages(chain_of(req, kPageSize), pages, 0, 2, 0);
  pool.free_pages(V{pages[1]});
  pool.take_events();
  const auto before = snapshot(pool);
  EXPECT_FALSE(pool.reset_prefix_cache());
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
  EXPECT_TRUE(pool.take_events().empty());
}

TEST(PagePoolRule10, ResetPrefixCacheClearsHashesKeepsQueueOrderAndEmitsAllCleared) {
  PagePool pool(5, true, true);
  const Request req = make_request("r", 32, 0, 0);
  const V pages = pool.get_new_pages(2);
  pool.cache_full_pages(chain_of(req, kPageSize), pages, 0, 2, 0);
  pool.free_pages(reversed(pages));
  pool.take_events();
  const V order = pool.get_all_free_pages();
  EXPECT_TRUE(pool.reset_prefix_cache());
  pool.verify();
  EXPECT_EQ(pool.get_all_free_pages(), order);
  EXPECT_EQ(pool.num_cached_pages(), 0);
  for (PageId p = 0; p < pool.num_pages(); ++p) EXPECT_FALSE(pool.page_hash(p).has_value());
  EXPECT_FALSE(pool.get_cached_page(req.page_hashes(kPageSize)[0], 0).has_value());
  const auto events = pool.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, KVEvent::Kind::kAllCleared);
  // Reallocating after a reset evicts nothing.
  pool.get_new_pages(4);
  EXPECT_EQ(pool.num_evictions(), 0);
  EXPECT_TRUE(pool.take_events().empty());
}

// ---- Rule 11: observable order ----------------------------------------------------------

TEST(PagePoolRule11, FreeQueueOrderIsObservableHeadFirst) {
  PagePool pool(6, false);
  const V got = pool.get_new_pages(5);
  pool.free_pages(V{4, 1, 5, 2, 3});
  EXPECT_EQ(pool.get_all_free_pages(), (V{4, 1, 5, 2, 3}));
  EXPECT_EQ(pool.get_new_pages(5), (V{4, 1, 5, 2, 3}));
  pool.verify();
}

// ---- Rule 14: groups --------------------------------------------------------------------

TEST(PagePoolRule14, TheIndexKeyIsHashAndGroupAndAMultiGroupLookupMissesIfAnyGroupMisses) {
  PagePool pool(6, true);
  const Request req = make_request("r", 16, 0, 0);
  const PageHash& h = req.page_hashes(kPageSize)[0];
  const V g0 = pool.get_new_pages(1);
  const V g1 = pool.get_new_pages(1);
  pool.cache_full_pages(chain_of(req, kPageSize), g0, 0, 1, 0);
  EXPECT_FALSE(pool.get_cached_page(h, 1).has_value());
  V out{7};
  EXPECT_FALSE(pool.get_cached_page(h, std::vector<GroupId>{0, 1}, out));
  EXPECT_EQ(out, V{7});
  pool.cache_full_pages(chain_of(req, kPageSize), g1, 0, 1, 1);
  pool.verify();
  EXPECT_TRUE(pool.get_cached_page(h, std::vector<GroupId>{0, 1}, out));
  EXPECT_EQ(out, (V{7, 1, 2}));
  EXPECT_EQ(pool.get_cached_page(h, 1), PageId{2});
}

TEST(PagePoolLookup, GetCachedPrefixStopsAtTheFirstMissLikeRepeatedGetCachedPage) {
  PagePool pool(16, true);
  const Request full = make_request("full", 80, 0, 0);       // 5 full pages
  const Request other = make_request("other", 32, 48, 900);  // shares pages 0-1 only
  const auto& hashes = full.page_hashes(kPageSize);
  const V pages = pool.get_new_pages(5);
  // Cache pages 0, 1, 2 and 4: page 3 is missing, so a hit stops after 3.
  pool.cache_full_pages(chain_of(full, kPageSize), V{pages[0], pages[1], pages[2], 0, pages[4]}, 0,
                        5, 0);
  V out{99};
  EXPECT_EQ(pool.get_cached_prefix(hashes, 0, out), 3);
  EXPECT_EQ(out, (V{99, pages[0], pages[1], pages[2]}));
  V slow;
  for (const PageHash& h : hashes) {
    const auto p = pool.get_cached_page(h, 0);
    if (!p) break;
    slow.push_back(*p);
  }
  EXPECT_EQ(V(out.begin() + 1, out.end()), slow);
  out.clear();
  EXPECT_EQ(pool.get_cached_prefix(other.page_hashes(kPageSize), 0, out), 2);
  EXPECT_EQ(pool.get_cached_prefix(hashes, 1, out), 0);  // other group
  EXPECT_EQ(pool.get_cached_prefix({}, 0, out), 0);
  EXPECT_EQ(out, (V{pages[0], pages[1]}));
  EXPECT_THROW(pool.get_cached_prefix(hashes, -1, out), InvalidArgument);
  EXPECT_EQ(out.size(), 2u);
  pool.verify();
}

// ---- Caching off ------------------------------------------------------------------------

TEST(PagePoolCachingOff, CacheFullPagesIsANoOpAndLookupsMiss) {
  PagePool pool(5, false, true);
  const Request req = make_request("r", 32, 0, 0);
  const V pages = pool.get_new_pages(2);
  pool.cache_full_pages(chain_of(req, kPageSize), pages, 0, 2, 0);
  pool.verify();
  EXPECT_EQ(pool.num_cached_pages(), 0);
  EXPECT_FALSE(pool.page_hash(1).has_value());
  EXPECT_FALSE(pool.get_cached_page(req.page_hashes(kPageSize)[0], 0).has_value());
  EXPECT_TRUE(pool.take_events().empty());
}

TEST(PagePoolCachingOff, CacheFullPagesStillChecksItsArguments) {
  PagePool pool(5, false);
  const Request req = make_request("r", 32, 0, 0);
  const V pages = pool.get_new_pages(2);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.cache_full_pages(chain_of(req, kPageSize), pages, 0, 3, 0), InvalidArgument);
  EXPECT_THROW(pool.cache_full_pages(chain_of(req, kPageSize), V{1, 5}, 0, 2, 0), OutOfRange);
  EXPECT_THROW(pool.cache_full_pages(chain_of(req, kPageSize), V{1, 3}, 0, 2, 0), StateError);
  EXPECT_THROW(pool.cache_full_pages(chain_of(req, kPageSize), V{1, 1}, 0, 2, 0), StateError);
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
}

TEST(PagePool, MovedPoolKeepsItsState) {
  PagePool a(5, true);
  const V got = a.get_new_pages(2);
  PagePool b(std::move(a));
  b.verify();
  EXPECT_EQ(b.get_all_free_pages(), (V{3, 4}));
  PagePool c(3, false);
  c = std::move(b);
  c.verify();
  EXPECT_EQ(c.num_pages(), 5);
  EXPECT_EQ(c.ref_count(1), 1);
}

// ---- Events (rule 21) -------------------------------------------------------------------

TEST(PagePoolEvents, StoredEventCarriesParentHashesTokensPageSizeLoraGroupAndPages) {
  PagePool pool(8, true, true);
  RequestOptions opts;
  opts.lora_id = 5;
  const Request req = make_request("r", 48, 0, 0, opts);
  const auto& hashes = req.page_hashes(kPageSize);
  const V pages = pool.get_new_pages(3);
  pool.cache_full_pages(chain_of(req, kPageSize), pages, 0, 1, 2);
  pool.cache_full_pages(chain_of(req, kPageSize), pages, 1, 3, 2);
  const auto events = pool.take_events();
  ASSERT_EQ(events.size(), 2u);

  EXPECT_EQ(events[0].kind, KVEvent::Kind::kStored);
  EXPECT_FALSE(events[0].parent_hash.has_value());
  EXPECT_EQ(events[0].page_hashes, std::vector<PageHash>{hashes[0]});
  EXPECT_EQ(events[0].token_ids, testing::iota_tokens(16));
  EXPECT_EQ(events[0].page_ids, V{1});

  const KVEvent& e = events[1];
  EXPECT_EQ(e.kind, KVEvent::Kind::kStored);
  EXPECT_EQ(e.parent_hash, hashes[0]);
  EXPECT_EQ(e.page_hashes, (std::vector<PageHash>{hashes[1], hashes[2]}));
  EXPECT_EQ(e.token_ids, testing::iota_tokens(32, 16));
  EXPECT_EQ(e.page_size, kPageSize);
  EXPECT_EQ(e.lora_id, std::optional<int64_t>{5});
  EXPECT_EQ(e.group_id, 2);
  EXPECT_EQ(e.page_ids, (V{2, 3}));
  EXPECT_TRUE(pool.take_events().empty());
}

TEST(PagePoolEvents, ParentHashIsTheRequestHashOfThePreviousPageEvenWhenThatPageIsNull) {
  PagePool pool(8, true, true);
  const Request req = make_request("r", 64, 0, 0);
  const auto& hashes = req.page_hashes(kPageSize);
  const V pages = pool.get_new_pages(2);  // [1, 2]
  // A sliding-window table: pages 1 and 2 of the request were replaced by the null page.
  const V table{pages[0], 0, 0, pages[1]};
  pool.cache_full_pages(chain_of(req, kPageSize), table, 0, 1, 0);
  pool.take_events();
  pool.cache_full_pages(chain_of(req, kPageSize), table, 3, 4, 0);
  pool.verify();
  const auto events = pool.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].parent_hash, hashes[2]);  // the chain parent, not page 1's hash
  EXPECT_EQ(events[0].page_hashes, std::vector<PageHash>{hashes[3]});
  EXPECT_EQ(events[0].token_ids, testing::iota_tokens(16, 48));
  EXPECT_EQ(events[0].page_ids, V{2});
}

TEST(PagePoolEvents, NoEventsWhenDisabledOrWhenNothingIsStored) {
  PagePool quiet(5, true, false);
  const Request req = make_request("r", 32, 0, 0);
  const V pages = quiet.get_new_pages(2);
  quiet.cache_full_pages(chain_of(req, kPageSize), pages, 0, 2, 0);
  quiet.free_pages(pages);
  quiet.get_new_pages(4);
  EXPECT_TRUE(quiet.take_events().empty());

  PagePool loud(5, true, true);
  const V lp = loud.get_new_pages(2);
  loud.cache_full_pages(chain_of(req, kPageSize), lp, 1, 1, 0);       // empty range
  loud.cache_full_pages(chain_of(req, kPageSize), V{0, 0}, 0, 2, 0);  // only null pages
  EXPECT_TRUE(loud.take_events().empty());
}

// ---- Errors: each leaves the pool unchanged ----------------------------------------------

TEST(PagePoolErrors, ConstructorRejectsFewerThanTwoPages) {
  EXPECT_THROW(PagePool(1, true), InvalidArgument);
  EXPECT_THROW(PagePool(0, false), InvalidArgument);
  EXPECT_THROW(PagePool(-4, false), InvalidArgument);
}

TEST(PagePoolErrors, NegativeGetNewPagesIsInvalidAndChangesNothing) {
  PagePool pool(5, true);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.get_new_pages(-1), InvalidArgument);
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
}

TEST(PagePoolErrors, FreeOfAnOutOfRangeIdFailsAndChangesNothing) {
  PagePool pool(5, true);
  const V pages = pool.get_new_pages(3);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.free_pages(V{3, 2, 5}), OutOfRange);
  EXPECT_THROW(pool.free_pages(V{1, -1}), OutOfRange);
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
}

TEST(PagePoolErrors, ABadIdIsReportedBeforeADoubleFreeWherever) {
  PagePool pool(5, true);
  const V pages = pool.get_new_pages(2);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.free_pages(V{1, 4, 9}), OutOfRange);  // 4 is free, 9 is out of range
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
}

TEST(PagePoolErrors, DoubleFreeFailsAndChangesNothing) {
  PagePool pool(5, true);
  const V pages = pool.get_new_pages(2);
  pool.free_pages(V{2});
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.free_pages(V{1, 2}), StateError);  // 2 is already free
  EXPECT_THROW(pool.free_pages(V{4}), StateError);     // never allocated
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
}

TEST(PagePoolErrors, ARepeatBeyondTheRefCountWithinOneCallFailsAndChangesNothing) {
  PagePool pool(5, true);
  const V pages = pool.get_new_pages(2);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.free_pages(V{2, 1, 1}), StateError);
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
}

TEST(PagePoolErrors, TouchOfAnOutOfRangeIdFailsAndChangesNothing) {
  PagePool pool(5, true);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.touch(V{1, 2, 7}), OutOfRange);
  EXPECT_THROW(pool.touch(V{-1}), OutOfRange);
  pool.verify();
  EXPECT_EQ(snapshot(pool), before);
}

TEST(PagePoolErrors, QueriesOfOutOfRangeIdsOrNegativeGroupsFail) {
  PagePool pool(5, true);
  const auto before = snapshot(pool);
  EXPECT_THROW(pool.ref_count(5), OutOfRange);
  EXPECT_THROW(pool.page_hash(-1), OutOfRange);
  const Request req = make_request("r", 16, 0, 0);
  EXPECT_THROW(pool.get_cached_page(req.page_hashes(kPageSize)[0], -1), InvalidArgument);
  V out;
  EXPECT_THROW(
      pool.get_cached_page(req.page_hashes(kPageSize)[0], std::vector<GroupId>{0, -2}, out),
      InvalidArgument);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(snapshot(pool), before);
}

class PagePoolCacheErrors : public ::testing::Test {
 protected:
  PagePoolCacheErrors()
      : pool_(8, true, true),
        req_(make_request("r", 48, 5, 100)),
        chain_(chain_of(req_, kPageSize)) {
    pages_ = pool_.get_new_pages(4);  // [1,2,3,4]: 3 full pages + a partial one
    pool_.cache_full_pages(chain_, pages_, 0, 1, 0);
    pool_.take_events();
    before_ = snapshot(pool_);
  }
  void expect_unchanged() {
    pool_.verify();
    EXPECT_EQ(snapshot(pool_), before_);
    EXPECT_TRUE(pool_.take_events().empty());
  }
  PagePool pool_;
  Request req_;
  PageChainView chain_;  // 3 hashes, 53 tokens
  V pages_;
  testing::PoolSnapshot before_;
};

TEST_F(PagePoolCacheErrors, BadPageSizeOrGroupIsInvalid) {
  PageChainView bad = chain_;
  bad.page_size = 0;
  EXPECT_THROW(pool_.cache_full_pages(bad, pages_, 1, 2, 0), InvalidArgument);
  bad.page_size = -16;
  EXPECT_THROW(pool_.cache_full_pages(bad, pages_, 1, 2, 0), InvalidArgument);
  EXPECT_THROW(pool_.cache_full_pages(chain_, pages_, 1, 2, -1), InvalidArgument);
  expect_unchanged();
}

TEST_F(PagePoolCacheErrors, AChainOfAnotherHashAlgorithmIsInvalid) {
  RequestOptions opts;
  opts.hash_algorithm = HashAlgorithm::kSha256;
  const Request sha = make_request("s", 48, 5, 100, opts);
  try {
    pool_.cache_full_pages(chain_of(sha, kPageSize), pages_, 1, 2, 0);
    FAIL() << "a sha256 chain was cached in an xxh3_128 pool";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("sha256"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("xxh3_128"), std::string::npos) << e.what();
  }
  expect_unchanged();
}

TEST(PagePoolHashAlgorithm, EventsCarryThePoolsAlgorithm) {
  RequestOptions opts;
  opts.hash_algorithm = HashAlgorithm::kSha256;
  PagePool pool(8, /*enable_caching=*/true, /*enable_kv_events=*/true, HashAlgorithm::kSha256);
  EXPECT_EQ(pool.hash_algorithm(), HashAlgorithm::kSha256);
  const Request r = make_request("s", 32, 0, 0, opts);
  const V pages = pool.get_new_pages(2);
  pool.cache_full_pages(chain_of(r, kPageSize), pages, 0, 2, 0);
  pool.free_pages(reversed(pages));
  pool.get_new_pages(7);  // evicts both cached pages
  pool.verify();
  const std::vector<KVEvent> events = pool.take_events();
  ASSERT_EQ(events.size(), 3u);  // one stored, two removed
  for (const KVEvent& e : events) EXPECT_EQ(e.hash_algorithm, HashAlgorithm::kSha256);
}

TEST_F(PagePoolCacheErrors, InconsistentCountsAreInvalid) {
  EXPECT_THROW(pool_.cache_full_pages(chain_, pages_, -1, 2, 0), InvalidArgument);
  EXPECT_THROW(pool_.cache_full_pages(chain_, pages_, 3, 2, 0), InvalidArgument);
  EXPECT_THROW(pool_.cache_full_pages(chain_, pages_, 1, 5, 0), InvalidArgument);
  // 4 pages given but the chain has only 3 full pages.
  EXPECT_THROW(pool_.cache_full_pages(chain_, pages_, 1, 4, 0), InvalidArgument);
  expect_unchanged();
}

// The message names the bad value and the limit.
template <typename Fn>
std::string error_of(Fn&& call) {
  try {
    call();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "(no InvalidArgument)";
}

TEST_F(PagePoolCacheErrors, ChainShorterThanTheRangeIsInvalid) {
  PageChainView short_hashes = chain_;
  short_hashes.page_hashes = chain_.page_hashes.first(2);
  std::string msg = error_of([&] { pool_.cache_full_pages(short_hashes, pages_, 1, 3, 0); });
  EXPECT_NE(msg.find("num_full_pages 3 exceeds the 2 page hashes"), std::string::npos) << msg;
  PageChainView short_tokens = chain_;
  short_tokens.token_ids = chain_.token_ids.first(40);
  msg = error_of([&] { pool_.cache_full_pages(short_tokens, pages_, 1, 3, 0); });
  EXPECT_NE(msg.find("need 48 tokens, 40 given"), std::string::npos) << msg;
  expect_unchanged();
  // The same chain is fine for a range it covers: 2 hashes, 40 tokens cache page index 1.
  short_tokens.page_hashes = short_hashes.page_hashes;
  pool_.cache_full_pages(short_tokens, pages_, 1, 2, 0);
  pool_.verify();
  EXPECT_EQ(pool_.num_cached_pages(), 2);
}

TEST_F(PagePoolCacheErrors, OutOfRangeIdsFail) {
  EXPECT_THROW(pool_.cache_full_pages(chain_, V{1, 2, 8}, 1, 3, 0), OutOfRange);
  EXPECT_THROW(pool_.cache_full_pages(chain_, V{1, -1, 3}, 1, 3, 0), OutOfRange);
  // A bad id is reported even after a page that is free.
  EXPECT_THROW(pool_.cache_full_pages(chain_, V{1, 6, 8}, 1, 3, 0), OutOfRange);
  expect_unchanged();
}

TEST_F(PagePoolCacheErrors, AFreePageCannotBeCached) {
  EXPECT_THROW(pool_.cache_full_pages(chain_, V{1, 2, 6}, 1, 3, 0), StateError);
  expect_unchanged();
}

TEST_F(PagePoolCacheErrors, APageThatAlreadyCarriesAHashCannotBeCachedAgain) {
  EXPECT_THROW(pool_.cache_full_pages(chain_, V{1, 2, 1}, 1, 3, 0), StateError);
  EXPECT_THROW(pool_.cache_full_pages(chain_, pages_, 0, 2, 0), StateError);
  expect_unchanged();
}

TEST_F(PagePoolCacheErrors, APageRepeatedInTheRangeFails) {
  EXPECT_THROW(pool_.cache_full_pages(chain_, V{1, 2, 2}, 1, 3, 0), StateError);
  expect_unchanged();
  // The call stamps are scratch: a later valid call with the same page works.
  pool_.cache_full_pages(chain_, V{1, 2, 3}, 1, 3, 0);
  pool_.verify();
  EXPECT_EQ(pool_.num_cached_pages(), 3);
}

}  // namespace
}  // namespace pagedkv
