// KVCacheManager with one full-attention group: docs/rules.md rules 16-22, 29, 30 and
// the API around them.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include <fmt/format.h>

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

// ---- Rule 16: the last prompt token is always recomputed ----

TEST(KVCacheManager, LastPromptTokenIsAlwaysRecomputed) {
  KVCacheManager m(64, 16, 1024);
  Request a("a", iota_tokens(48));
  ASSERT_EQ(admit(m, a), 0);
  m.verify();
  // Same 48-token prompt: 3 pages are cached, but (48 - 1) // 16 = 2 may be hit.
  Request b("b", iota_tokens(48));
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 32);
  ASSERT_EQ(hit.pages.size(), 1u);
  EXPECT_EQ(hit.pages[0], (std::vector<PageId>{1, 2}));
  // One more token: all 3 cached pages are usable.
  Request c("c", iota_tokens(49));
  EXPECT_EQ(m.get_computed_pages(c).num_computed_tokens, 48);
  m.verify();
}

TEST(KVCacheManager, HitStopsAtTheFirstMiss) {
  KVCacheManager m(64, 16, 1024);
  Request a("a", iota_tokens(80));
  ASSERT_EQ(admit(m, a), 0);
  // Same first two pages, different third page: later pages chain from it and miss too.
  std::vector<TokenId> t = iota_tokens(80);
  t[40] = 9999;
  Request b("b", t);
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 32);
  EXPECT_EQ(hit.pages[0], (std::vector<PageId>{1, 2}));
}

TEST(KVCacheManager, LookupChangesNoPage) {
  KVCacheManager m(16, 4, 256);
  Request a("a", iota_tokens(20));
  ASSERT_EQ(admit(m, a), 0);
  m.free(a);
  const auto before = snapshot(m, {"a"});
  Request b("b", iota_tokens(20));
  EXPECT_EQ(m.get_computed_pages(b).num_computed_tokens, 16);
  auto after = snapshot(m, {"a"});
  after.stats = before.stats;  // only the statistics moved
  EXPECT_EQ(after, before);
}

// ---- Rule 17: speculative decoding drops one more hit page ----

TEST(KVCacheManager, SpeculativeDecodingDropsOneMoreHitPage) {
  KVCacheConfig config = KVCacheConfig::single_group(64, 16, 1024);
  config.num_speculative_tokens = 3;
  KVCacheManager m(config);
  Request a("a", iota_tokens(65));
  ASSERT_EQ(admit(m, a), 0);
  Request b("b", iota_tokens(65));  // 4 pages hit without speculation
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 48);
  EXPECT_EQ(hit.pages[0].size(), 3u);
  Request c("c", iota_tokens(17));  // 1 page hit without speculation -> none
  EXPECT_EQ(m.get_computed_pages(c).num_computed_tokens, 0);
  m.verify();
}

// ---- Rule 18: pages needed, and failure changes nothing ----

TEST(KVCacheManager, AllocateSlotsCoversComputedNewAndLookaheadTokens) {
  KVCacheManager m(64, 16, 40);
  Request r("r", iota_tokens(20));
  auto pages = m.allocate_slots(r, {.num_new_tokens = 20, .num_lookahead_tokens = 13});
  ASSERT_TRUE(pages);
  EXPECT_EQ((*pages)[0].size(), 3u);  // cdiv(33, 16)
  r.set_num_computed_tokens(20);
  // Lookahead is capped at max_model_len: cdiv(min(20 + 20 + 10, 40), 16) = 3 pages, no new.
  std::vector<TokenId> more = iota_tokens(20, 500);
  r.append_output_token_ids(more);
  pages = m.allocate_slots(r, {.num_new_tokens = 20, .num_lookahead_tokens = 10});
  ASSERT_TRUE(pages);
  EXPECT_TRUE((*pages)[0].empty());
  EXPECT_EQ(m.get_page_ids("r")[0].size(), 3u);
  m.verify();
}

TEST(KVCacheManager, AllocateSlotsFailureChangesNothing) {
  // 6 usable pages. A's 3 pages are cached and free; C holds 3 others.
  KVCacheManager m(7, 16, 1024);
  Request a("a", iota_tokens(48));
  ASSERT_EQ(admit(m, a), 0);
  m.free(a);
  Request c("c", prompt(0, 48, 5000));
  ASSERT_EQ(admit(m, c), 0);
  ASSERT_EQ(m.page_pool().get_num_free_pages(), 3);
  // B hits A's 3 free pages and needs 1 more: 4 free pages needed (rule 18), 3 free.
  Request b("b", iota_tokens(64));
  ComputedPages hit = m.get_computed_pages(b);
  ASSERT_EQ(hit.num_computed_tokens, 48);
  const auto before = snapshot(m, {"a", "b", "c"});
  EXPECT_FALSE(m.allocate_slots(
      b, {.num_new_tokens = 16, .num_new_computed_tokens = 48, .new_computed_pages = &hit.pages}));
  EXPECT_EQ(snapshot(m, {"a", "b", "c"}), before);
  EXPECT_FALSE(m.has_request("b"));
  m.verify();
  // With one more free page it fits, and the hit pages leave the free queue.
  m.free(c);
  auto pages = m.allocate_slots(
      b, {.num_new_tokens = 16, .num_new_computed_tokens = 48, .new_computed_pages = &hit.pages});
  ASSERT_TRUE(pages);
  EXPECT_EQ((*pages)[0].size(), 1u);
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 2);
  m.verify();
}

TEST(KVCacheManager, HitPagesHeldByOthersNeedNoFreePage) {
  KVCacheManager m(5, 16, 1024);  // 4 usable pages
  Request a("a", iota_tokens(48));
  ASSERT_EQ(admit(m, a), 0);  // holds 3
  Request b("b", iota_tokens(64));
  ComputedPages hit = m.get_computed_pages(b);
  ASSERT_EQ(hit.num_computed_tokens, 48);
  // 1 new page: exactly the free one.
  auto pages = m.allocate_slots(
      b, {.num_new_tokens = 16, .num_new_computed_tokens = 48, .new_computed_pages = &hit.pages});
  ASSERT_TRUE(pages);
  EXPECT_EQ((*pages)[0], std::vector<PageId>{4});
  EXPECT_EQ(m.page_pool().ref_count(1), 2);
  m.verify();
}

// ---- Rule 19: caching at allocation time ----

TEST(KVCacheManager, IdenticalPromptInSameStepHits) {
  KVCacheManager m(64, 16, 1024);
  Request a("a", iota_tokens(50));
  ComputedPages hit_a = m.get_computed_pages(a);
  ASSERT_EQ(hit_a.num_computed_tokens, 0);
  ASSERT_TRUE(m.allocate_slots(a, 50));
  // A's KV is not computed yet (same step), but its full pages are already in the index.
  Request b("b", iota_tokens(50));
  ComputedPages hit_b = m.get_computed_pages(b);
  EXPECT_EQ(hit_b.num_computed_tokens, 48);
  EXPECT_EQ(hit_b.pages[0], (std::vector<PageId>{1, 2, 3}));
  ASSERT_TRUE(m.allocate_slots(
      b, {.num_new_tokens = 2, .num_new_computed_tokens = 48, .new_computed_pages = &hit_b.pages}));
  EXPECT_EQ(m.get_page_ids("b")[0], (std::vector<PageId>{1, 2, 3, 5}));
  m.verify();
}

TEST(KVCacheManager, LookaheadAndDraftTokensAreNeverCached) {
  KVCacheManager m(64, 16, 1024);
  Request r("r", iota_tokens(40));
  // 40 prompt tokens + 8 draft tokens scheduled + 16 lookahead slots: 4 pages, 2 full pages
  // of real tokens cached (the third page would only be full with the drafts).
  auto pages = m.allocate_slots(r, {.num_new_tokens = 48, .num_lookahead_tokens = 16});
  ASSERT_TRUE(pages);
  EXPECT_EQ((*pages)[0].size(), 4u);
  EXPECT_EQ(m.page_pool().num_cached_pages(), 2);
  EXPECT_TRUE(m.page_pool().page_hash(2).has_value());
  EXPECT_FALSE(m.page_pool().page_hash(3).has_value());
  m.verify();
}

TEST(KVCacheManager, DecodedPagesAreCachedWhenTheyFill) {
  KVCacheManager m(64, 4, 1024);
  Request r("r", iota_tokens(6));
  ASSERT_EQ(admit(m, r), 0);
  EXPECT_EQ(m.page_pool().num_cached_pages(), 1);
  ASSERT_TRUE(decode_step(m, r, 100));  // 7 tokens
  EXPECT_EQ(m.page_pool().num_cached_pages(), 1);
  ASSERT_TRUE(decode_step(m, r, 101));  // 8 tokens: page 1 full
  EXPECT_EQ(m.page_pool().num_cached_pages(), 2);
  ASSERT_TRUE(decode_step(m, r, 102));  // 9 tokens: third page
  EXPECT_EQ(m.get_page_ids("r")[0].size(), 3u);
  m.verify();
  // Another request with the same 8 prompt+output tokens and one more hits both pages.
  std::vector<TokenId> t(r.all_token_ids().begin(), r.all_token_ids().end());
  Request s("s", t);
  EXPECT_EQ(m.get_computed_pages(s).num_computed_tokens, 8);
}

// ---- Rule 20 and the worked example of rule 5, through the manager ----

TEST(KVCacheManager, FreeReturnsPagesInReverseOrderWorkedExample) {
  KVCacheManager m(11, 16, 1024);
  Request r0("r0", iota_tokens(64));
  ASSERT_EQ(admit(m, r0), 0);
  EXPECT_EQ(m.get_page_ids("r0")[0], (std::vector<PageId>{1, 2, 3, 4}));
  Request r1("r1", prompt(48, 16, 7000));
  ASSERT_EQ(admit(m, r1), 48);
  EXPECT_EQ(m.get_page_ids("r1")[0], (std::vector<PageId>{1, 2, 3, 5}));
  m.free(r0);
  m.free(r1);
  EXPECT_EQ(m.page_pool().get_all_free_pages(),
            (std::vector<PageId>{6, 7, 8, 9, 10, 4, 5, 3, 2, 1}));
  Request r2("r2", prompt(48, 16, 8000));
  ASSERT_EQ(admit(m, r2), 48);
  EXPECT_EQ(m.get_page_ids("r2")[0], (std::vector<PageId>{1, 2, 3, 6}));
  m.free(r2);
  EXPECT_EQ(m.page_pool().get_all_free_pages(),
            (std::vector<PageId>{7, 8, 9, 10, 4, 5, 6, 3, 2, 1}));
  Request big("big", prompt(0, 160, 9000));
  ASSERT_EQ(admit(m, big), 0);
  EXPECT_EQ(m.get_page_ids("big")[0], (std::vector<PageId>{7, 8, 9, 10, 4, 5, 6, 3, 2, 1}));
  m.verify();
}

TEST(KVCacheManager, FreeOfUnknownRequestIsANoOp) {
  KVCacheManager m(16, 4, 256);
  Request a("a", iota_tokens(10));
  ASSERT_EQ(admit(m, a), 0);
  const auto before = snapshot(m, {"a", "ghost"});
  m.free(std::string("ghost"));
  Request ghost("ghost", iota_tokens(3));
  m.free(ghost);
  EXPECT_EQ(snapshot(m, {"a", "ghost"}), before);
  m.free(a);
  m.free(a);  // second free of the same request: unknown by now
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 15);
  m.verify();
}

TEST(KVCacheManager, FreedPagesStayCachedUntilReallocated) {
  KVCacheManager m(8, 4, 256);
  Request a("a", iota_tokens(13));
  ASSERT_EQ(admit(m, a), 0);
  m.free(a);
  Request b("b", iota_tokens(13));
  EXPECT_EQ(admit(m, b), 12);  // lazy eviction: the freed pages still hit
  m.verify();
}

// ---- Rule 29: a request that can never fit ----

TEST(KVCacheManager, RequestThatCanNeverFitThrowsCapacityError) {
  KVCacheManager m(11, 16, 4096);  // 10 usable pages
  Request small("small", iota_tokens(20));
  ASSERT_EQ(admit(m, small), 0);
  Request huge("huge", prompt(0, 161, 3000));  // cdiv(161, 16) = 11 pages > 10
  const auto before = snapshot(m, {"small", "huge"});
  try {
    m.allocate_slots(huge, 161);
    FAIL() << "expected CapacityError";
  } catch (const CapacityError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("11"), std::string::npos) << msg;
    EXPECT_NE(msg.find("10"), std::string::npos) << msg;
  }
  EXPECT_EQ(snapshot(m, {"small", "huge"}), before);
  // A request that fits an empty pool but not the free pages now: nullopt, no error.
  Request fits("fits", prompt(0, 160, 4000));
  EXPECT_FALSE(m.allocate_slots(fits, 160));
  EXPECT_EQ(snapshot(m, {"small", "huge"}), before);
  m.verify();
}

TEST(KVCacheManager, LookaheadCanMakeARequestNeverFit) {
  KVCacheManager m(5, 16, 4096);  // 4 usable pages
  Request r("r", iota_tokens(60));
  // 68 tokens: 5 pages; 64 tokens: 4 pages.
  EXPECT_THROW(m.allocate_slots(r, {.num_new_tokens = 60, .num_lookahead_tokens = 8}),
               CapacityError);
  EXPECT_TRUE(m.allocate_slots(r, {.num_new_tokens = 60, .num_lookahead_tokens = 4}));
  m.verify();
}

// ---- Rule 30: no leak ----

TEST(KVCacheManager, EveryPageIsFreeAfterAllRequestsFinish) {
  KVCacheManager m(200, 8, 2048);
  std::vector<Request> reqs;
  for (int i = 0; i < 12; ++i) {
    reqs.emplace_back(fmt::format("r{}", i), prompt(8 * (i % 4) + 5, 3 + i, 10000 * (i + 1)));
  }
  for (auto& r : reqs) ASSERT_GE(admit(m, r), 0);
  for (int step = 0; step < 20; ++step) {
    for (auto& r : reqs) ASSERT_TRUE(decode_step(m, r, 42 + step));
  }
  m.verify();
  EXPECT_GT(m.usage(), 0.0);
  for (auto& r : reqs) {
    m.free(r);
    m.verify();
  }
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 199);
  EXPECT_EQ(m.usage(), 0.0);
  EXPECT_EQ(m.num_requests(), 0);
}

// ---- Rule 22: statistics ----

TEST(KVCacheManager, StatisticsCountTokensAndResumedRequestsSeparately) {
  KVCacheManager m(64, 16, 1024);
  Request a("a", iota_tokens(48));
  ASSERT_EQ(admit(m, a), 0);
  Request b("b", iota_tokens(48));
  ASSERT_EQ(admit(m, b), 32);
  const PrefixCacheStats& st = m.prefix_cache_stats();
  EXPECT_EQ(st.requests(), 2);
  EXPECT_EQ(st.queries(), 96);
  EXPECT_EQ(st.hits(), 32);
  EXPECT_DOUBLE_EQ(st.hit_rate(), 32.0 / 96.0);
  EXPECT_DOUBLE_EQ(st.windowed_hit_rate(), 32.0 / 96.0);
  // B is preempted (pages freed, computed reset) and resumes: counted as resumed only.
  m.free(b);
  b.set_num_computed_tokens(0);
  ComputedPages resumed = m.get_computed_pages(b, /*resumed=*/true);
  ASSERT_EQ(resumed.num_computed_tokens, 32);
  ASSERT_TRUE(m.allocate_slots(
      b,
      {.num_new_tokens = 16, .num_new_computed_tokens = 32, .new_computed_pages = &resumed.pages}));
  EXPECT_EQ(st.requests(), 2);
  EXPECT_EQ(st.queries(), 96);
  EXPECT_EQ(st.resumed_requests(), 1);
  EXPECT_EQ(st.resumed_queries(), 48);
  EXPECT_EQ(st.resumed_hits(), 32);
  m.reset_prefix_cache_stats();
  EXPECT_EQ(st.requests(), 0);
  EXPECT_EQ(st.resumed_requests(), 0);
  m.verify();
}

TEST(KVCacheManager, CachingOffNeverHitsNorHashesNorCounts) {
  KVCacheManager m(64, 16, 1024, /*enable_caching=*/false);
  Request a("a", iota_tokens(48));
  ASSERT_EQ(admit(m, a), 0);
  Request b("b", iota_tokens(48));
  ComputedPages hit = m.get_computed_pages(b);
  EXPECT_EQ(hit.num_computed_tokens, 0);
  ASSERT_EQ(hit.pages.size(), 1u);
  EXPECT_TRUE(hit.pages[0].empty());
  EXPECT_EQ(m.page_pool().num_cached_pages(), 0);
  EXPECT_EQ(m.prefix_cache_stats().requests(), 0);
  m.verify();
}

// ---- Rule 21: events ----

TEST(KVCacheManager, EventsReportStoredAndRemovedPages) {
  KVCacheConfig config = KVCacheConfig::single_group(4, 4, 256);  // 3 usable pages
  config.enable_kv_events = true;
  KVCacheManager m(config);
  RequestOptions opts;
  opts.lora_id = 7;
  Request a("a", iota_tokens(9), opts);
  ASSERT_EQ(admit(m, a), 0);
  std::vector<KVEvent> ev = m.take_events();
  ASSERT_EQ(ev.size(), 1u);  // one event per caching call
  EXPECT_EQ(ev[0].kind, KVEvent::Kind::kStored);
  EXPECT_FALSE(ev[0].parent_hash.has_value());
  EXPECT_EQ(ev[0].page_hashes, a.page_hashes(4));
  EXPECT_EQ(ev[0].token_ids, iota_tokens(8));
  EXPECT_EQ(ev[0].page_size, 4);
  EXPECT_EQ(ev[0].lora_id, std::optional<int64_t>(7));
  EXPECT_EQ(ev[0].group_id, 0);
  EXPECT_EQ(ev[0].page_ids, (std::vector<PageId>{1, 2}));
  // Decoding fills page 2 (index 2): one more stored event whose parent is page 1's hash.
  for (TokenId t : {50, 51, 52}) ASSERT_TRUE(decode_step(m, a, t));
  ev = m.take_events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].parent_hash, std::optional<PageHash>(a.page_hashes(4)[1]));
  EXPECT_EQ(ev[0].page_ids, std::vector<PageId>{3});
  // Free, then a new request evicts the cached pages: one removed event per page.
  m.free(a);
  Request b("b", prompt(0, 12, 900));
  ASSERT_EQ(admit(m, b), 0);
  ev = m.take_events();
  int removed = 0;
  for (const KVEvent& e : ev) removed += e.kind == KVEvent::Kind::kRemoved;
  EXPECT_EQ(removed, 3);
  EXPECT_TRUE(m.take_events().empty());
}

TEST(KVCacheManager, EventsAreOffByDefault) {
  KVCacheManager m(16, 4, 256);
  Request a("a", iota_tokens(9));
  ASSERT_EQ(admit(m, a), 0);
  EXPECT_TRUE(m.take_events().empty());
}

// ---- Queries ----

TEST(KVCacheManager, CommonPrefixPagesCountPagesHeldByEveryRunningRequest) {
  KVCacheManager m(64, 4, 256);
  Request a("a", prompt(12, 3, 100));
  Request b("b", prompt(12, 3, 200));
  Request c("c", prompt(8, 7, 300));
  ASSERT_EQ(admit(m, a), 0);
  ASSERT_EQ(admit(m, b), 12);
  ASSERT_EQ(admit(m, c), 8);
  EXPECT_EQ(m.get_num_common_prefix_pages(a, 3), std::vector<int32_t>{2});
  EXPECT_EQ(m.get_num_common_prefix_pages(a, 2), std::vector<int32_t>{0});  // page 0 held by 3
  m.free(c);
  EXPECT_EQ(m.get_num_common_prefix_pages(a, 2), std::vector<int32_t>{3});
  Request ghost("ghost", iota_tokens(4));
  EXPECT_EQ(m.get_num_common_prefix_pages(ghost, 2), std::vector<int32_t>{0});
}

TEST(KVCacheManager, ResetPrefixCacheRefusesWhilePagesAreHeld) {
  KVCacheManager m(16, 4, 256);
  Request a("a", iota_tokens(9));
  ASSERT_EQ(admit(m, a), 0);
  EXPECT_FALSE(m.reset_prefix_cache());
  EXPECT_EQ(m.page_pool().num_cached_pages(), 2);
  m.free(a);
  EXPECT_TRUE(m.reset_prefix_cache());
  EXPECT_EQ(m.page_pool().num_cached_pages(), 0);
  Request b("b", iota_tokens(9));
  EXPECT_EQ(m.get_computed_pages(b).num_computed_tokens, 0);
  m.verify();
}

TEST(KVCacheManager, UsageIsHeldOverUsablePages) {
  KVCacheManager m(11, 4, 256);
  EXPECT_EQ(m.usage(), 0.0);
  Request a("a", iota_tokens(12));
  ASSERT_EQ(admit(m, a), 0);
  EXPECT_DOUBLE_EQ(m.usage(), 0.3);
}

TEST(KVCacheManager, RequestPagesViewsTheTableWithoutCopying) {
  KVCacheManager m(16, 4, 256);
  Request a("a", iota_tokens(9));
  ASSERT_EQ(admit(m, a), 0);
  std::span<const PageId> view = m.request_pages("a", 0);
  EXPECT_EQ(std::vector<PageId>(view.begin(), view.end()), m.get_page_ids("a")[0]);
  EXPECT_TRUE(m.request_pages("nobody", 0).empty());
  EXPECT_THROW(m.request_pages("a", 1), OutOfRange);
  EXPECT_THROW(m.request_pages("a", -1), OutOfRange);
  EXPECT_THROW(m.group_manager(1), OutOfRange);
  EXPECT_EQ(m.get_page_ids("nobody"), GroupPages(1));
}

TEST(KVCacheManager, AllocateSlotsIntoReusesTheCallersBuffers) {
  KVCacheManager m(5, 4, 256);  // 4 usable
  Request a("a", iota_tokens(8));
  GroupPages out;
  ASSERT_TRUE(m.allocate_slots_into(out, a, {.num_new_tokens = 8}));
  EXPECT_EQ(out, (GroupPages{{1, 2}}));
  Request b("b", prompt(0, 12, 500));
  GroupPages keep = {{77}};
  EXPECT_FALSE(m.allocate_slots_into(keep, b, {.num_new_tokens = 12}));
  EXPECT_EQ(keep, (GroupPages{{77}}));  // left as it was
  m.verify();
}

TEST(KVCacheManager, ZeroNewTokensAllocatesNothing) {
  KVCacheManager m(16, 4, 256);
  Request a("a", iota_tokens(8));
  auto pages = m.allocate_slots(a, 0);
  ASSERT_TRUE(pages);
  EXPECT_TRUE((*pages)[0].empty());
  m.verify();
}

TEST(KVCacheManager, ManyRequestsAreTrackedAndFreedInAnyOrder) {
  KVCacheManager m(2001, 4, 64);
  std::vector<Request> reqs;
  for (int i = 0; i < 1500; ++i) reqs.emplace_back(fmt::format("req-{}", i), prompt(0, 3, 10 * i));
  for (auto& r : reqs) ASSERT_TRUE(m.allocate_slots(r, 3));
  EXPECT_EQ(m.num_requests(), 1500);
  std::vector<size_t> order(reqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(5);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<bool> live(reqs.size(), true);
  for (size_t k = 0; k < order.size(); ++k) {
    m.free(reqs[order[k]]);
    live[order[k]] = false;
    if (k % 100 == 0 || k + 1 == order.size()) {
      for (size_t i = 0; i < reqs.size(); ++i) {
        ASSERT_EQ(m.has_request(reqs[i].request_id()), live[i]) << i;
        if (live[i]) {
          ASSERT_EQ(m.request_pages(reqs[i].request_id(), 0).size(), 1u);
        }
      }
      m.verify();
    }
  }
  EXPECT_EQ(m.num_requests(), 0);
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 2000);
  // Slots are reused: the ids of new requests map to fresh tables.
  Request again("req-7", prompt(0, 9, 77));
  ASSERT_TRUE(m.allocate_slots(again, 9));
  EXPECT_EQ(m.request_pages("req-7", 0).size(), 3u);
  m.verify();
}

TEST(KVCacheManager, ManagerIsMovable) {
  KVCacheManager m(16, 4, 256);
  Request a("a", iota_tokens(8));
  ASSERT_EQ(admit(m, a), 0);
  KVCacheManager moved(std::move(m));
  EXPECT_EQ(moved.get_page_ids("a")[0], (std::vector<PageId>{1, 2}));
  moved.free(a);
  EXPECT_EQ(moved.page_pool().get_num_free_pages(), 15);
  moved.verify();
}

}  // namespace
}  // namespace pagedkv
