// The compat writes with byte offsets past 2^31 (and element offsets past 2^31): the last page
// of a lazily mapped cache is written through kv_cache_update and write_decodes_to_cache and
// read back; only a few OS pages are touched.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kv_cache/kv_test_util.h"
#include "pagedkv/compat/kv_cache_update.h"
#include "pagedkv/compat/metadata_write.h"

namespace pagedkv {
namespace {

TEST(CompatWrites, OffsetsBeyondTwoToThe31WorkOnALazilyAllocatedCache) {
  std::mt19937 rng(21);
  for (KVLayout layout : testing::kLayouts) {
    SCOPED_TRACE(kv_layout_name(layout));
    // fp32, 8 heads x 128: one slot holds 4 KiB of K (kHND key array) or 8 KiB of K and V
    // (kNHD combined array); the arrays just exceed 2^31 bytes (~2.1 GiB each).
    const int32_t ps = 16;
    const int64_t slot_bytes = layout == KVLayout::kHND ? 4096 : 8192;
    const int64_t pages = (int64_t{1} << 31) / slot_bytes / ps + 2;
    PagedKVCache cache(testing::small_metadata(layout, DType::kFloat32, ps, pages, 8, 128));
    const int64_t last = cache.num_slots() - 1;
    const PagedKVView v = cache.view(0);
    ASSERT_GT(v.k_elem(last, 7) * 4, int64_t{1} << 31);
    // The combined kNHD array goes through kv_cache_update with 64-bit byte offsets.
    if (layout == KVLayout::kNHD) {
      const TokenTensor rows{v.k_data, DType::kFloat32, cache.num_slots(), 16, 128};
      const auto fresh = testing::random_tokens(rng, DType::kFloat32, 3, 16, 128);
      const int32_t first = static_cast<int32_t>(last - 2);
      const std::vector<int32_t> slices = {first, 0, 3};
      kv_cache_update(fresh.tensor(), slices, rows, 1, ps);
      ASSERT_EQ(std::memcmp(static_cast<const float*>(v.k_data) + int64_t{first} * 16 * 128,
                            fresh.bytes.data(), fresh.bytes.size()),
                0);
    }
    // Decode writes through the page table into the last slot of the last page.
    const auto key = testing::random_tokens(rng, DType::kFloat32, 1, 8, 128);
    const auto value = testing::random_tokens(rng, DType::kFloat32, 1, 8, 128);
    const auto md = PagedAttentionMetadata::decode({ps - 1}, {static_cast<PageId>(pages - 1)}, 1);
    write_decodes_to_cache(v, key.tensor(), value.tensor(), md);
    for (int32_t h = 0; h < 8; ++h) {
      const float* k = static_cast<const float*>(v.k_data) + v.k_elem(last, h);
      const float* vv = static_cast<const float*>(v.v_base()) + v.v_elem(last, h);
      ASSERT_EQ(std::memcmp(k, &key.bytes[h * 128 * 4], 128 * 4), 0) << h;
      ASSERT_EQ(std::memcmp(vv, &value.bytes[h * 128 * 4], 128 * 4), 0) << h;
    }
    cache.verify();
  }
}

}  // namespace
}  // namespace pagedkv
