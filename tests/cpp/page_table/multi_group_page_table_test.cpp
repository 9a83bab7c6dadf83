#include "pagedkv/page_table/multi_group_page_table.h"

#include <gtest/gtest.h>

#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using Ids = std::vector<std::vector<PageId>>;

struct Snapshot {
  std::vector<std::vector<PageId>> staging, device;
  std::vector<std::vector<int32_t>> counts;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snap(const MultiGroupPageTable& m) {
  Snapshot s;
  for (const PageTable& t : m.page_tables()) {
    const PageTableView v = t.get_cpu_tensor();
    s.staging.emplace_back(v.data, v.data + static_cast<size_t>(v.num_rows) * v.num_cols);
    s.device.push_back(t.read_device_tensor());
    s.counts.emplace_back(t.num_pages_per_row().begin(), t.num_pages_per_row().end());
  }
  return s;
}

std::vector<PageId> row_of(const PageTable& t, int32_t r) {
  const auto s = t.row(r);
  return {s.begin(), s.end()};
}

MultiGroupPageTable make_two_groups() {
  return MultiGroupPageTable(4, 100, 256, std::vector<int32_t>{16, 32});
}

TEST(MultiGroupPageTable, EachGroupHasCdivMaxModelLenByPageSizeColumns) {
  MultiGroupPageTable m(4, 100, 256, std::vector<int32_t>{16, 32, 100, 1});
  m.verify();
  ASSERT_EQ(m.num_groups(), 4);
  EXPECT_EQ(m[0].max_num_pages_per_req(), 7);  // cdiv(100, 16)
  EXPECT_EQ(m[1].max_num_pages_per_req(), 4);  // cdiv(100, 32)
  EXPECT_EQ(m[2].max_num_pages_per_req(), 1);
  EXPECT_EQ(m.group(3).max_num_pages_per_req(), 100);
  for (const PageTable& t : m.page_tables()) {
    EXPECT_EQ(t.max_num_reqs(), 4);
    EXPECT_EQ(t.max_num_batched_tokens(), 256);
  }
  EXPECT_EQ(m.page_size(1), 32);
  EXPECT_EQ(m.max_model_len(), 100);
  EXPECT_THROW(m.group(4), OutOfRange);
  EXPECT_THROW(m[-1], OutOfRange);
  EXPECT_THROW(m.page_size(4), OutOfRange);
}

TEST(MultiGroupPageTable, ConstructorRejectsBadShapes) {
  EXPECT_THROW(MultiGroupPageTable(4, 100, 256, std::vector<int32_t>{}), InvalidArgument);
  EXPECT_THROW(MultiGroupPageTable(4, 100, 256, std::vector<int32_t>{16, 0}), InvalidArgument);
  EXPECT_THROW(MultiGroupPageTable(4, 0, 256, std::vector<int32_t>{16}), InvalidArgument);
  EXPECT_THROW(MultiGroupPageTable(0, 100, 256, std::vector<int32_t>{16}), InvalidArgument);
}

TEST(MultiGroupPageTable, RowOperationsApplyToEveryGroup) {
  MultiGroupPageTable m = make_two_groups();
  const Ids a = {{10, 11}, {20}};
  m.append_row(a, 0);
  m.append_row(Ids{{12}, {}}, 0);
  m.verify();
  EXPECT_EQ(row_of(m[0], 0), (std::vector<PageId>{10, 11, 12}));
  EXPECT_EQ(row_of(m[1], 0), (std::vector<PageId>{20}));
  m.add_row(Ids{{30}, {40, 41}}, 1);
  m.swap_row(0, 1);
  m.verify();
  EXPECT_EQ(row_of(m[0], 0), (std::vector<PageId>{30}));
  EXPECT_EQ(row_of(m[1], 1), (std::vector<PageId>{20}));
  m.move_row(1, 3);
  m.verify();
  EXPECT_EQ(row_of(m[0], 3), (std::vector<PageId>{10, 11, 12}));
  EXPECT_EQ(row_of(m[0], 1), (std::vector<PageId>{10, 11, 12}));
  EXPECT_EQ(row_of(m[1], 3), (std::vector<PageId>{20}));
  // Device copies follow only on commit, in every group.
  EXPECT_EQ(m[1].get_device_tensor()(0, 0), 0);
  m.commit(4);
  EXPECT_EQ(m[0].get_device_tensor()(3, 2), 12);
  EXPECT_EQ(m[1].get_device_tensor()(0, 1), 41);
  m.clear();
  m.verify();
  EXPECT_EQ(m[1].get_device_tensor()(0, 1), 0);
  EXPECT_EQ(m[0].num_pages(3), 0);
}

TEST(MultiGroupPageTable, WrongGroupCountThrowsAndChangesNothing) {
  MultiGroupPageTable m = make_two_groups();
  m.append_row(Ids{{1}, {2}}, 0);
  const Snapshot before = snap(m);
  EXPECT_THROW(m.append_row(Ids{{1}}, 0), InvalidArgument);
  EXPECT_THROW(m.add_row(Ids{{1}, {2}, {3}}, 0), InvalidArgument);
  EXPECT_EQ(snap(m), before);
  m.verify();
}

TEST(MultiGroupPageTable, AFailingLaterGroupLeavesEarlierGroupsUnchanged) {
  MultiGroupPageTable m = make_two_groups();  // group 1 holds 4 pages per row
  m.append_row(Ids{{1}, {2, 3, 4}}, 0);
  const Snapshot before = snap(m);
  EXPECT_THROW(m.append_row(Ids{{5}, {6, 7}}, 0), CapacityError);
  EXPECT_THROW(m.add_row(Ids{{5}, {1, 2, 3, 4, 5}}, 0), CapacityError);
  EXPECT_THROW(m.append_row(Ids{{5}, {-6}}, 0), InvalidArgument);
  EXPECT_THROW(m.append_row(Ids{{5}, {6}}, 4), OutOfRange);
  EXPECT_THROW(m.move_row(0, 4), OutOfRange);
  EXPECT_THROW(m.swap_row(-1, 0), OutOfRange);
  EXPECT_THROW(m.commit(5), OutOfRange);
  EXPECT_THROW(m.commit(-1), InvalidArgument);
  EXPECT_EQ(snap(m), before);
  m.verify();
}

TEST(MultiGroupPageTable, AppendRowsBatchAppendsEachRequestToItsRow) {
  MultiGroupPageTable m = make_two_groups();
  const std::vector<Ids> batch = {{{10, 11}, {20, 21}}, {{30}, {40, 41, 42}}};
  const std::vector<int32_t> rows = {0, 2};
  m.append_rows_batch(batch, rows);
  m.verify();
  EXPECT_EQ(row_of(m[0], 0), (std::vector<PageId>{10, 11}));
  EXPECT_EQ(row_of(m[1], 0), (std::vector<PageId>{20, 21}));
  EXPECT_EQ(row_of(m[0], 2), (std::vector<PageId>{30}));
  EXPECT_EQ(row_of(m[1], 2), (std::vector<PageId>{40, 41, 42}));
  // A row named twice gets both appends, in order.
  m.append_rows_batch(std::vector<Ids>{{{1}, {}}, {{2}, {3}}}, std::vector<int32_t>{1, 1});
  EXPECT_EQ(row_of(m[0], 1), (std::vector<PageId>{1, 2}));
  EXPECT_EQ(row_of(m[1], 1), (std::vector<PageId>{3}));
  m.append_rows_batch(std::vector<Ids>{}, std::vector<int32_t>{});
  m.verify();
}

TEST(MultiGroupPageTable, AppendRowsBatchValidatesEverythingFirst) {
  MultiGroupPageTable m = make_two_groups();
  m.append_row(Ids{{1}, {2, 3}}, 0);
  const Snapshot before = snap(m);
  // Lengths differ.
  EXPECT_THROW(m.append_rows_batch(std::vector<Ids>{{{1}, {2}}}, std::vector<int32_t>{0, 1}),
               InvalidArgument);
  // A request with the wrong number of groups.
  EXPECT_THROW(m.append_rows_batch(std::vector<Ids>{{{1}, {2}}, {{3}}}, std::vector<int32_t>{1, 2}),
               InvalidArgument);
  // The second append to row 0 overflows group 1 only after the first one (2 + 1 + 2 > 4).
  EXPECT_THROW(
      m.append_rows_batch(std::vector<Ids>{{{5}, {6}}, {{7}, {8, 9}}}, std::vector<int32_t>{0, 0}),
      CapacityError);
  // The last request's row is out of range.
  EXPECT_THROW(
      m.append_rows_batch(std::vector<Ids>{{{5}, {6}}, {{7}, {8}}}, std::vector<int32_t>{1, 9}),
      OutOfRange);
  EXPECT_THROW(
      m.append_rows_batch(std::vector<Ids>{{{5}, {6}}, {{7}, {-8}}}, std::vector<int32_t>{1, 2}),
      InvalidArgument);
  EXPECT_EQ(snap(m), before);
  m.verify();
}

TEST(MultiGroupPageTable, GroupsCanBeDrivenIndividually) {
  MultiGroupPageTable m = make_two_groups();
  m[1].append_row({7}, 2);
  m.verify();
  EXPECT_EQ(m[0].num_pages(2), 0);
  EXPECT_EQ(m[1].num_pages(2), 1);
}

}  // namespace
}  // namespace pagedkv
