// The seed-004 writes through PagedAttentionMetadata, and the metadata itself: byte for byte
// against the naive writer for every combination, and typed errors that change nothing.
#include "pagedkv/compat/metadata_write.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "kv_cache/kv_test_util.h"
#include "kv_cache/write_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/common/types.h"

namespace pagedkv {
namespace {

using testing::CacheBytes;
using testing::for_each_combo;
using testing::HostTokens;
using testing::kHeads;
using testing::make_cache;
using testing::naive_for;
using testing::NaiveWriter;
using testing::WriteCombo;
using ErrorFixture = testing::WriteErrorFixture;

TEST(WritePrefill, WritesPositionsZeroToLengthThroughThePageTableAndSkipsPadding) {
  std::mt19937 rng(2);
  for_each_combo([&](const WriteCombo& c) {
    SCOPED_TRACE(describe(c));
    const int64_t num_pages = cdiv(64, c.page_size) + 3;
    PagedKVCache cache = make_cache(c, num_pages);
    testing::fill_sentinel(cache, rng);
    const int32_t padded = 64;
    const int32_t len = std::uniform_int_distribution<int32_t>(1, padded)(rng);
    std::vector<PageId> pages(static_cast<size_t>(num_pages));
    std::iota(pages.begin(), pages.end(), 0);
    std::shuffle(pages.begin(), pages.end(), rng);
    pages.resize(static_cast<size_t>(cdiv(padded, c.page_size)));
    std::vector<int32_t> positions(padded);
    std::iota(positions.begin(), positions.end(), 0);
    const auto md = PagedAttentionMetadata::prefill(len, positions, pages);
    const HostTokens key = testing::random_tokens(rng, c.input_dtype, padded, kHeads, c.dim);
    const HostTokens value = testing::random_tokens(rng, c.input_dtype, padded, kHeads, c.dim);
    CacheBytes want = testing::snapshot(cache);
    const NaiveWriter naive = naive_for(cache);
    for (int32_t i = 0; i < len; ++i) {
      naive.write_token(
          want, key, value, i,
          int64_t{pages[static_cast<size_t>(i / c.page_size)]} * c.page_size + i % c.page_size);
    }
    write_prefill_to_cache(cache.view(0), key.tensor(), value.tensor(), md);
    ASSERT_TRUE(testing::snapshot(cache) == want);
  });
}

TEST(WriteDecodes, WritesOneTokenPerRowAtItsPositionAndSkipsNegativePositions) {
  std::mt19937 rng(3);
  for_each_combo([&](const WriteCombo& c) {
    SCOPED_TRACE(describe(c));
    const int32_t cols = 3;
    const int64_t num_pages = 8;
    PagedKVCache cache = make_cache(c, num_pages);
    testing::fill_sentinel(cache, rng);
    const int32_t batch = 6;
    std::vector<int32_t> positions(batch);
    std::vector<PageId> table(static_cast<size_t>(batch * cols));
    std::uniform_int_distribution<int32_t> pos(0, cols * c.page_size - 1);
    std::uniform_int_distribution<PageId> page(0, static_cast<PageId>(num_pages - 1));
    for (auto& p : positions) p = pos(rng);
    for (auto& p : table) p = page(rng);
    positions[2] = -1;
    const auto md = PagedAttentionMetadata::decode(positions, table, cols);
    const HostTokens key = testing::random_tokens(rng, c.input_dtype, batch, kHeads, c.dim);
    const HostTokens value = testing::random_tokens(rng, c.input_dtype, batch, kHeads, c.dim);
    CacheBytes want = testing::snapshot(cache);
    const NaiveWriter naive = naive_for(cache);
    for (int32_t b = 0; b < batch; ++b) {
      const int32_t p = positions[static_cast<size_t>(b)];
      if (p < 0) continue;
      const PageId pg = table[static_cast<size_t>(b * cols + p / c.page_size)];
      naive.write_token(want, key, value, b, int64_t{pg} * c.page_size + p % c.page_size);
    }
    write_decodes_to_cache(cache.view(0), key.tensor(), value.tensor(), md);
    ASSERT_TRUE(testing::snapshot(cache) == want);
  });
}

// Prefills longer than one chunk of write_slots calls (512 tokens), in pages long enough for
// head-by-head runs and in pages of 16, still match the naive loop byte for byte.
TEST(WritePrefill, LongPrefillsMatchTheNaiveLoopAcrossChunks) {
  std::mt19937 rng(6);
  for (const int32_t ps : {16, 128}) {
    for (const DType cd : {DType::kBFloat16, DType::kInt8}) {
      const WriteCombo c{KVLayout::kHND, cd, DType::kBFloat16, ps, 64};
      SCOPED_TRACE(testing::describe(c));
      const int32_t padded = 1300, len = 1283;
      const int64_t num_pages = cdiv(padded, ps) + 2;
      PagedKVCache cache = make_cache(c, num_pages);
      testing::fill_sentinel(cache, rng);
      std::vector<PageId> pages(static_cast<size_t>(num_pages));
      std::iota(pages.begin(), pages.end(), 0);
      std::shuffle(pages.begin(), pages.end(), rng);
      pages.resize(static_cast<size_t>(cdiv(padded, ps)));
      std::vector<int32_t> positions(padded);
      std::iota(positions.begin(), positions.end(), 0);
      const auto md = PagedAttentionMetadata::prefill(len, positions, pages);
      const HostTokens key = testing::random_tokens(rng, c.input_dtype, padded, kHeads, c.dim);
      const HostTokens value = testing::random_tokens(rng, c.input_dtype, padded, kHeads, c.dim);
      CacheBytes want = testing::snapshot(cache);
      const NaiveWriter naive = naive_for(cache);
      for (int32_t i = 0; i < len; ++i) {
        naive.write_token(want, key, value, i,
                          int64_t{pages[static_cast<size_t>(i / ps)]} * ps + i % ps);
      }
      write_prefill_to_cache(cache.view(0), key.tensor(), value.tensor(), md);
      ASSERT_TRUE(testing::snapshot(cache) == want);
    }
  }
}

// ---- errors: typed, and nothing written ------------------------------------------------

TEST_F(ErrorFixture, WritePrefillRejectsShortOrOutOfRangePageTables) {
  std::vector<int32_t> positions(4);
  std::iota(positions.begin(), positions.end(), 0);
  // 4 tokens need 1 page of 16; an empty table is too short.
  EXPECT_THROW(write_prefill_to_cache(cache.view(0), key.tensor(), value.tensor(),
                                      PagedAttentionMetadata::prefill(4, positions, {})),
               OutOfRange);
  EXPECT_THROW(write_prefill_to_cache(cache.view(0), key.tensor(), value.tensor(),
                                      PagedAttentionMetadata::prefill(4, positions, {6})),
               OutOfRange);
  EXPECT_THROW(write_prefill_to_cache(cache.view(0), key.tensor(), value.tensor(),
                                      PagedAttentionMetadata::prefill(4, positions, {-1})),
               OutOfRange);
  // Padded length must equal the prefill positions.
  EXPECT_THROW(write_prefill_to_cache(cache.view(0), key.tensor(), value.tensor(),
                                      PagedAttentionMetadata::prefill(2, {0, 1, 2}, {1})),
               InvalidArgument);
  EXPECT_THROW(
      write_prefill_to_cache(cache.view(0), key.tensor(), value.tensor(),
                             PagedAttentionMetadata::decode({0, 1, 2, 3}, {1, 1, 1, 1}, 1)),
      InvalidArgument);
  expect_unchanged();
}

TEST_F(ErrorFixture, WriteDecodesRejectsPositionsPastTheTableAndBadPageIds) {
  // Row 3's position needs column 1 of a 1-column table; rows 0..2 are valid.
  EXPECT_THROW(
      write_decodes_to_cache(cache.view(0), key.tensor(), value.tensor(),
                             PagedAttentionMetadata::decode({0, 1, 2, 16}, {1, 2, 3, 4}, 1)),
      OutOfRange);
  EXPECT_THROW(
      write_decodes_to_cache(cache.view(0), key.tensor(), value.tensor(),
                             PagedAttentionMetadata::decode({0, 1, 2, 3}, {1, 2, 3, 6}, 1)),
      OutOfRange);
  EXPECT_THROW(write_decodes_to_cache(cache.view(0), key.tensor(), value.tensor(),
                                      PagedAttentionMetadata::decode({0, 1, 2}, {1, 2, 3}, 1)),
               InvalidArgument);
  std::vector<int32_t> positions(4);
  EXPECT_THROW(write_decodes_to_cache(cache.view(0), key.tensor(), value.tensor(),
                                      PagedAttentionMetadata::prefill(4, positions, {1})),
               InvalidArgument);
  expect_unchanged();
}

// ---- PagedAttentionMetadata -------------------------------------------------------------

TEST(PagedAttentionMetadata, ModesFollowWhichPartsArePresent) {
  EXPECT_TRUE(PagedAttentionMetadata::init_empty().is_empty());
  const auto pre = PagedAttentionMetadata::prefill(3, {0, 1, 2, 3}, {7});
  EXPECT_TRUE(pre.is_prefill_mode());
  EXPECT_FALSE(pre.is_decode_mode());
  EXPECT_FALSE(pre.is_mixed_mode());
  const auto dec = PagedAttentionMetadata::decode({4, -1}, {1, 2, 3, 4}, 2);
  EXPECT_TRUE(dec.is_decode_mode());
  EXPECT_EQ(dec.decodes_page(1, 0), 3);
  EXPECT_EQ(dec.decodes_batch_size(), 2);
  const PagedAttentionMetadata mixed(2, {0, 1}, {5}, {9}, {1, 2}, 2);
  EXPECT_TRUE(mixed.is_mixed_mode());
  EXPECT_FALSE(mixed.is_prefill_mode());
}

TEST(PagedAttentionMetadata, ConstructionRejectsInconsistentParts) {
  EXPECT_THROW(PagedAttentionMetadata::prefill(-1, {0}, {}), InvalidArgument);
  EXPECT_THROW(PagedAttentionMetadata::prefill(3, {0, 1}, {1}), InvalidArgument);
  EXPECT_THROW(PagedAttentionMetadata::prefill(0, {}, {}), InvalidArgument);
  EXPECT_THROW(PagedAttentionMetadata::decode({1, 2}, {1, 2, 3}, 2), InvalidArgument);
  EXPECT_THROW(PagedAttentionMetadata::decode({1}, {}, 0), InvalidArgument);
  EXPECT_THROW(PagedAttentionMetadata::decode({}, {}, 1), InvalidArgument);
  EXPECT_THROW(PagedAttentionMetadata(0, {}, {3}, {}, {}, 0), InvalidArgument);
  EXPECT_THROW(PagedAttentionMetadata(0, {}, {}, {}, {3}, 1), InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
