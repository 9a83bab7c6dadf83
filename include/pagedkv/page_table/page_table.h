// pagedkv/page_table/page_table.h - the page table of one KV-cache group: for each request slot
// (row), the ids of the pages that hold its KV, in token order (seed 000 PageTable; vLLM
// BlockTable).
//
// Two copies: the host *staging* table, which every mutator writes, and the *committed*
// device copy (device_mirror.h), which kernels read and which changes only on commit().
//
// Example:
//   PageTable table(/*max_num_reqs=*/4, /*max_num_pages_per_req=*/8,
//                   /*max_num_batched_tokens=*/512);
//   table.append_row({3, 7}, /*row=*/0);     // staging row 0 = [3, 7]
//   table.append_row({9}, 0);                // staging row 0 = [3, 7, 9]
//   table.add_row({5}, 1);                   // row 1 replaced by [5]
//   table.swap_row(0, 1);                    // row 0 = [5], row 1 = [3, 7, 9]
//   table.commit(/*num_reqs=*/2);            // device rows [0, 2) = staging rows [0, 2)
//
// Shapes:
//   staging / device  [max_num_reqs, max_num_pages_per_req] int32 page ids, row-major
//   num_pages_per_row [max_num_reqs] int32 valid pages at the front of each staging row
//
// Invariants (checked by verify()):
//   - 0 <= num_pages_per_row[r] <= max_num_pages_per_req;
//   - staging[r][c] >= 0 for c < num_pages_per_row[r] (page 0 is the pool's null page, legal);
//   - staging[r][c] == kPageTablePadding for c >= num_pages_per_row[r]: unlike the seed, stale
//     ids never linger past a row's end, so a committed row is fully determined by its pages;
//   - every device element is >= 0 (it only ever receives staging rows or zeros).
//
// Errors (the seed silently writes out of bounds): a row outside [0, max_num_reqs) is
// OutOfRange; a negative page id is InvalidArgument; writing past a row's capacity is
// CapacityError naming the row, its count and the capacity; commit(n) needs n in
// [0, max_num_reqs]. Every check runs before anything changes (strong guarantee).
//
// Views returned by get_cpu_tensor / get_device_tensor / num_pages_per_row stay valid for
// the table's lifetime (also across moves of the table) and always show the current contents.
// Not thread-safe: one owner (the model runner's input batch) drives it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/memory/device_mirror.h"

namespace pagedkv {

// What fills the columns past a row's last page (the seed's PAGE_TABLE_PADDING_VAL).
inline constexpr PageId kPageTablePadding = 0;

// A read-only row-major int32 matrix [num_rows, num_cols] (a staging or committed table).
struct PageTableView {
  const PageId* data = nullptr;  // [num_rows, num_cols]
  int32_t num_rows = 0;
  int32_t num_cols = 0;

  // All num_cols entries of row r (no bounds check: callers validate r).
  std::span<const PageId> row(int32_t r) const {
    return {data + static_cast<size_t>(r) * static_cast<size_t>(num_cols),
            static_cast<size_t>(num_cols)};
  }
  PageId operator()(int32_t r, int32_t c) const {
    return data[static_cast<size_t>(r) * static_cast<size_t>(num_cols) + static_cast<size_t>(c)];
  }
};

class PageTable {
 public:
  // All three limits > 0 (InvalidArgument otherwise). backend == nullptr selects HostBackend.
  PageTable(int32_t max_num_reqs, int32_t max_num_pages_per_req, int32_t max_num_batched_tokens,
            std::shared_ptr<DeviceBackend> backend = nullptr);

  PageTable(PageTable&&) noexcept = default;
  PageTable& operator=(PageTable&&) noexcept = default;
  PageTable(const PageTable&) = delete;
  PageTable& operator=(const PageTable&) = delete;

  int32_t max_num_reqs() const { return max_num_reqs_; }
  int32_t max_num_pages_per_req() const { return max_num_pages_per_req_; }
  int32_t max_num_batched_tokens() const { return max_num_batched_tokens_; }
  const DeviceBackend& backend() const { return device_.backend(); }

  // Appends page_ids after row `row`'s current pages (staging only). Empty: no-op (the row is
  // still range-checked). Throws OutOfRange / InvalidArgument / CapacityError (see above).
  void append_row(std::span<const PageId> page_ids, int32_t row);
  void append_row(std::initializer_list<PageId> page_ids, int32_t row) {
    append_row(std::span<const PageId>(page_ids.begin(), page_ids.size()), row);
  }

  // Replaces row `row` by page_ids (staging only). Same errors as append_row, with the
  // capacity checked against page_ids alone.
  void add_row(std::span<const PageId> page_ids, int32_t row);
  void add_row(std::initializer_list<PageId> page_ids, int32_t row) {
    add_row(std::span<const PageId>(page_ids.begin(), page_ids.size()), row);
  }

  // Copies row src (pages and count) onto row tgt; src keeps its pages. src == tgt: no-op.
  void move_row(int32_t src, int32_t tgt);

  // Exchanges rows a and b, pages and counts. a == b: no-op.
  void swap_row(int32_t a, int32_t b);

  // Device rows [0, num_reqs) := staging rows [0, num_reqs); device rows past num_reqs keep
  // what they held. Throws InvalidArgument if num_reqs < 0, OutOfRange if > max_num_reqs.
  void commit(int32_t num_reqs);

  // Zeroes staging, device and every row count.
  void clear();

  // The staging table [max_num_reqs, max_num_pages_per_req], as writes leave it.
  PageTableView get_cpu_tensor() const;
  // The committed table in place. Throws StateError when the backend is not host-addressable
  // (use read_device_tensor there).
  PageTableView get_device_tensor() const;
  // The committed table copied back to the host [max_num_reqs * max_num_pages_per_req].
  std::vector<PageId> read_device_tensor() const;
  // [max_num_reqs] valid pages per staging row.
  std::span<const int32_t> num_pages_per_row() const { return num_pages_; }

  // The valid pages of staging row `row`. Throws OutOfRange.
  std::span<const PageId> row(int32_t row) const;
  int32_t num_pages(int32_t row) const;

  // Throw exactly what append_row / add_row would throw and change nothing; they let a caller
  // validate several tables before modifying any (MultiGroupPageTable).
  void validate_append_row(std::span<const PageId> page_ids, int32_t row) const;
  void validate_add_row(std::span<const PageId> page_ids, int32_t row) const;

  // Walks every invariant above; throws InternalError naming the first that fails.
  void verify() const;

 private:
  void check_row(int32_t row, const char* what) const;
  PageId* staging_row(int32_t row) {
    return staging_.data() + static_cast<size_t>(row) * static_cast<size_t>(max_num_pages_per_req_);
  }

  int32_t max_num_reqs_;
  int32_t max_num_pages_per_req_;
  int32_t max_num_batched_tokens_;
  std::vector<PageId> staging_;     // [max_num_reqs, max_num_pages_per_req]
  std::vector<int32_t> num_pages_;  // [max_num_reqs]
  DeviceMirror device_;             // [max_num_reqs, max_num_pages_per_req]
};

}  // namespace pagedkv
