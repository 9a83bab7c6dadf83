// KVCacheConfig validation and PrefixCacheStats (rule 22's counters and windowed rate).
#include <gtest/gtest.h>

#include "pagedkv/common/errors.h"
#include "pagedkv/manager/kv_cache_config.h"
#include "pagedkv/manager/prefix_cache_stats.h"

namespace pagedkv {
namespace {

KVCacheConfig valid_config() {
  KVCacheConfig c;
  c.num_pages = 128;
  c.max_model_len = 1024;
  c.groups = {KVCacheGroupSpec::full_attention(16),
              KVCacheGroupSpec::sliding_window_attention(32, 256)};
  return c;
}

TEST(KVCacheConfig, ValidConfigPassesAndReportsLcm) {
  KVCacheConfig c = valid_config();
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.lcm_page_size(), 32);
  EXPECT_EQ(c.num_usable_pages(), 127);
  c.groups.push_back(KVCacheGroupSpec::full_attention(12));
  EXPECT_EQ(c.lcm_page_size(), 96);
}

TEST(KVCacheConfig, EachBadFieldIsNamedInTheError) {
  auto expect_bad = [](KVCacheConfig c, const std::string& field) {
    try {
      c.validate();
      ADD_FAILURE() << "expected InvalidArgument for " << field;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  KVCacheConfig c = valid_config();
  c.num_pages = 1;
  expect_bad(c, "num_pages");
  c = valid_config();
  c.max_model_len = 0;
  expect_bad(c, "max_model_len");
  c = valid_config();
  c.max_model_len = KVCacheConfig::kMaxModelLen + 1;
  expect_bad(c, "max_model_len");
  c = valid_config();
  c.groups.clear();
  expect_bad(c, "groups");
  c = valid_config();
  c.groups[0].page_size = 0;
  expect_bad(c, "page_size");
  c = valid_config();
  c.groups[0].sliding_window = 8;  // full attention with a window
  expect_bad(c, "sliding_window");
  c = valid_config();
  c.groups[1].sliding_window = 0;  // sliding window without one
  expect_bad(c, "sliding_window");
  c = valid_config();
  c.num_speculative_tokens = -1;
  expect_bad(c, "num_speculative_tokens");
  c = valid_config();
  c.groups = {KVCacheGroupSpec::full_attention(KVCacheConfig::kMaxPageSize),
              KVCacheGroupSpec::full_attention(KVCacheConfig::kMaxPageSize - 1),
              KVCacheGroupSpec::full_attention(KVCacheConfig::kMaxPageSize - 3)};
  expect_bad(c, "lcm");
}

TEST(KVCacheConfig, AttentionKindNamesRoundTrip) {
  for (AttentionKind k : {AttentionKind::kFullAttention, AttentionKind::kSlidingWindow}) {
    EXPECT_EQ(parse_attention_kind(attention_kind_name(k)), k);
  }
  EXPECT_THROW(parse_attention_kind("mamba"), InvalidArgument);
}

TEST(PrefixCacheStats, CountsFreshAndResumedLookupsSeparately) {
  PrefixCacheStats s;
  s.record(100, 40, false);
  s.record(50, 0, false);
  s.record(80, 80, true);
  EXPECT_EQ(s.requests(), 2);
  EXPECT_EQ(s.queries(), 150);
  EXPECT_EQ(s.hits(), 40);
  EXPECT_EQ(s.resumed_requests(), 1);
  EXPECT_EQ(s.resumed_queries(), 80);
  EXPECT_EQ(s.resumed_hits(), 80);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 40.0 / 150.0);
  EXPECT_DOUBLE_EQ(s.resumed_hit_rate(), 1.0);
  EXPECT_EQ(s.window_size(), 2);
  s.verify();
}

TEST(PrefixCacheStats, RatesAreZeroBeforeAnyQuery) {
  PrefixCacheStats s;
  EXPECT_EQ(s.hit_rate(), 0.0);
  EXPECT_EQ(s.windowed_hit_rate(), 0.0);
  EXPECT_EQ(s.resumed_hit_rate(), 0.0);
  EXPECT_EQ(s.window_capacity(), 1000);
}

TEST(PrefixCacheStats, WindowKeepsOnlyTheLatestRequests) {
  PrefixCacheStats s(3);
  s.record(10, 10, false);  // leaves the window below
  s.record(10, 0, false);
  s.record(10, 0, false);
  EXPECT_DOUBLE_EQ(s.windowed_hit_rate(), 10.0 / 30.0);
  s.record(10, 5, false);
  s.record(20, 20, true);  // resumed: not in the window
  EXPECT_EQ(s.window_size(), 3);
  EXPECT_EQ(s.window_queries(), 30);
  EXPECT_EQ(s.window_hits(), 5);
  EXPECT_DOUBLE_EQ(s.windowed_hit_rate(), 5.0 / 30.0);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 15.0 / 40.0);  // the lifetime rate keeps everything
  s.verify();
  for (int i = 0; i < 10; ++i) {
    s.record(4, i % 5, false);
    s.verify();
  }
}

TEST(PrefixCacheStats, WindowMatchesANaiveRecomputation) {
  PrefixCacheStats s(7);
  std::vector<std::pair<int, int>> all;
  uint32_t x = 12345;
  for (int i = 0; i < 200; ++i) {
    x = x * 1664525u + 1013904223u;
    const int q = static_cast<int>(x % 100);
    const int h = q == 0 ? 0 : static_cast<int>((x >> 8) % static_cast<uint32_t>(q + 1));
    s.record(q, h, false);
    all.emplace_back(q, h);
    int64_t wq = 0, wh = 0;
    for (size_t j = all.size() > 7 ? all.size() - 7 : 0; j < all.size(); ++j) {
      wq += all[j].first;
      wh += all[j].second;
    }
    ASSERT_EQ(s.window_queries(), wq);
    ASSERT_EQ(s.window_hits(), wh);
  }
}

TEST(PrefixCacheStats, BadRecordIsRejectedAndChangesNothing) {
  PrefixCacheStats s(4);
  s.record(10, 3, false);
  auto same = [&] {
    EXPECT_EQ(s.requests(), 1);
    EXPECT_EQ(s.queries(), 10);
    EXPECT_EQ(s.hits(), 3);
    EXPECT_EQ(s.window_size(), 1);
    s.verify();
  };
  EXPECT_THROW(s.record(-1, 0, false), InvalidArgument);
  same();
  EXPECT_THROW(s.record(5, 6, false), InvalidArgument);
  same();
  EXPECT_THROW(s.record(5, -1, true), InvalidArgument);
  same();
  EXPECT_THROW(PrefixCacheStats(0), InvalidArgument);
}

TEST(PrefixCacheStats, ResetZeroesEverythingAndKeepsTheCapacity) {
  PrefixCacheStats s(5);
  s.record(10, 3, false);
  s.record(10, 3, true);
  s.reset();
  EXPECT_EQ(s.requests(), 0);
  EXPECT_EQ(s.resumed_requests(), 0);
  EXPECT_EQ(s.window_size(), 0);
  EXPECT_EQ(s.window_capacity(), 5);
  s.verify();
}

}  // namespace
}  // namespace pagedkv
