#include "pagedkv/compat/kv_cache_update.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <numeric>
#include <random>

#include "kv_cache/kv_test_util.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

// A flat cache [num_pages * page_size, heads, dim] of raw bytes filled with a sentinel.
struct FlatCache {
  std::vector<uint8_t> bytes;
  DType dtype;
  int64_t rows;
  int32_t heads, dim;
  FlatCache(std::mt19937& rng, DType t, int64_t r, int32_t h, int32_t d)
      : bytes(static_cast<size_t>(r) * h * d * dtype_size(t)), dtype(t), rows(r), heads(h), dim(d) {
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  }
  TokenTensor tensor() { return {bytes.data(), dtype, rows, heads, dim}; }
  size_t row_bytes() const { return static_cast<size_t>(heads) * dim * dtype_size(dtype); }
};

// The seed's semantics written as plainly as possible: slice by slice, row by row.
void naive_update(const testing::HostTokens& src, const std::vector<int32_t>& slices,
                  FlatCache& cache, int64_t total) {
  const size_t n = slices.size() / 3;
  const size_t rb = cache.row_bytes();
  for (size_t i = 0; i < static_cast<size_t>(total); ++i) {
    for (int32_t r = 0; r < slices[2 * n + i]; ++r) {
      std::memcpy(&cache.bytes[(static_cast<size_t>(slices[i]) + r) * rb],
                  &src.bytes[(static_cast<size_t>(slices[n + i]) + r) * rb], rb);
    }
  }
}

// n random slices in the seed's [3 * n] layout (cache start rows, source start rows,
// lengths): each lies inside one of `pages` pages of `ps` rows and reads inside `src_rows`.
std::vector<int32_t> random_slices(std::mt19937& rng, int n, int64_t pages, int32_t ps,
                                   int32_t src_rows) {
  auto between = [&rng](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
  };
  std::vector<int32_t> slices(3 * static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int32_t len = between(0, ps);
    const int32_t off = between(0, ps - len);
    const int32_t page = between(0, static_cast<int32_t>(pages) - 1);
    slices[i] = page * ps + off;
    slices[n + i] = between(0, src_rows - len);
    slices[2 * n + i] = len;
  }
  return slices;
}

TEST(KVCacheUpdate, MatchesTheSeedSemanticsByteForByteForEveryDtypeAndPageSize) {
  std::mt19937 rng(10);
  for (DType dt : testing::kAllCacheDtypes) {
    for (int32_t ps : testing::kPageSizes) {
      SCOPED_TRACE(fmt::format("{} page_size={}", dtype_name(dt), ps));
      const int64_t pages = 12;
      const int32_t heads = 4, dim = 32;  // combined heads (K/V interleaved)
      FlatCache cache(rng, dt, pages * ps, heads, dim);
      FlatCache want = cache;
      const testing::HostTokens src = testing::random_tokens(rng, dt, 200, heads, dim);
      const int n = 24;
      std::vector<int32_t> slices = random_slices(rng, n, pages, ps, 200);
      // Slices past total_update_slices are ignored even when they are invalid.
      const int64_t total = 20;
      slices[n + 22] = 100000;
      naive_update(src, slices, want, total);
      kv_cache_update(src.tensor(), slices, cache.tensor(), total, ps);
      ASSERT_EQ(cache.bytes, want.bytes);
    }
  }
}

TEST(KVCacheUpdate, LaterSlicesOverwriteEarlierOnesAtTheSameRows) {
  std::mt19937 rng(11);
  FlatCache cache(rng, DType::kFloat32, 32, 2, 4);
  const testing::HostTokens src = testing::random_tokens(rng, DType::kFloat32, 8, 2, 4);
  const std::vector<int32_t> slices = {16, 18, /*src*/ 0, 4, /*len*/ 4, 2};
  kv_cache_update(src.tensor(), slices, cache.tensor(), 2, 16);
  const size_t rb = cache.row_bytes();
  EXPECT_EQ(std::memcmp(&cache.bytes[16 * rb], &src.bytes[0], 2 * rb), 0);
  EXPECT_EQ(std::memcmp(&cache.bytes[18 * rb], &src.bytes[4 * rb], 2 * rb), 0);
}

// Updates of several MiB run on 2 and 3 threads, each taking the slices of a range of pages;
// slices writing the same rows (far apart in the batch) still apply in order.
TEST(KVCacheUpdate, UpdatesSplitAcrossThreadsByPageKeepTheSeedSemantics) {
  std::mt19937 rng(13);
  const int saved = omp_get_max_threads();
  for (int threads : {2, 3}) {
    omp_set_num_threads(threads);
    for (DType dt : {DType::kFloat32, DType::kInt8}) {
      SCOPED_TRACE(fmt::format("threads={} {}", threads, dtype_name(dt)));
      const int32_t ps = 16, heads = 8, dim = 64;
      const int64_t pages = 400;
      FlatCache cache(rng, dt, pages * ps, heads, dim);
      FlatCache want = cache;
      const int32_t src_rows = 3000;
      const testing::HostTokens src = testing::random_tokens(rng, dt, src_rows, heads, dim);
      const int n = 500;
      std::vector<int32_t> slices = random_slices(rng, n, pages, ps, src_rows);
      slices[n - 1] = slices[3];  // the last slice rewrites the rows of slice 3
      slices[2 * n + n - 1] = slices[2 * n + 3];
      naive_update(src, slices, want, n);
      kv_cache_update(src.tensor(), slices, cache.tensor(), n, ps);
      ASSERT_EQ(cache.bytes, want.bytes);
    }
  }
  omp_set_num_threads(saved);
}

struct UpdateErrors : ::testing::Test {
  std::mt19937 rng{12};
  FlatCache cache{rng, DType::kBFloat16, 64, 4, 8};  // 4 pages of 16
  testing::HostTokens src = testing::random_tokens(rng, DType::kBFloat16, 20, 4, 8);
  std::vector<uint8_t> before = cache.bytes;

  // One valid slice first, so a partial write would show.
  void expect_throws_invalid(std::vector<int32_t> bad_column, int64_t total = 2) {
    const std::vector<int32_t> s = {0, bad_column[0], 0, bad_column[1], 4, bad_column[2]};
    EXPECT_THROW(kv_cache_update(src.tensor(), s, cache.tensor(), total, 16), InvalidArgument);
    EXPECT_EQ(cache.bytes, before);
  }
  void expect_throws_range(std::vector<int32_t> bad_column) {
    const std::vector<int32_t> s = {0, bad_column[0], 0, bad_column[1], 4, bad_column[2]};
    EXPECT_THROW(kv_cache_update(src.tensor(), s, cache.tensor(), 2, 16), OutOfRange);
    EXPECT_EQ(cache.bytes, before);
  }
};

TEST_F(UpdateErrors, ASliceCrossingAPageBoundaryIsRejectedBeforeAnyCopy) {
  expect_throws_invalid({14, 0, 4});  // rows 14..17 cross 16
  try {
    const std::vector<int32_t> s = {30, 0, 4};
    kv_cache_update(src.tensor(), s, cache.tensor(), 1, 16);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("page boundary at 32"), std::string::npos) << e.what();
  }
}

TEST_F(UpdateErrors, LengthsAboveThePageSizeOrNegativeAreRejected) {
  expect_throws_invalid({16, 0, 17});
  expect_throws_invalid({16, 0, -1});
}

TEST_F(UpdateErrors, SourceAndCacheRangesOutsideTheirArraysAreRejected) {
  expect_throws_range({60, 0, 8});  // cache rows [60, 68) past 64
  expect_throws_range({-16, 0, 1});
  expect_throws_range({16, 15, 8});  // source rows [15, 23) past 20
  expect_throws_range({16, -1, 2});
}

TEST_F(UpdateErrors, TotalUpdateSlicesOutsideTheSliceCountIsRejected) {
  expect_throws_invalid({16, 0, 4}, 3);
  expect_throws_invalid({16, 0, 4}, -1);
}

TEST_F(UpdateErrors, ShapeAndDtypeMismatchesAreRejected) {
  const std::vector<int32_t> s = {0, 0, 4};
  testing::HostTokens f32 = testing::random_tokens(rng, DType::kFloat32, 20, 4, 8);
  EXPECT_THROW(kv_cache_update(f32.tensor(), s, cache.tensor(), 1, 16), InvalidArgument);
  testing::HostTokens wide = testing::random_tokens(rng, DType::kBFloat16, 20, 4, 16);
  EXPECT_THROW(kv_cache_update(wide.tensor(), s, cache.tensor(), 1, 16), InvalidArgument);
  const std::vector<int32_t> ragged = {0, 0, 4, 1};
  EXPECT_THROW(kv_cache_update(src.tensor(), ragged, cache.tensor(), 1, 16), InvalidArgument);
  EXPECT_THROW(kv_cache_update(src.tensor(), s, cache.tensor(), 1, 24), InvalidArgument);
  EXPECT_THROW(kv_cache_update(src.tensor(), s, cache.tensor(), 1, 0), InvalidArgument);
  EXPECT_EQ(cache.bytes, before);
}

// ---- build_update_slices ---------------------------------------------------------------

TEST(BuildUpdateSlices, WorkedExampleFromTheHeader) {
  const std::vector<PageId> table = {3, 7, 9, 0};
  std::vector<int32_t> slices(3 * 8, -5);
  const int64_t n =
      build_update_slices(table, 4, std::vector<int32_t>{20}, std::vector<int32_t>{15}, 16, slices);
  ASSERT_EQ(n, 2);
  EXPECT_EQ(slices[0], 7 * 16 + 4);
  EXPECT_EQ(slices[8], 0);
  EXPECT_EQ(slices[16], 12);
  EXPECT_EQ(slices[1], 9 * 16);
  EXPECT_EQ(slices[9], 12);
  EXPECT_EQ(slices[17], 3);
  for (int i = 2; i < 8; ++i) {
    EXPECT_EQ(slices[i], 0);
    EXPECT_EQ(slices[8 + i], 0);
    EXPECT_EQ(slices[16 + i], 0);
  }
}

TEST(BuildUpdateSlices, AppliedSlicesPlaceEveryTokenAtItsPagedPosition) {
  std::mt19937 rng(13);
  for (int32_t ps : testing::kPageSizes) {
    SCOPED_TRACE(ps);
    const int32_t seqs = 5, cols = cdiv(300, ps) + 1;
    const int64_t pages = int64_t{seqs} * cols + 1;
    std::vector<PageId> table(static_cast<size_t>(seqs * cols));
    std::iota(table.begin(), table.end(), 1);
    std::shuffle(table.begin(), table.end(), rng);
    std::vector<int32_t> start(seqs), count(seqs);
    for (int s = 0; s < seqs; ++s) {
      start[s] = std::uniform_int_distribution<int32_t>(0, 150)(rng);
      count[s] = std::uniform_int_distribution<int32_t>(0, 140)(rng);
    }
    count[1] = 0;
    const int32_t tokens = std::accumulate(count.begin(), count.end(), 0);
    const int64_t want_n = count_update_slices(start, count, ps);
    std::vector<int32_t> slices(static_cast<size_t>(3 * (want_n + 3)));
    const int64_t n = build_update_slices(table, cols, start, count, ps, slices);
    ASSERT_EQ(n, want_n);
    FlatCache cache(rng, DType::kFloat32, pages * ps, 2, 4);
    FlatCache want = cache;
    const testing::HostTokens src = testing::random_tokens(rng, DType::kFloat32, tokens, 2, 4);
    kv_cache_update(src.tensor(), slices, cache.tensor(), n, ps);
    const size_t rb = want.row_bytes();
    int32_t t = 0;
    for (int s = 0; s < seqs; ++s) {
      for (int32_t i = 0; i < count[s]; ++i, ++t) {
        const int32_t pos = start[s] + i;
        const int64_t slot = int64_t{table[s * cols + pos / ps]} * ps + pos % ps;
        std::memcpy(&want.bytes[static_cast<size_t>(slot) * rb], &src.bytes[t * rb], rb);
      }
    }
    ASSERT_EQ(cache.bytes, want.bytes);
  }
}

TEST(BuildUpdateSlices, RejectsSmallCapacityShortTablesAndBadPagesWithoutWriting) {
  const std::vector<PageId> table = {3, 7, 9, 0};
  std::vector<int32_t> slices(3 * 1, 42);
  const std::vector<int32_t> before = slices;
  EXPECT_THROW(
      build_update_slices(table, 4, std::vector<int32_t>{20}, std::vector<int32_t>{15}, 16, slices),
      InvalidArgument);
  std::vector<int32_t> roomy(3 * 8, 42);
  const std::vector<int32_t> roomy_before = roomy;
  EXPECT_THROW(
      build_update_slices(table, 4, std::vector<int32_t>{60}, std::vector<int32_t>{5}, 16, roomy),
      OutOfRange);
  const std::vector<PageId> negative = {3, -1, 9, 0};
  EXPECT_THROW(build_update_slices(negative, 4, std::vector<int32_t>{0}, std::vector<int32_t>{20},
                                   16, roomy),
               OutOfRange);
  EXPECT_THROW(
      build_update_slices(table, 4, std::vector<int32_t>{-1}, std::vector<int32_t>{2}, 16, roomy),
      InvalidArgument);
  EXPECT_THROW(
      build_update_slices(table, 3, std::vector<int32_t>{0}, std::vector<int32_t>{2}, 16, roomy),
      InvalidArgument);
  EXPECT_EQ(slices, before);
  EXPECT_EQ(roomy, roomy_before);
}

}  // namespace
}  // namespace pagedkv
