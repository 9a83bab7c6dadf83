#include "pagedkv/kv_cache/kv_cache_write.h"

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

TEST(WriteSlots, MatchesANaiveLoopByteForByteForEveryLayoutDtypeAndPageSize) {
  std::mt19937 rng(1);
  for_each_combo([&](const WriteCombo& c) {
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
  for_each_combo([&](const WriteCombo& c) {
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

// ---- errors: typed, and nothing written ------------------------------------------------

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

}  // namespace
}  // namespace pagedkv
