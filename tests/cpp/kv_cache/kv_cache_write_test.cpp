#include "pagedkv/kv_cache/kv_cache_write.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "kv_cache/kv_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/common/types.h"

namespace pagedkv {
namespace {

using testing::CacheBytes;
using testing::HostTokens;
using testing::NaiveWriter;

struct Combo {
  KVLayout layout;
  DType cache_dtype;
  DType input_dtype;
  int32_t page_size;
  int32_t dim;
};

std::string describe(const Combo& c) {
  return fmt::format("{} cache={} input={} page_size={} dim={}", kv_layout_name(c.layout),
                     dtype_name(c.cache_dtype), dtype_name(c.input_dtype), c.page_size, c.dim);
}

template <class Fn>
void for_each_combo(Fn fn) {
  for (KVLayout layout : testing::kLayouts) {
    for (DType cd : testing::kAllCacheDtypes) {
      for (DType in : testing::kInputDtypes) {
        for (int32_t ps : testing::kPageSizes) {
          for (int32_t dim : {24, 64}) fn(Combo{layout, cd, in, ps, dim});
        }
      }
    }
  }
}

constexpr int32_t kHeads = 2;

PagedKVCache make_cache(const Combo& c, int64_t num_pages) {
  PagedKVCache cache(
      testing::small_metadata(c.layout, c.cache_dtype, c.page_size, num_pages, kHeads, c.dim));
  if (c.cache_dtype == DType::kFp8E4M3) cache.set_fp8_scales(0.5f, 2.0f);
  return cache;
}

NaiveWriter naive_for(const PagedKVCache& cache) {
  return NaiveWriter{cache.metadata(), cache.k_scale(), cache.v_scale()};
}

TEST(WriteSlots, MatchesANaiveLoopByteForByteForEveryLayoutDtypeAndPageSize) {
  std::mt19937 rng(1);
  for_each_combo([&](const Combo& c) {
    SCOPED_TRACE(describe(c));
    PagedKVCache cache = make_cache(c, std::max<int64_t>(4, 96 / c.page_size + 1));
    testing::fill_sentinel(cache, rng);
    const int64_t tokens = 37;
    const HostTokens key = testing::random_tokens(rng, c.input_dtype, tokens, kHeads, c.dim);
    const HostTokens value = testing::random_tokens(rng, c.input_dtype, tokens, kHeads, c.dim);
    std::uniform_int_distribution<int64_t> pick(0, cache.num_slots() - 1);
    std::vector<int64_t> slots(tokens);
    for (auto& s : slots) s = pick(rng);
    slots[3] = -1;          // padding
    slots[9] = -7;          // any negative skips
    slots[20] = slots[11];  // duplicate: the later token wins
    CacheBytes want = testing::snapshot(cache);
    const NaiveWriter naive = naive_for(cache);
    for (int64_t t = 0; t < tokens; ++t) {
      if (slots[t] >= 0) naive.write_token(want, key, value, t, slots[t]);
    }
    write_slots(cache.view(0), key.tensor(), value.tensor(), slots);
    ASSERT_TRUE(testing::snapshot(cache) == want);
    cache.verify();
  });
}

// Slot mappings made of runs of consecutive slots (as prefills produce) that
// start mid-page, cross page ends, are cut by padding, and rewrite slots of
// earlier runs (the later token wins).
TEST(WriteSlots, RunsOfConsecutiveSlotsMatchANaiveLoopByteForByte) {
  std::mt19937 rng(11);
  for_each_combo([&](const Combo& c) {
    SCOPED_TRACE(describe(c));
    PagedKVCache cache = make_cache(c, std::max<int64_t>(6, 300 / c.page_size + 2));
    testing::fill_sentinel(cache, rng);
    std::vector<int64_t> slots;
    std::uniform_int_distribution<int64_t> start(0, cache.num_slots() - 1);
    std::uniform_int_distribution<int64_t> length(1, 2 * int64_t{c.page_size} + 3);
    while (slots.size() < 200) {
      const int64_t s0 = start(rng);
      const int64_t n = std::min(length(rng), cache.num_slots() - s0);
      for (int64_t i = 0; i < n; ++i) slots.push_back(s0 + i);
    }
    slots[7] = -1;               // padding inside a run
    slots[40] = slots[39];       // a slot repeated right after itself
    slots[150] = slots[10] + 1;  // rewrites a slot an earlier run wrote
    if (slots[150] >= cache.num_slots()) slots[150] = slots[10];
    const auto tokens = static_cast<int64_t>(slots.size());
    const HostTokens key = testing::random_tokens(rng, c.input_dtype, tokens, kHeads, c.dim);
    const HostTokens value = testing::random_tokens(rng, c.input_dtype, tokens, kHeads, c.dim);
    CacheBytes want = testing::snapshot(cache);
    const NaiveWriter naive = naive_for(cache);
    for (int64_t t = 0; t < tokens; ++t) {
      if (slots[static_cast<size_t>(t)] >= 0) {
        naive.write_token(want, key, value, t, slots[static_cast<size_t>(t)]);
      }
    }
    write_slots(cache.view(0), key.tensor(), value.tensor(), slots);
    ASSERT_TRUE(testing::snapshot(cache) == want);
    cache.verify();
  });
}

// Page-long runs of an HND cache with pages of 256 slots and 1 KiB tokens are
// written head by head in several chunks of tokens; the bytes still match the
// naive loop.
TEST(WriteSlots, LongRunsInLargePagesMatchANaiveLoopByteForByte) {
  std::mt19937 rng(12);
  for (DType cd : {DType::kFloat32, DType::kBFloat16}) {
    SCOPED_TRACE(dtype_name(cd));
    const int32_t heads = 4, dim = cd == DType::kFloat32 ? 64 : 128, ps = 256;
    PagedKVCache cache(testing::small_metadata(KVLayout::kHND, cd, ps, 4, heads, dim));
    testing::fill_sentinel(cache, rng);
    std::vector<int64_t> slots;
    for (int64_t i = 0; i < ps; ++i) slots.push_back(2 * ps + i);  // page 2, whole
    for (int64_t i = 5; i < 100; ++i) slots.push_back(i);          // page 0, from offset 5
    const auto tokens = static_cast<int64_t>(slots.size());
    const HostTokens key = testing::random_tokens(rng, cd, tokens, heads, dim);
    const HostTokens value = testing::random_tokens(rng, cd, tokens, heads, dim);
    CacheBytes want = testing::snapshot(cache);
    const NaiveWriter naive = naive_for(cache);
    for (int64_t t = 0; t < tokens; ++t) {
      naive.write_token(want, key, value, t, slots[static_cast<size_t>(t)]);
    }
    write_slots(cache.view(0), key.tensor(), value.tensor(), slots);
    ASSERT_TRUE(testing::snapshot(cache) == want);
    cache.verify();
  }
}

TEST(WritePrefill, WritesPositionsZeroToLengthThroughThePageTableAndSkipsPadding) {
  std::mt19937 rng(2);
  for_each_combo([&](const Combo& c) {
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
  for_each_combo([&](const Combo& c) {
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

// ---- errors: typed, and nothing written ------------------------------------------------

struct ErrorFixture : ::testing::Test {
  std::mt19937 rng{4};
  PagedKVCache cache{testing::small_metadata(KVLayout::kHND, DType::kBFloat16, 16, 6, kHeads, 32)};
  HostTokens key = testing::random_tokens(rng, DType::kFloat32, 4, kHeads, 32);
  HostTokens value = testing::random_tokens(rng, DType::kFloat32, 4, kHeads, 32);
  CacheBytes before;

  void SetUp() override {
    testing::fill_sentinel(cache, rng);
    before = testing::snapshot(cache);
  }
  void expect_unchanged() {
    EXPECT_TRUE(testing::snapshot(cache) == before);
    cache.verify();
  }
};

TEST_F(ErrorFixture, WriteSlotsRejectsASlotPastTheCacheBeforeWritingEarlierTokens) {
  const std::vector<int64_t> slots = {0, 5, 17, cache.num_slots()};
  try {
    write_slots(cache.view(0), key.tensor(), value.tensor(), slots);
    FAIL() << "no throw";
  } catch (const OutOfRange& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(cache.num_slots())), std::string::npos);
  }
  expect_unchanged();
}

TEST_F(ErrorFixture, WriteSlotsRejectsMismatchedShapesAndDtypes) {
  const std::vector<int64_t> slots = {0, 1, 2, 3};
  const std::vector<int64_t> three = {0, 1, 2};
  EXPECT_THROW(write_slots(cache.view(0), key.tensor(), value.tensor(), three), InvalidArgument);
  HostTokens wrong_heads = testing::random_tokens(rng, DType::kFloat32, 4, kHeads + 1, 32);
  EXPECT_THROW(write_slots(cache.view(0), wrong_heads.tensor(), value.tensor(), slots),
               InvalidArgument);
  HostTokens wrong_dim = testing::random_tokens(rng, DType::kFloat32, 4, kHeads, 16);
  EXPECT_THROW(write_slots(cache.view(0), key.tensor(), wrong_dim.tensor(), slots),
               InvalidArgument);
  HostTokens int8_in = testing::random_tokens(rng, DType::kInt8, 4, kHeads, 32);
  EXPECT_THROW(write_slots(cache.view(0), int8_in.tensor(), int8_in.tensor(), slots),
               InvalidArgument);
  HostTokens bf16_value = testing::random_tokens(rng, DType::kBFloat16, 4, kHeads, 32);
  EXPECT_THROW(write_slots(cache.view(0), key.tensor(), bf16_value.tensor(), slots),
               InvalidArgument);
  HostTokens five = testing::random_tokens(rng, DType::kFloat32, 5, kHeads, 32);
  EXPECT_THROW(write_slots(cache.view(0), key.tensor(), five.tensor(), slots), InvalidArgument);
  PagedKVView broken = cache.view(0);
  broken.v_data = nullptr;
  EXPECT_THROW(write_slots(broken, key.tensor(), value.tensor(), slots), InvalidArgument);
  expect_unchanged();
}

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

// ---- quantization round trip ---------------------------------------------------------

float read_element(const PagedKVView& v, const void* base, int64_t elem, float tensor_scale,
                   const float* scales, int64_t scale_index) {
  switch (v.dtype) {
    case DType::kFloat32: return static_cast<const float*>(base)[elem];
    case DType::kBFloat16: return bf16_to_float(static_cast<const uint16_t*>(base)[elem]);
    case DType::kFloat16: return fp16_to_float(static_cast<const uint16_t*>(base)[elem]);
    case DType::kInt8:
      return static_cast<float>(static_cast<const int8_t*>(base)[elem]) * scales[scale_index];
    case DType::kFp8E4M3:
      return fp8_e4m3_to_float(static_cast<const uint8_t*>(base)[elem]) * tensor_scale;
  }
  return 0.0f;
}

TEST(WriteSlots, QuantizedRoundTripStaysWithinTheDocumentedBounds) {
  std::mt19937 rng(5);
  for (KVLayout layout : testing::kLayouts) {
    for (DType cd : testing::kAllCacheDtypes) {
      SCOPED_TRACE(fmt::format("{} {}", kv_layout_name(layout), dtype_name(cd)));
      PagedKVCache cache(testing::small_metadata(layout, cd, 16, 8, 4, 64));
      if (cd == DType::kFp8E4M3) cache.set_fp8_scales(0.25f, 0.5f);
      const int64_t tokens = 100;
      const HostTokens key = testing::random_tokens(rng, DType::kFloat32, tokens, 4, 64, 2.0f);
      const HostTokens value = testing::random_tokens(rng, DType::kFloat32, tokens, 4, 64, 2.0f);
      std::vector<int64_t> slots(tokens);
      std::iota(slots.begin(), slots.end(), 5);
      const PagedKVView v = cache.view(0);
      write_slots(v, key.tensor(), value.tensor(), slots);
      for (int64_t t = 0; t < tokens; ++t) {
        for (int32_t h = 0; h < 4; ++h) {
          for (int is_v = 0; is_v < 2; ++is_v) {
            const HostTokens& in = is_v ? value : key;
            float amax = 0.0f;
            for (int32_t d = 0; d < 64; ++d) amax = std::max(amax, std::fabs(in.at(t, h, d)));
            for (int32_t d = 0; d < 64; ++d) {
              const float x = in.at(t, h, d);
              const int64_t s = slots[static_cast<size_t>(t)];
              const float got = is_v ? read_element(v, v.v_base(), v.v_elem(s, h) + d, v.v_scale,
                                                    v.v_scales, v.scale_index(s, h))
                                     : read_element(v, v.k_data, v.k_elem(s, h) + d, v.k_scale,
                                                    v.k_scales, v.scale_index(s, h));
              const float err = std::fabs(got - x);
              const float tensor_scale = is_v ? v.v_scale : v.k_scale;
              switch (cd) {
                case DType::kFloat32: ASSERT_EQ(got, x); break;
                case DType::kBFloat16: ASSERT_LE(err, std::fabs(x) * 0x1p-8f); break;
                case DType::kFloat16:
                  ASSERT_LE(err, std::max(std::fabs(x) * 0x1p-11f, 0x1p-25f));
                  break;
                case DType::kInt8: ASSERT_LE(err, amax / 254.0f * (1.0f + 1e-5f)); break;
                case DType::kFp8E4M3:
                  // Relative 2^-4 in the normal range; absolute half a subnormal step below.
                  ASSERT_LE(err, std::max(std::fabs(x) * 0x1p-4f, 0x1p-10f * tensor_scale));
                  break;
              }
            }
          }
        }
      }
    }
  }
}

TEST(WriteSlots, Int8ZeroRowsGetZeroScaleAndFp8SaturatesAtTheScaledMaximum) {
  PagedKVCache i8(testing::small_metadata(KVLayout::kNHD, DType::kInt8, 4, 3, 1, 8));
  std::vector<float> zeros(8, 0.0f), big(8, 1e6f);
  const ConstTokenTensor z{zeros.data(), DType::kFloat32, 1, 1, 8};
  const ConstTokenTensor b{big.data(), DType::kFloat32, 1, 1, 8};
  const std::vector<int64_t> slot = {5};
  i8.k_scales(0)[5] = 42.0f;
  write_slots(i8.view(0), z, b, slot);
  EXPECT_EQ(i8.k_scales(0)[5], 0.0f);
  EXPECT_EQ(i8.v_scales(0)[5], 1e6f / 127.0f);
  const auto* kv = static_cast<const int8_t*>(i8.kv_pages(0));
  for (int d = 0; d < 8; ++d) {
    EXPECT_EQ(kv[5 * 16 + d], 0);
    EXPECT_EQ(kv[5 * 16 + 8 + d], 127);
  }
  PagedKVCache f8(testing::small_metadata(KVLayout::kHND, DType::kFp8E4M3, 4, 3, 1, 8));
  f8.set_fp8_scales(2.0f, 2.0f);
  write_slots(f8.view(0), b, z, slot);
  EXPECT_EQ(static_cast<const uint8_t*>(f8.key_pages(0))[5 * 8], 0x7e);
  EXPECT_EQ(fp8_e4m3_to_float(0x7e) * f8.k_scale(), 896.0f);
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
