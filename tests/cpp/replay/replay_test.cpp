#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/replay/default_workload.h"
#include "pagedkv/replay/replay.h"

namespace pagedkv {
namespace {

TraceRequest req(double t, int32_t n, std::vector<uint64_t> keys) {
  return TraceRequest{
      .timestamp = t, .input_length = n, .output_length = 0, .block_keys = std::move(keys)};
}

ReplayResult run(const Trace& t, int32_t num_pages, int32_t page_size = 16,
                 HashAlgorithm hash = HashAlgorithm::kXxh3_128) {
  return replay(
      t, ReplayOptions{.page_size = page_size, .num_pages = num_pages, .hash_algorithm = hash});
}

Trace small_workload() {
  return default_workload({.num_system_prompts = 3,
                           .min_system_prompt_blocks = 8,
                           .max_system_prompt_blocks = 40,
                           .num_single_requests = 120,
                           .max_user_tokens = 300,
                           .num_chats = 15,
                           .max_turns = 6,
                           .max_answer_tokens = 300});
}

// Block size = page size = 16, so one key is one page. Pool of 5 pages (4 usable). Free queue
// (head first) after each request, h<k> = the cached hash of the chain ending in key k:
//   A  48 t [1,2,3]     0 hits; takes 1,2,3, caches h1 h2 h3     -> [4, 3, 2, 1]
//   B  48 t [1,2,3]     hits pages 1,2 (rule 16: (48-1)//16 = 2); takes 4 and caches h3 on it
//                       too (two pages hold h3)                     -> [3, 4, 2, 1]
//   C  64 t [5,6,7,8]   0 hits; takes 3,4,2,1: 4 evictions         -> [1, 2, 4, 3] (h8 h7 h6 h5)
//   D  48 t [1,2,3]     0 hits; takes 1,2,4: 3 evictions            -> [3, 4, 2, 1] (h5 h3 h2 h1)
//   E  80 t             5 pages > 4 usable: rejected
//   F  33 t [5,6,9]     hits page 3 (h5); h6 was evicted: 16 tokens; takes 4,2: 2 evictions
Trace lru_trace() {
  Trace t;
  t.block_size = 16;
  t.requests = {req(0, 48, {1, 2, 3}),
                req(1, 48, {1, 2, 3}),
                req(2, 64, {5, 6, 7, 8}),
                req(3, 48, {1, 2, 3}),
                req(4, 80, {10, 11, 12, 13, 14}),
                req(5, 33, {5, 6, 9})};
  return t;
}

TEST(Replay, TinyPoolFollowsLruEvictionAsCountedByHand) {
  const ReplayResult r = run(lru_trace(), 5);
  EXPECT_EQ(r.requests, 6);
  EXPECT_EQ(r.rejected, 1);
  EXPECT_EQ(r.tokens, 48 + 48 + 64 + 48 + 80 + 33);
  EXPECT_EQ(r.full_pages, 3 + 3 + 4 + 3 + 5 + 2);
  EXPECT_EQ(r.hit_tokens, 32 + 16);
  EXPECT_EQ(r.hit_pages, 3);
  EXPECT_EQ(r.evictions, 4 + 3 + 2);
  EXPECT_DOUBLE_EQ(r.token_hit_rate(), 48.0 / 321.0);
  EXPECT_DOUBLE_EQ(r.page_hit_rate(), 3.0 / 20.0);
  // Unbounded: B 2 pages, D 2 pages, F 2 pages (C's h5 h6).
  EXPECT_EQ(r.ideal.hit_tokens, 96);
  EXPECT_GE(r.seconds, 0.0);
}

TEST(Replay, HandmadeMooncakeLikeTraceHitsWhatWasCountedByHand) {
  // Block size 512: A [1,2] 1000 t, B [1,3,4] 1100 t (shares block 1), C [1,2] 1000 t.
  Trace t;
  t.block_size = 512;
  t.requests = {req(0, 1000, {1, 2}), req(1, 1100, {1, 3, 4}), req(2, 1000, {1, 2})};
  const ReplayResult r = run(t, 1024);
  EXPECT_EQ(r.hit_tokens, 512 + 992);
  EXPECT_EQ(r.evictions, 0);
  EXPECT_EQ(r.rejected, 0);
  // 69 usable pages, one request's worth (cdiv(1100, 16) = 69): B hits A's block-1 pages and
  // takes 37 new ones - the 6 never used, A's partial page, then A's block-2 pages (30
  // evictions). C then finds block 1 (held through B, freed last) but not block 2: 512 again;
  // its 31 new pages are B's partial page and 30 of B's cached pages (30 more evictions).
  const ReplayResult tight = run(t, 70);
  EXPECT_EQ(tight.hit_tokens, 512 + 512);
  EXPECT_EQ(tight.evictions, 30 + 30);
  EXPECT_LE(tight.hit_tokens, tight.ideal.hit_tokens);
}

TEST(Replay, UnboundedCapacityNeverEvictsAndEqualsTheIdeal) {
  for (const Trace& t : {lru_trace(), small_workload()}) {
    for (int32_t page_size : {16, 32, 48}) {
      const IdealStats ideal = ideal_hits(t, page_size);
      const ReplayResult r = run(t, static_cast<int32_t>(ideal.unbounded_num_pages), page_size);
      EXPECT_EQ(r.evictions, 0) << page_size;
      EXPECT_EQ(r.rejected, 0) << page_size;
      EXPECT_EQ(r.hit_tokens, ideal.hit_tokens) << page_size;
      EXPECT_EQ(r.hit_pages, ideal.hit_pages) << page_size;
      EXPECT_EQ(r.full_pages, ideal.full_pages) << page_size;
    }
  }
}

TEST(Replay, HitsNeverExceedTheIdealAndReachItWhenNothingIsEvicted) {
  const Trace t = small_workload();
  const IdealStats ideal = ideal_hits(t, 16);
  ASSERT_GT(ideal.hit_tokens, 0);
  for (int32_t num_pages : {64, 256, 1024, 4096, 16384, 65536}) {
    const ReplayResult r = run(t, num_pages);
    EXPECT_LE(r.hit_tokens, ideal.hit_tokens) << num_pages;
    EXPECT_EQ(r.ideal.hit_tokens, ideal.hit_tokens);
    if (r.evictions == 0 && r.rejected == 0) {
      EXPECT_EQ(r.hit_tokens, ideal.hit_tokens) << num_pages;
    }
  }
}

TEST(Replay, RepeatedPromptHitsAtEveryCapacityThatHoldsIt) {
  // One 100-token prompt ten times: 7 pages each; every repeat hits (100 - 1) // 16 = 6 pages.
  Trace t;
  t.block_size = 16;
  for (int i = 0; i < 10; ++i) t.requests.push_back(req(i, 100, {1, 2, 3, 4, 5, 6, 7}));
  for (int32_t num_pages : {8, 9, 12, 100}) {
    const ReplayResult r = run(t, num_pages);
    EXPECT_EQ(r.hit_tokens, 9 * 96) << num_pages;
    EXPECT_EQ(r.rejected, 0);
  }
  EXPECT_EQ(run(t, 7).rejected, 10);  // 6 usable pages < 7
  EXPECT_EQ(run(t, 7).hit_tokens, 0);
}

TEST(Replay, DistinctPromptsNeverHitAtAnyCapacity) {
  Trace t;
  t.block_size = 16;
  for (uint64_t i = 0; i < 20; ++i) t.requests.push_back(req(0, 40, {3 * i, 3 * i + 1, 3 * i + 2}));
  for (int32_t num_pages : {4, 10, 100}) {
    const ReplayResult r = run(t, num_pages);
    EXPECT_EQ(r.hit_tokens, 0);
    EXPECT_EQ(r.rejected, 0);
  }
}

TEST(Replay, HashAlgorithmDoesNotChangeHits) {
  const Trace t = small_workload();
  const ReplayResult x = run(t, 2048, 16, HashAlgorithm::kXxh3_128);
  const ReplayResult s = run(t, 2048, 16, HashAlgorithm::kSha256);
  EXPECT_EQ(x.hit_tokens, s.hit_tokens);
  EXPECT_EQ(x.evictions, s.evictions);
  EXPECT_EQ(s.hash_algorithm, HashAlgorithm::kSha256);
}

TEST(Replay, MaxRequestsReplaysTheFirstRequestsOnly) {
  const Trace t = lru_trace();
  const ReplayResult r =
      replay(t, ReplayOptions{.page_size = 16, .num_pages = 5, .max_requests = 2});
  EXPECT_EQ(r.requests, 2);
  EXPECT_EQ(r.tokens, 96);
  EXPECT_EQ(r.hit_tokens, 32);
  EXPECT_EQ(r.ideal.requests, 2);
}

TEST(Replay, ProgressReportsMonotoneCountsEndingAtTheTotal) {
  const Trace t = small_workload();
  std::vector<std::pair<int64_t, int64_t>> calls;
  ReplayOptions o{.page_size = 16, .num_pages = 4096};
  o.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  replay(t, o);
  ASSERT_FALSE(calls.empty());
  const auto total = static_cast<int64_t>(t.requests.size());
  EXPECT_EQ(calls.back(), std::make_pair(total, total));
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_LE(calls[i - 1].first, calls[i].first);
}

TEST(Replay, RejectsBadOptionsAndLeavesTheTraceUnchanged) {
  const Trace t = lru_trace();
  const Trace before = t;
  EXPECT_THROW(replay(t, ReplayOptions{.page_size = 0, .num_pages = 10}), InvalidArgument);
  EXPECT_THROW(replay(t, ReplayOptions{.page_size = 16, .num_pages = 1}), InvalidArgument);
  EXPECT_THROW(replay(t, ReplayOptions{.page_size = 16, .num_pages = 10, .max_requests = -2}),
               InvalidArgument);
  Trace broken = t;
  broken.requests[0].block_keys.clear();
  EXPECT_THROW(run(broken, 10), InvalidArgument);
  ASSERT_EQ(t.requests.size(), before.requests.size());
  for (size_t i = 0; i < t.requests.size(); ++i) {
    EXPECT_EQ(t.requests[i].block_keys, before.requests[i].block_keys);
  }
  // Still usable afterwards.
  EXPECT_EQ(run(t, 5).hit_tokens, 48);
}

TEST(Replay, JsonHoldsEveryReportedField) {
  const ReplayResult r = run(lru_trace(), 5);
  const auto j = nlohmann::json::parse(replay_result_json(r));
  EXPECT_EQ(j["num_pages"], 5);
  EXPECT_EQ(j["page_size"], 16);
  EXPECT_EQ(j["capacity_tokens"], 64);
  EXPECT_EQ(j["hash"], "xxh3_128");
  EXPECT_EQ(j["requests"], 6);
  EXPECT_EQ(j["rejected"], 1);
  EXPECT_EQ(j["tokens"], 321);
  EXPECT_EQ(j["full_pages"], 20);
  EXPECT_EQ(j["hit_tokens"], 48);
  EXPECT_EQ(j["hit_pages"], 3);
  EXPECT_DOUBLE_EQ(j["token_hit_rate"].get<double>(), 48.0 / 321.0);
  EXPECT_DOUBLE_EQ(j["page_hit_rate"].get<double>(), 3.0 / 20.0);
  EXPECT_EQ(j["evictions"], 9);
  EXPECT_TRUE(j["seconds"].is_number());
  EXPECT_EQ(j["ideal_hit_tokens"], 96);
  EXPECT_DOUBLE_EQ(j["ideal_token_hit_rate"].get<double>(), 96.0 / 321.0);
  EXPECT_TRUE(j["ideal_page_hit_rate"].is_number());
  EXPECT_EQ(j["ideal_unbounded_num_pages"], r.ideal.unbounded_num_pages);
}

}  // namespace
}  // namespace pagedkv
