// Helpers shared by the cache-write tests (kv_cache's write_slots, compat's writes through
// PagedAttentionMetadata): every (layout, cache dtype, input dtype, page size, dim) combination,
// caches made for it, and a fixture whose cache must come out of a failed write unchanged.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "kv_cache/kv_test_util.h"

namespace pagedkv::testing {

struct WriteCombo {
  KVLayout layout;
  DType cache_dtype;
  DType input_dtype;
  int32_t page_size;
  int32_t dim;
};

inline std::string describe(const WriteCombo& c) {
  return fmt::format("{} cache={} input={} page_size={} dim={}", kv_layout_name(c.layout),
                     dtype_name(c.cache_dtype), dtype_name(c.input_dtype), c.page_size, c.dim);
}

template <class Fn>
void for_each_combo(Fn fn) {
  for (KVLayout layout : kLayouts) {
    for (DType cd : kAllCacheDtypes) {
      for (DType in : kInputDtypes) {
        for (int32_t ps : kPageSizes) {
          for (int32_t dim : {24, 64}) fn(WriteCombo{layout, cd, in, ps, dim});
        }
      }
    }
  }
}

inline constexpr int32_t kHeads = 2;

inline PagedKVCache make_cache(const WriteCombo& c, int64_t num_pages) {
  PagedKVCache cache(
      small_metadata(c.layout, c.cache_dtype, c.page_size, num_pages, kHeads, c.dim));
  if (c.cache_dtype == DType::kFp8E4M3) cache.set_fp8_scales(0.5f, 2.0f);
  return cache;
}

inline NaiveWriter naive_for(const PagedKVCache& cache) {
  return NaiveWriter{cache.metadata(), cache.k_scale(), cache.v_scale()};
}

// A bfloat16 HND cache filled with sentinel bytes and float32 inputs of 4 tokens; each test
// breaks one write and expects the cache unchanged.
struct WriteErrorFixture : ::testing::Test {
  std::mt19937 rng{4};
  PagedKVCache cache{small_metadata(KVLayout::kHND, DType::kBFloat16, 16, 6, kHeads, 32)};
  HostTokens key = random_tokens(rng, DType::kFloat32, 4, kHeads, 32);
  HostTokens value = random_tokens(rng, DType::kFloat32, 4, kHeads, 32);
  CacheBytes before;

  void SetUp() override {
    fill_sentinel(cache, rng);
    before = snapshot(cache);
  }
  void expect_unchanged() {
    EXPECT_TRUE(snapshot(cache) == before);
    cache.verify();
  }
};

}  // namespace pagedkv::testing
