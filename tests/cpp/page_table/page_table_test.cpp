#include "pagedkv/page_table/page_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

// Everything observable about a table, to show a failed call changed nothing.
struct Snapshot {
  std::vector<PageId> staging;
  std::vector<int32_t> counts;
  std::vector<PageId> device;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snap(const PageTable& t) {
  const PageTableView cpu = t.get_cpu_tensor();
  const auto n = static_cast<size_t>(cpu.num_rows) * static_cast<size_t>(cpu.num_cols);
  return {std::vector<PageId>(cpu.data, cpu.data + n),
          std::vector<int32_t>(t.num_pages_per_row().begin(), t.num_pages_per_row().end()),
          t.read_device_tensor()};
}

std::vector<PageId> row_of(const PageTable& t, int32_t r) {
  const auto s = t.row(r);
  return {s.begin(), s.end()};
}

std::vector<PageId> device_row(const PageTable& t, int32_t r) {
  const auto s = t.get_device_tensor().row(r);
  return {s.begin(), s.end()};
}

TEST(PageTable, StartsEmptyWithZeroedCopies) {
  PageTable t(3, 4, 64);
  t.verify();
  EXPECT_EQ(t.max_num_reqs(), 3);
  EXPECT_EQ(t.max_num_pages_per_req(), 4);
  EXPECT_EQ(t.max_num_batched_tokens(), 64);
  EXPECT_EQ(t.backend().name(), "host");
  const Snapshot s = snap(t);
  EXPECT_EQ(s.staging, std::vector<PageId>(12, 0));
  EXPECT_EQ(s.device, std::vector<PageId>(12, 0));
  EXPECT_EQ(s.counts, std::vector<int32_t>(3, 0));
}

TEST(PageTable, ConstructorRejectsNonPositiveLimits) {
  EXPECT_THROW(PageTable(0, 4, 64), InvalidArgument);
  EXPECT_THROW(PageTable(3, 0, 64), InvalidArgument);
  EXPECT_THROW(PageTable(3, 4, -1), InvalidArgument);
}

TEST(PageTable, AppendRowAddsAfterExistingPages) {
  PageTable t(3, 5, 64);
  t.append_row({3, 7}, 1);
  t.verify();
  t.append_row({9}, 1);
  t.verify();
  EXPECT_EQ(row_of(t, 1), (std::vector<PageId>{3, 7, 9}));
  EXPECT_EQ(t.num_pages(1), 3);
  EXPECT_EQ(t.get_cpu_tensor()(1, 3), kPageTablePadding);
  EXPECT_EQ(t.num_pages(0), 0);
}

TEST(PageTable, AppendingNothingIsANoOpButStillChecksTheRow) {
  PageTable t(2, 4, 64);
  t.append_row({1}, 0);
  const Snapshot before = snap(t);
  t.append_row(std::vector<PageId>{}, 0);
  EXPECT_EQ(snap(t), before);
  EXPECT_THROW(t.append_row(std::vector<PageId>{}, 2), OutOfRange);
  EXPECT_EQ(snap(t), before);
}

TEST(PageTable, NullPageIdIsAccepted) {
  PageTable t(1, 4, 64);
  t.append_row({kNullPageId, 5}, 0);
  t.verify();
  EXPECT_EQ(row_of(t, 0), (std::vector<PageId>{0, 5}));
}

TEST(PageTable, AddRowReplacesAndPadsTheShrunkTail) {
  PageTable t(2, 5, 64);
  t.append_row({1, 2, 3, 4}, 0);
  t.add_row({8}, 0);
  t.verify();
  EXPECT_EQ(row_of(t, 0), (std::vector<PageId>{8}));
  const auto full = t.get_cpu_tensor().row(0);
  EXPECT_EQ(std::vector<PageId>(full.begin(), full.end()), (std::vector<PageId>{8, 0, 0, 0, 0}));
  t.add_row(std::vector<PageId>{}, 0);
  t.verify();
  EXPECT_EQ(t.num_pages(0), 0);
}

TEST(PageTable, MoveRowCopiesAndKeepsTheSource) {
  PageTable t(3, 4, 64);
  t.append_row({1, 2}, 0);
  t.append_row({5, 6, 7}, 2);
  t.move_row(0, 2);
  t.verify();
  EXPECT_EQ(row_of(t, 0), (std::vector<PageId>{1, 2}));
  EXPECT_EQ(row_of(t, 2), (std::vector<PageId>{1, 2}));
  EXPECT_EQ(t.get_cpu_tensor()(2, 2), kPageTablePadding);  // the old 7 does not linger
  t.move_row(1, 1);
  t.verify();
}

TEST(PageTable, SwapRowExchangesPagesAndCounts) {
  PageTable t(3, 4, 64);
  t.append_row({1, 2, 3}, 0);
  t.append_row({9}, 2);
  t.swap_row(0, 2);
  t.verify();
  EXPECT_EQ(row_of(t, 0), (std::vector<PageId>{9}));
  EXPECT_EQ(row_of(t, 2), (std::vector<PageId>{1, 2, 3}));
  EXPECT_EQ(t.num_pages_per_row()[0], 1);
  EXPECT_EQ(t.num_pages_per_row()[2], 3);
  t.swap_row(1, 1);
  t.verify();
  EXPECT_EQ(t.num_pages(1), 0);
}

TEST(PageTable, DeviceCopyChangesOnlyOnCommit) {
  PageTable t(3, 4, 64);
  t.append_row({1, 2}, 0);
  t.append_row({3}, 1);
  t.append_row({4}, 2);
  EXPECT_EQ(device_row(t, 0), (std::vector<PageId>{0, 0, 0, 0}));
  t.commit(2);
  t.verify();
  EXPECT_EQ(device_row(t, 0), (std::vector<PageId>{1, 2, 0, 0}));
  EXPECT_EQ(device_row(t, 1), (std::vector<PageId>{3, 0, 0, 0}));
  EXPECT_EQ(device_row(t, 2), (std::vector<PageId>{0, 0, 0, 0}));  // past num_reqs
  t.swap_row(0, 1);
  t.move_row(2, 0);
  EXPECT_EQ(device_row(t, 0), (std::vector<PageId>{1, 2, 0, 0}));
  t.commit(3);
  EXPECT_EQ(device_row(t, 0), (std::vector<PageId>{4, 0, 0, 0}));
  EXPECT_EQ(device_row(t, 1), (std::vector<PageId>{1, 2, 0, 0}));
  EXPECT_EQ(device_row(t, 2), (std::vector<PageId>{4, 0, 0, 0}));
  // Rows past a later, smaller commit keep what they held.
  t.add_row({7}, 2);
  t.add_row({8}, 0);
  t.commit(1);
  EXPECT_EQ(device_row(t, 0), (std::vector<PageId>{8, 0, 0, 0}));
  EXPECT_EQ(device_row(t, 2), (std::vector<PageId>{4, 0, 0, 0}));
  t.commit(0);
  t.verify();
}

TEST(PageTable, ViewsAreStableAndShowCurrentContents) {
  PageTable t(2, 3, 64);
  const PageTableView cpu = t.get_cpu_tensor();
  const PageTableView dev = t.get_device_tensor();
  const auto counts = t.num_pages_per_row();
  t.append_row({5, 6}, 1);
  t.commit(2);
  EXPECT_EQ(cpu(1, 1), 6);
  EXPECT_EQ(dev(1, 1), 6);
  EXPECT_EQ(counts[1], 2);
  EXPECT_EQ(t.get_cpu_tensor().data, cpu.data);
  EXPECT_EQ(t.get_device_tensor().data, dev.data);
  EXPECT_NE(cpu.data, dev.data);  // two copies
  PageTable moved = std::move(t);
  EXPECT_EQ(moved.get_cpu_tensor().data, cpu.data);
}

TEST(PageTable, ClearZeroesBothCopiesAndCounts) {
  PageTable t(2, 3, 64);
  t.append_row({5, 6}, 1);
  t.commit(2);
  t.clear();
  t.verify();
  const Snapshot s = snap(t);
  EXPECT_EQ(s.staging, std::vector<PageId>(6, 0));
  EXPECT_EQ(s.device, std::vector<PageId>(6, 0));
  EXPECT_EQ(s.counts, std::vector<int32_t>(2, 0));
}

TEST(PageTable, RowOutOfRangeThrowsAndChangesNothing) {
  PageTable t(2, 3, 64);
  t.append_row({1}, 0);
  t.commit(1);
  const Snapshot before = snap(t);
  EXPECT_THROW(t.append_row({1}, 2), OutOfRange);
  EXPECT_THROW(t.append_row({1}, -1), OutOfRange);
  EXPECT_THROW(t.add_row({1}, 5), OutOfRange);
  EXPECT_THROW(t.move_row(0, 2), OutOfRange);
  EXPECT_THROW(t.move_row(-1, 0), OutOfRange);
  EXPECT_THROW(t.swap_row(0, 2), OutOfRange);
  EXPECT_THROW(t.swap_row(3, 0), OutOfRange);
  EXPECT_THROW(t.row(2), OutOfRange);
  EXPECT_THROW(t.num_pages(-1), OutOfRange);
  EXPECT_EQ(snap(t), before);
  t.verify();
}

TEST(PageTable, WritingPastCapacityThrowsNamingRowCountAndCapacity) {
  PageTable t(2, 3, 64);
  t.append_row({1, 2}, 1);
  const Snapshot before = snap(t);
  try {
    t.append_row({3, 4}, 1);
    FAIL() << "no throw";
  } catch (const CapacityError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("row 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("holds 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("capacity of 3"), std::string::npos) << msg;
  }
  EXPECT_THROW(t.add_row({1, 2, 3, 4}, 1), CapacityError);
  EXPECT_EQ(snap(t), before);
  t.append_row({3}, 1);  // exactly full is fine
  EXPECT_EQ(t.num_pages(1), 3);
  EXPECT_THROW(t.append_row({4}, 1), CapacityError);
  t.verify();
}

TEST(PageTable, NegativePageIdThrowsAndChangesNothing) {
  PageTable t(2, 3, 64);
  t.append_row({1}, 0);
  const Snapshot before = snap(t);
  EXPECT_THROW(t.append_row({2, -1}, 0), InvalidArgument);
  EXPECT_THROW(t.add_row({-5}, 0), InvalidArgument);
  EXPECT_EQ(snap(t), before);
  t.verify();
}

TEST(PageTable, CommitOutsideZeroToMaxNumReqsThrowsAndChangesNothing) {
  PageTable t(2, 3, 64);
  t.append_row({1}, 0);
  const Snapshot before = snap(t);
  EXPECT_THROW(t.commit(3), OutOfRange);
  EXPECT_THROW(t.commit(-1), InvalidArgument);
  EXPECT_EQ(snap(t), before);
  t.commit(2);
  EXPECT_EQ(t.get_device_tensor()(0, 0), 1);
}

TEST(PageTable, VerifyCatchesACorruptedTable) {
  PageTable t(1, 2, 64);
  t.append_row({4}, 0);
  // Poke a stale id past the row's end through the view (tests only).
  const_cast<PageId*>(t.get_cpu_tensor().data)[1] = 9;
  EXPECT_THROW(t.verify(), InternalError);
}

// A backend whose memory the host cannot address, counting uploads: what a GPU backend looks
// like from the table's side.
class RemoteBuffer final : public DeviceBuffer {
 public:
  RemoteBuffer(int64_t n, int* uploads) : bytes_(static_cast<size_t>(n)), uploads_(uploads) {}
  int64_t size_bytes() const override { return static_cast<int64_t>(bytes_.size()); }
  void upload(int64_t offset, std::span<const std::byte> src) override {
    ++*uploads_;
    std::memcpy(bytes_.data() + offset, src.data(), src.size());
  }
  void download(int64_t offset, std::span<std::byte> dst) const override {
    std::memcpy(dst.data(), bytes_.data() + offset, dst.size());
  }
  void zero() override { std::fill(bytes_.begin(), bytes_.end(), std::byte{0}); }
  const std::byte* host_data() const override { return nullptr; }

 private:
  std::vector<std::byte> bytes_;
  int* uploads_;
};

class RemoteBackend final : public DeviceBackend {
 public:
  std::string_view name() const override { return "remote"; }
  std::unique_ptr<DeviceBuffer> allocate(int64_t n) override {
    return std::make_unique<RemoteBuffer>(n, &uploads);
  }
  int uploads = 0;
};

TEST(PageTable, PluggableBackendSeesOneUploadPerCommitAndNoneForWrites) {
  auto backend = std::make_shared<RemoteBackend>();
  PageTable t(3, 4, 64, backend);
  EXPECT_EQ(t.backend().name(), "remote");
  t.append_row({1, 2}, 0);
  t.add_row({3}, 1);
  t.swap_row(0, 1);
  t.move_row(0, 2);
  EXPECT_EQ(backend->uploads, 0);
  t.commit(3);
  EXPECT_EQ(backend->uploads, 1);
  EXPECT_THROW(t.get_device_tensor(), StateError);
  const std::vector<PageId> dev = t.read_device_tensor();
  EXPECT_EQ(dev, (std::vector<PageId>{3, 0, 0, 0, 1, 2, 0, 0, 3, 0, 0, 0}));
  t.verify();
}

TEST(DeviceMirror, RangesOutsideTheBufferThrow) {
  auto backend = make_host_backend();
  EXPECT_THROW(backend->allocate(-1), InvalidArgument);
  auto buf = backend->allocate(8);
  std::vector<std::byte> four(4);
  EXPECT_THROW(buf->upload(6, four), OutOfRange);
  EXPECT_THROW(buf->download(-1, four), OutOfRange);
  EXPECT_NO_THROW(buf->upload(4, four));
  DeviceMirror m(backend, 2, 3);
  std::vector<int32_t> host = {1, 2, 3};
  EXPECT_THROW(m.upload_rows(host, 3), OutOfRange);
  EXPECT_THROW(m.upload_rows(host, 2), InvalidArgument);
  m.upload_rows(host, 1);
  EXPECT_EQ(m.read_back(), (std::vector<int32_t>{1, 2, 3, 0, 0, 0}));
  EXPECT_THROW(DeviceMirror(nullptr, 1, 1), InvalidArgument);
  EXPECT_THROW(DeviceMirror(backend, 0, 1), InvalidArgument);
}

// Differential: the table against a naive model of the seed's semantics (valid pages per row,
// and a device copy that copies rows on commit), over a random operation sequence.
TEST(PageTable, MatchesANaiveModelOnRandomOperations) {
  constexpr int32_t kRows = 6, kCols = 7;
  std::mt19937 rng(1234);
  PageTable t(kRows, kCols, 64);
  std::vector<std::vector<PageId>> model(kRows);
  std::vector<std::vector<PageId>> device(kRows, std::vector<PageId>(kCols, 0));
  auto rand_int = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto rand_ids = [&](int n) {
    std::vector<PageId> v(static_cast<size_t>(n));
    for (auto& p : v) p = rand_int(-1, 50);  // sometimes negative: must throw
    return v;
  };
  int errors = 0;
  for (int step = 0; step < 3000; ++step) {
    const int op = rand_int(0, 5);
    const int32_t r = rand_int(-1, kRows), s = rand_int(0, kRows - 1);
    const bool row_ok = r >= 0 && r < kRows;
    const Snapshot before = snap(t);
    bool expect_ok = true;
    bool threw = false;
    try {
      if (op == 0 || op == 1) {
        const auto ids = rand_ids(rand_int(0, 4));
        const bool neg = std::any_of(ids.begin(), ids.end(), [](PageId p) { return p < 0; });
        const size_t base = op == 0 && row_ok ? model[static_cast<size_t>(r)].size() : 0;
        expect_ok = row_ok && !neg && base + ids.size() <= static_cast<size_t>(kCols);
        if (op == 0) {
          t.append_row(ids, r);
        } else {
          t.add_row(ids, r);
        }
        auto& m = model[static_cast<size_t>(r)];
        if (op == 1) m.clear();
        m.insert(m.end(), ids.begin(), ids.end());
      } else if (op == 2) {
        expect_ok = row_ok;
        t.move_row(s, r);
        model[static_cast<size_t>(r)] = model[static_cast<size_t>(s)];
      } else if (op == 3) {
        expect_ok = row_ok;
        t.swap_row(r, s);
        std::swap(model[static_cast<size_t>(r)], model[static_cast<size_t>(s)]);
      } else if (op == 4) {
        const int32_t n = rand_int(-1, kRows + 1);
        expect_ok = n >= 0 && n <= kRows;
        t.commit(n);
        for (int32_t i = 0; i < n; ++i) {
          auto& d = device[static_cast<size_t>(i)];
          std::fill(d.begin(), d.end(), 0);
          std::copy(model[static_cast<size_t>(i)].begin(), model[static_cast<size_t>(i)].end(),
                    d.begin());
        }
      } else if (rand_int(0, 20) == 0) {
        t.clear();
        for (auto& m : model) m.clear();
        for (auto& d : device) std::fill(d.begin(), d.end(), 0);
      }
    } catch (const Error&) {
      threw = true;
      ++errors;
    }
    ASSERT_EQ(threw, !expect_ok) << "step " << step << " op " << op;
    if (threw) {
      ASSERT_EQ(snap(t), before) << "step " << step;
    }
    t.verify();
    for (int32_t i = 0; i < kRows; ++i) {
      ASSERT_EQ(row_of(t, i), model[static_cast<size_t>(i)]) << "step " << step << " row " << i;
      ASSERT_EQ(device_row(t, i), device[static_cast<size_t>(i)]) << "step " << step;
    }
  }
  EXPECT_GT(errors, 100);  // the sequence exercised the error paths
}

}  // namespace
}  // namespace pagedkv
