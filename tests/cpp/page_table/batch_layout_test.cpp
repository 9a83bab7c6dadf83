#include "pagedkv/page_table/batch_layout.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

// page size 4: row 0 = [7, 2], row 1 = [5], row 2 empty.
PageTable make_table() {
  PageTable t(3, 4, 16);
  t.append_row({7, 2}, 0);
  t.append_row({5}, 1);
  return t;
}

TEST(SlotMapping, HeaderExample) {
  const PageTable t = make_table();
  const std::vector<int32_t> rows = {0, 1}, starts = {3, 0}, counts = {2, 1};
  std::vector<int64_t> slots(8, 99);
  EXPECT_EQ(compute_slot_mapping(t, 4, {rows, starts, counts}, slots), 3);
  EXPECT_EQ(slots, (std::vector<int64_t>{31, 8, 20, -1, -1, -1, -1, -1}));
}

TEST(SlotMapping, PaddingIsAParameter) {
  const PageTable t = make_table();
  const std::vector<int32_t> rows = {1}, starts = {1}, counts = {2};
  std::vector<int64_t> slots(4, 99);
  EXPECT_EQ(compute_slot_mapping(t, 4, {rows, starts, counts}, slots, /*padding=*/0), 2);
  EXPECT_EQ(slots, (std::vector<int64_t>{21, 22, 0, 0}));
}

TEST(SlotMapping, EmptyBatchIsAllPadding) {
  const PageTable t = make_table();
  std::vector<int64_t> slots(3, 99);
  EXPECT_EQ(compute_slot_mapping(t, 4, {}, slots), 0);
  EXPECT_EQ(slots, (std::vector<int64_t>{-1, -1, -1}));
}

TEST(SlotMapping, InvalidBatchesThrowAndLeaveTheOutputUntouched) {
  const PageTable t = make_table();
  const std::vector<int64_t> untouched(16, 99);
  std::vector<int64_t> slots = untouched;
  auto run = [&](std::vector<int32_t> rows, std::vector<int32_t> starts,
                 std::vector<int32_t> counts, int32_t page_size = 4, size_t cap = 16) {
    compute_slot_mapping(t, page_size, {rows, starts, counts},
                         std::span<int64_t>(slots).first(cap));
  };
  EXPECT_THROW(run({0}, {0}, {1}, 0), InvalidArgument);
  EXPECT_THROW(run({0, 1}, {0}, {1, 1}), InvalidArgument);
  EXPECT_THROW(run({3}, {0}, {1}), OutOfRange);
  EXPECT_THROW(run({-1}, {0}, {1}), OutOfRange);
  EXPECT_THROW(run({0}, {-1}, {1}), InvalidArgument);
  EXPECT_THROW(run({0}, {0}, {-1}), InvalidArgument);
  EXPECT_THROW(run({0}, {7}, {2}), OutOfRange);                     // position 8 needs a third page
  EXPECT_THROW(run({2}, {0}, {1}), OutOfRange);                     // empty row
  EXPECT_THROW(run({0, 1}, {0, 0}, {8, 4}, 4, 10), CapacityError);  // output too short
  // 12 + 5 tokens exceed max_num_batched_tokens (16), though the output could hold them.
  std::vector<int64_t> big(32, 99);
  const std::vector<int32_t> rows = {0, 0}, starts = {0, 0}, counts = {8, 8}, one = {1};
  EXPECT_NO_THROW(compute_slot_mapping(t, 4, {rows, starts, counts}, big));
  const std::vector<int32_t> rows3 = {0, 0, 1}, starts3 = {0, 0, 0}, counts3 = {8, 8, 1};
  std::fill(big.begin(), big.end(), 99);
  EXPECT_THROW(compute_slot_mapping(t, 4, {rows3, starts3, counts3}, big), CapacityError);
  EXPECT_EQ(big, std::vector<int64_t>(32, 99));
  // The view overload has no token budget.
  EXPECT_EQ(compute_slot_mapping(t.get_cpu_tensor(), t.num_pages_per_row(), 4,
                                 {rows3, starts3, counts3}, big),
            17);
  EXPECT_THROW(compute_slot_mapping(t.get_cpu_tensor(), t.num_pages_per_row().first(2), 4,
                                    {rows3, starts3, counts3}, big),
               InvalidArgument);
  EXPECT_EQ(slots, untouched);
}

TEST(FlashInferLayout, HeaderExample) {
  const PageTable t = make_table();
  const std::vector<int32_t> rows = {0, 1}, lens = {6, 1};
  std::vector<int32_t> indptr(3), indices(3), last(2);
  EXPECT_EQ(export_flashinfer_layout(t, 4, {rows, lens}, {indptr, indices, last}), 3);
  EXPECT_EQ(indptr, (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(indices, (std::vector<int32_t>{7, 2, 5}));
  EXPECT_EQ(last, (std::vector<int32_t>{2, 1}));
}

TEST(FlashInferLayout, LastPageLenIsOneToPageSizeAndZeroForEmpty) {
  const PageTable t = make_table();
  const std::vector<int32_t> rows = {0, 0, 2, 1}, lens = {8, 5, 0, 4};
  std::vector<int32_t> indptr(5, 99), indices(8, 99), last(4, 99);
  EXPECT_EQ(flashinfer_num_indices(4, lens), 5);
  EXPECT_EQ(export_flashinfer_layout(t, 4, {rows, lens}, {indptr, indices, last}), 5);
  EXPECT_EQ(indptr, (std::vector<int32_t>{0, 2, 4, 4, 5}));
  EXPECT_EQ(last, (std::vector<int32_t>{4, 1, 0, 4}));
  // Only [0, total) of indices is written.
  EXPECT_EQ(indices, (std::vector<int32_t>{7, 2, 7, 2, 5, 99, 99, 99}));
}

TEST(FlashInferLayout, InvalidBatchesThrowAndLeaveTheOutputUntouched) {
  const PageTable t = make_table();
  std::vector<int32_t> indptr(4, 99), indices(4, 99), last(3, 99);
  const auto before = std::make_tuple(indptr, indices, last);
  auto run = [&](std::vector<int32_t> rows, std::vector<int32_t> lens, int32_t page_size = 4,
                 size_t indptr_cap = 4, size_t indices_cap = 4, size_t last_cap = 3) {
    return export_flashinfer_layout(
        t, page_size, {rows, lens},
        {std::span(indptr).first(indptr_cap), std::span(indices).first(indices_cap),
         std::span(last).first(last_cap)});
  };
  EXPECT_THROW(run({0}, {1}, 0), InvalidArgument);
  EXPECT_THROW(run({0, 1}, {1}), InvalidArgument);
  EXPECT_THROW(run({0}, {-1}), InvalidArgument);
  EXPECT_THROW(run({3}, {1}), OutOfRange);
  EXPECT_THROW(run({0}, {9}), OutOfRange);  // 3 pages, row holds 2
  EXPECT_THROW(run({2}, {1}), OutOfRange);
  EXPECT_THROW(run({0, 1}, {8, 4}, 4, 2), CapacityError);     // indptr needs 3
  EXPECT_THROW(run({0, 1}, {8, 4}, 4, 4, 2), CapacityError);  // indices need 3
  EXPECT_THROW(run({0, 1}, {8, 4}, 4, 4, 4, 1), CapacityError);
  EXPECT_THROW(flashinfer_num_indices(0, std::vector<int32_t>{1}), InvalidArgument);
  EXPECT_THROW(flashinfer_num_indices(4, std::vector<int32_t>{-1}), InvalidArgument);
  EXPECT_EQ(std::make_tuple(indptr, indices, last), before);
  EXPECT_EQ(run({}, {}), 0);
  EXPECT_EQ(indptr[0], 0);
}

// Random batches against a naive per-token / per-page loop.
class RandomBatches : public ::testing::TestWithParam<int32_t> {};

TEST_P(RandomBatches, SlotMappingAndFlashInferExportMatchANaiveLoop) {
  const int32_t page_size = GetParam();
  constexpr int32_t kRows = 24, kCols = 12, kBudget = 4096;
  std::mt19937 rng(static_cast<uint32_t>(page_size) * 7919u);
  auto rand_int = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 40; ++trial) {
    PageTable t(kRows, kCols, kBudget);
    for (int32_t r = 0; r < kRows; ++r) {
      std::vector<PageId> ids(static_cast<size_t>(rand_int(0, kCols)));
      for (auto& p : ids) p = rand_int(0, 100000);
      t.add_row(ids, r);
    }
    const int32_t batch = rand_int(0, kRows);
    std::vector<int32_t> rows, starts, counts, lens;
    for (int32_t b = 0; b < batch; ++b) {
      const int32_t r = rand_int(0, kRows - 1);
      const int32_t held_tokens = t.num_pages(r) * page_size;
      const int32_t start = rand_int(0, held_tokens);
      rows.push_back(r);
      starts.push_back(start);
      counts.push_back(rand_int(0, held_tokens - start));
      lens.push_back(rand_int(0, held_tokens));
    }
    // Naive slot mapping.
    std::vector<int64_t> want(kBudget, -1);
    size_t k = 0;
    for (int32_t b = 0; b < batch; ++b) {
      for (int32_t pos = starts[b]; pos < starts[b] + counts[b]; ++pos) {
        want[k++] = int64_t{t.row(rows[b])[static_cast<size_t>(pos / page_size)]} * page_size +
                    pos % page_size;
      }
    }
    std::vector<int64_t> got(kBudget, 99);
    ASSERT_EQ(compute_slot_mapping(t, page_size, {rows, starts, counts}, got),
              static_cast<int64_t>(k));
    ASSERT_EQ(got, want) << "trial " << trial;

    // Naive FlashInfer layout.
    std::vector<int32_t> want_indptr = {0}, want_indices, want_last;
    for (int32_t b = 0; b < batch; ++b) {
      const int32_t pages = (lens[b] + page_size - 1) / page_size;
      for (int32_t i = 0; i < pages; ++i)
        want_indices.push_back(t.row(rows[b])[static_cast<size_t>(i)]);
      want_indptr.push_back(static_cast<int32_t>(want_indices.size()));
      want_last.push_back(lens[b] == 0 ? 0 : lens[b] - (pages - 1) * page_size);
    }
    std::vector<int32_t> indptr(static_cast<size_t>(batch) + 1), last(static_cast<size_t>(batch));
    std::vector<int32_t> indices(static_cast<size_t>(flashinfer_num_indices(page_size, lens)));
    ASSERT_EQ(export_flashinfer_layout(t, page_size, {rows, lens}, {indptr, indices, last}),
              static_cast<int64_t>(want_indices.size()));
    ASSERT_EQ(indptr, want_indptr);
    ASSERT_EQ(indices, want_indices);
    ASSERT_EQ(last, want_last);
  }
}

INSTANTIATE_TEST_SUITE_P(PageSizes, RandomBatches, ::testing::Values(1, 3, 16, 64));

}  // namespace
}  // namespace pagedkv
