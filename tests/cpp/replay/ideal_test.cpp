#include <gtest/gtest.h>

#include "pagedkv/common/errors.h"
#include "pagedkv/replay/default_workload.h"
#include "pagedkv/replay/replay.h"

namespace pagedkv {
namespace {

TraceRequest req(double t, int32_t n, std::vector<uint64_t> keys) {
  return TraceRequest{
      .timestamp = t, .input_length = n, .output_length = 0, .block_keys = std::move(keys)};
}

// Block size 512 (as in Mooncake), page size 16.
//   A: 1000 tokens, keys [1, 2]     -> nothing cached yet: 0 hits; caches 62 full pages (992 t).
//   B: 1100 tokens, keys [1, 3, 4]  -> block 1 shared (32 pages), block 3 new: 32 pages = 512 t.
//   C: 1000 tokens, keys [1, 2]     -> A's 62 full pages, and (1000 - 1) // 16 = 62: 992 t.
Trace handmade_trace() {
  Trace t;
  t.block_size = 512;
  t.requests = {req(0, 1000, {1, 2}), req(1, 1100, {1, 3, 4}), req(2, 1000, {1, 2})};
  return t;
}

TEST(IdealHits, HandmadeTraceHitsWhatWasCountedByHand) {
  const IdealStats s = ideal_hits(handmade_trace(), 16);
  EXPECT_EQ(s.requests, 3);
  EXPECT_EQ(s.tokens, 3100);
  EXPECT_EQ(s.full_pages, 62 + 68 + 62);
  EXPECT_EQ(s.hit_pages, 32 + 62);
  EXPECT_EQ(s.hit_tokens, 512 + 992);
  EXPECT_DOUBLE_EQ(s.token_hit_rate(), 1504.0 / 3100.0);
  EXPECT_DOUBLE_EQ(s.page_hit_rate(), 94.0 / 192.0);
  // Allocated pages: A 63, B 69 - 32 = 37, C 63 - 62 = 1.
  EXPECT_EQ(s.unbounded_num_pages, 1 + 63 + 37 + 1);
}

TEST(IdealHits, LastPromptTokenIsAlwaysRecomputed) {
  // Two identical 1024-token prompts (64 full pages): the second hits (1024 - 1) // 16 = 63.
  Trace t;
  t.block_size = 512;
  t.requests = {req(0, 1024, {5, 6}), req(0, 1024, {5, 6})};
  const IdealStats s = ideal_hits(t, 16);
  EXPECT_EQ(s.hit_pages, 63);
  EXPECT_EQ(s.hit_tokens, 1008);
  // The second request recomputes (and re-caches) its last page: 64 + 1 pages allocated.
  EXPECT_EQ(s.unbounded_num_pages, 1 + 64 + 1);
}

TEST(IdealHits, PagesStraddlingBlocksNeedEveryBlockTheyTouch) {
  // Block size 64, page size 48: page p holds tokens [48p, 48p + 48).
  //   A: 200 tokens, keys [1, 2, 3, 4] -> caches 4 full pages (192 tokens).
  //   B: same prompt -> (200 - 1) // 48 = 4 pages hit.
  //   C: 200 tokens, keys [1, 2, 9, 10] -> page 0 (block 1), page 1 (blocks 1-2) hit; page 2
  //      ends in block 9 (new): 2 pages = 96 tokens.
  //   D: 100 tokens, keys [1, 7] -> page 0 hits; page 1 (tokens 48..95) ends in block 7: miss.
  Trace t;
  t.block_size = 64;
  t.requests = {req(0, 200, {1, 2, 3, 4}), req(1, 200, {1, 2, 3, 4}), req(2, 200, {1, 2, 9, 10}),
                req(3, 100, {1, 7})};
  const IdealStats s = ideal_hits(t, 48);
  EXPECT_EQ(s.hit_pages, 0 + 4 + 2 + 1);
  EXPECT_EQ(s.hit_tokens, 7 * 48);
}

TEST(IdealHits, AKeySeenAfterADifferentPrefixIsADifferentPage) {
  // Key 2 follows key 1 in A and key 3 in B: chained content differs, so B hits nothing.
  Trace t;
  t.block_size = 16;
  t.requests = {req(0, 48, {1, 2, 8}), req(1, 48, {3, 2, 8})};
  EXPECT_EQ(ideal_hits(t, 16).hit_tokens, 0);
}

TEST(IdealHits, MaxRequestsReplaysOnlyThePrefixOfTheTrace) {
  const Trace t = handmade_trace();
  EXPECT_EQ(ideal_hits(t, 16, 2).hit_tokens, 512);
  EXPECT_EQ(ideal_hits(t, 16, 2).requests, 2);
  EXPECT_EQ(ideal_hits(t, 16, 0).tokens, 0);
  EXPECT_EQ(ideal_hits(t, 16, 100).requests, 3);
}

TEST(IdealHits, RejectsBadArguments) {
  const Trace t = handmade_trace();
  EXPECT_THROW(ideal_hits(t, 0), InvalidArgument);
  EXPECT_THROW(ideal_hits(t, 16, -2), InvalidArgument);
  Trace broken = t;
  broken.requests[1].block_keys.pop_back();
  EXPECT_THROW(ideal_hits(broken, 16), InvalidArgument);
}

TEST(DefaultWorkload, IsDeterministicValidAndSharesPrefixes) {
  const Trace a = default_workload();
  const Trace b = default_workload();
  ASSERT_EQ(a.requests.size(), b.requests.size());
  for (size_t i = 0; i < a.requests.size(); ++i) {
    ASSERT_EQ(a.requests[i].block_keys, b.requests[i].block_keys) << i;
    ASSERT_EQ(a.requests[i].timestamp, b.requests[i].timestamp) << i;
  }
  EXPECT_NO_THROW(a.validate());
  const DefaultWorkloadOptions o;
  EXPECT_GE(a.requests.size(),
            static_cast<size_t>(o.num_single_requests + o.num_chats * o.min_turns));
  EXPECT_LE(a.requests.size(),
            static_cast<size_t>(o.num_single_requests + o.num_chats * o.max_turns));
  const IdealStats s = ideal_hits(a, 16);
  EXPECT_GT(s.token_hit_rate(), 0.5);
  EXPECT_LT(s.token_hit_rate(), 0.99);
}

TEST(DefaultWorkload, ChatTurnsExtendThePreviousTurn) {
  const Trace t =
      default_workload({.num_single_requests = 0, .num_chats = 1, .min_turns = 4, .max_turns = 4});
  ASSERT_EQ(t.requests.size(), 4u);
  for (size_t k = 1; k < 4; ++k) {
    const auto& prev = t.requests[k - 1];
    const auto& cur = t.requests[k];
    EXPECT_GT(cur.timestamp, prev.timestamp);
    EXPECT_GT(cur.input_length, prev.input_length);
    ASSERT_GE(cur.block_keys.size(), prev.block_keys.size());
    EXPECT_TRUE(std::equal(prev.block_keys.begin(), prev.block_keys.end(), cur.block_keys.begin()));
  }
  // Each turn re-hits the whole previous turn except its last token's page.
  const IdealStats s = ideal_hits(t, 16);
  int64_t expected = 0;
  for (size_t k = 1; k < 4; ++k)
    expected += std::min<int64_t>(t.requests[k - 1].input_length / 16,
                                  (t.requests[k].input_length - 1) / 16);
  EXPECT_EQ(s.hit_pages, expected);
}

TEST(DefaultWorkload, RejectsInvalidOptionsNamingTheField) {
  EXPECT_THROW(default_workload({.block_size = 0}), InvalidArgument);
  EXPECT_THROW(default_workload({.num_system_prompts = 0}), InvalidArgument);
  EXPECT_THROW(default_workload({.min_turns = 3, .max_turns = 2}), InvalidArgument);
  EXPECT_THROW(default_workload({.chat_system_prompt_fraction = 1.5}), InvalidArgument);
  EXPECT_THROW(default_workload({.arrival_rate = 0.0}), InvalidArgument);
  try {
    default_workload({.num_chats = -1});
    FAIL() << "no throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("num_chats"), std::string::npos);
  }
}

}  // namespace
}  // namespace pagedkv
