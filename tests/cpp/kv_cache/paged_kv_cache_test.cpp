#include "pagedkv/kv_cache/paged_kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kv_cache/kv_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/kv_cache_write.h"

namespace pagedkv {
namespace {

bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

TEST(PagedKVCache, LayersHaveTheDocumentedShapesAlignedAndZeroed) {
  for (KVLayout layout : testing::kLayouts) {
    for (DType dt : testing::kAllCacheDtypes) {
      SCOPED_TRACE(fmt::format("{} {}", kv_layout_name(layout), dtype_name(dt)));
      PagedKVCache cache(testing::small_metadata(layout, dt, 16, 5, 3, 40, /*layers=*/3));
      cache.verify();
      EXPECT_EQ(cache.num_layers(), 3);
      EXPECT_EQ(cache.num_slots(), 80);
      EXPECT_EQ(cache.elements_per_array(), (layout == KVLayout::kHND ? 1 : 2) * 80 * 3 * 40);
      EXPECT_EQ(cache.scales_per_array(), dt == DType::kInt8 ? 80 * 3 : 0);
      for (int32_t l = 0; l < 3; ++l) {
        const PagedKVView v = cache.view(l);
        EXPECT_EQ(v.layout, layout);
        EXPECT_EQ(v.dtype, dt);
        EXPECT_EQ(v.num_pages, 5);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(v.k_data) % 64, 0u);
        EXPECT_TRUE(all_zero(v.k_data, testing::array_bytes(cache)));
        EXPECT_EQ(v.v_data != nullptr, layout == KVLayout::kHND);
        if (v.v_data != nullptr) {
          EXPECT_EQ(reinterpret_cast<uintptr_t>(v.v_data) % 64, 0u);
          EXPECT_TRUE(all_zero(v.v_data, testing::array_bytes(cache)));
          EXPECT_EQ(cache.key_pages(l), v.k_data);
          EXPECT_EQ(cache.value_pages(l), v.v_data);
        } else {
          EXPECT_EQ(cache.kv_pages(l), v.k_data);
        }
        EXPECT_EQ(v.k_scales != nullptr, dt == DType::kInt8);
        if (v.k_scales != nullptr) {
          EXPECT_EQ(cache.k_scales(l), v.k_scales);
          EXPECT_EQ(reinterpret_cast<uintptr_t>(v.v_scales) % 64, 0u);
          EXPECT_TRUE(all_zero(v.k_scales, 80 * 3 * sizeof(float)));
        }
      }
    }
  }
}

TEST(PagedKVCache, AccessorsOfTheOtherLayoutOrDtypeAreStateErrors) {
  PagedKVCache hnd(testing::small_metadata(KVLayout::kHND, DType::kFloat16, 4, 3, 1, 8));
  EXPECT_THROW(hnd.kv_pages(0), StateError);
  EXPECT_THROW(hnd.k_scales(0), StateError);
  EXPECT_THROW(hnd.v_scales(0), StateError);
  PagedKVCache nhd(testing::small_metadata(KVLayout::kNHD, DType::kInt8, 4, 3, 1, 8));
  EXPECT_THROW(nhd.key_pages(0), StateError);
  EXPECT_THROW(nhd.value_pages(0), StateError);
  EXPECT_THROW(nhd.view(1), OutOfRange);
  EXPECT_THROW(nhd.view(-1), OutOfRange);
  EXPECT_THROW(nhd.k_scales(2), OutOfRange);
  hnd.verify();
  nhd.verify();
}

TEST(PagedKVCache, Fp8ScalesAreValidatedAndLeftUnchangedOnError) {
  PagedKVCache cache(testing::small_metadata(KVLayout::kHND, DType::kFp8E4M3, 4, 3, 1, 8));
  EXPECT_EQ(cache.k_scale(), 1.0f);
  cache.set_fp8_scales(0.5f, 3.0f);
  EXPECT_THROW(cache.set_fp8_scales(0.0f, 1.0f), InvalidArgument);
  EXPECT_THROW(cache.set_fp8_scales(1.0f, std::nanf("")), InvalidArgument);
  EXPECT_THROW(cache.set_fp8_scales(INFINITY, 1.0f), InvalidArgument);
  EXPECT_EQ(cache.k_scale(), 0.5f);
  EXPECT_EQ(cache.v_scale(), 3.0f);
  EXPECT_EQ(cache.view(0).v_scale, 3.0f);
  cache.verify();
  PagedKVCache bf16(testing::small_metadata(KVLayout::kHND, DType::kBFloat16, 4, 3, 1, 8));
  EXPECT_THROW(bf16.set_fp8_scales(0.5f, 0.5f), StateError);
  EXPECT_EQ(bf16.k_scale(), 1.0f);
}

TEST(PagedKVCache, InvalidMetadataIsRejected) {
  auto md = testing::small_metadata(KVLayout::kHND, DType::kFloat32, 4, 3, 1, 8);
  md.num_pages_per_layer = 2;  // below num_pages_per_sequence + 1
  EXPECT_THROW(PagedKVCache{md}, InvalidArgument);
  md = testing::small_metadata(KVLayout::kHND, DType::kFloat32, 4, 3, 1, 8);
  md.kv_head_dim_size = 0;
  EXPECT_THROW(PagedKVCache{md}, InvalidArgument);
}

TEST(PagedKVCache, LayersAreDisjoint) {
  std::mt19937 rng(20);
  PagedKVCache cache(testing::small_metadata(KVLayout::kNHD, DType::kBFloat16, 16, 4, 2, 16, 2));
  const auto before = testing::snapshot(cache, 0);
  const auto key = testing::random_tokens(rng, DType::kFloat32, 64, 2, 16);
  std::vector<int64_t> slots(64);
  for (int64_t i = 0; i < 64; ++i) slots[static_cast<size_t>(i)] = i;
  write_slots(cache.view(1), key.tensor(), key.tensor(), slots);
  EXPECT_TRUE(testing::snapshot(cache, 0) == before);
  EXPECT_FALSE(testing::snapshot(cache, 1) == before);
}

// Byte offsets past 2^31 (and element offsets past 2^31 for the byte-sized cache): the last
// page is written through write_slots and read back; only a few OS pages are touched (the
// compat writes have the same test in tests/cpp/compat/large_offsets_test.cpp).
TEST(PagedKVCache, OffsetsBeyondTwoToThe31WorkOnALazilyAllocatedCache) {
  std::mt19937 rng(21);
  for (KVLayout layout : testing::kLayouts) {
    SCOPED_TRACE(kv_layout_name(layout));
    // fp32, 8 heads x 128: one slot holds 4 KiB of K (kHND key array) or 8 KiB of K and V
    // (kNHD combined array); the arrays just exceed 2^31 bytes (~2.1 GiB each).
    const int32_t ps = 16;
    const int64_t slot_bytes = layout == KVLayout::kHND ? 4096 : 8192;
    const int64_t pages = (int64_t{1} << 31) / slot_bytes / ps + 2;
    const auto md = testing::small_metadata(layout, DType::kFloat32, ps, pages, 8, 128);
    PagedKVCache cache(md);
    const int64_t last = cache.num_slots() - 1;
    const PagedKVView v = cache.view(0);
    ASSERT_GT(v.k_elem(last, 7) * 4, int64_t{1} << 31);
    const auto key = testing::random_tokens(rng, DType::kFloat32, 2, 8, 128);
    const auto value = testing::random_tokens(rng, DType::kFloat32, 2, 8, 128);
    const std::vector<int64_t> slots = {last, last - ps};
    write_slots(v, key.tensor(), value.tensor(), slots);
    for (int32_t h = 0; h < 8; ++h) {
      for (int t = 0; t < 2; ++t) {
        const int64_t s = slots[static_cast<size_t>(t)];
        const float* k = static_cast<const float*>(v.k_data) + v.k_elem(s, h);
        const float* vv = static_cast<const float*>(v.v_base()) + v.v_elem(s, h);
        ASSERT_EQ(std::memcmp(k, &key.bytes[(t * 8 + h) * 128 * 4], 128 * 4), 0) << h;
        ASSERT_EQ(std::memcmp(vv, &value.bytes[(t * 8 + h) * 128 * 4], 128 * 4), 0) << h;
      }
    }
    cache.verify();
  }
}

}  // namespace
}  // namespace pagedkv
