#include "pagedkv/page_table/page_table.h"

#include <algorithm>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

int32_t checked_positive(int32_t v, const char* name) {
  PAGEDKV_CHECK_ARG(v > 0, "{} must be > 0, got {}", name, v);
  return v;
}

void check_page_ids(std::span<const PageId> page_ids, int32_t row) {
  // A branch-free min over the ids vectorizes; the offender is located only on failure.
  PageId lowest = 0;
  for (const PageId p : page_ids) lowest = std::min(lowest, p);
  if (lowest >= 0) [[likely]]
    return;
  const auto bad = std::find_if(page_ids.begin(), page_ids.end(), [](PageId p) { return p < 0; });
  PAGEDKV_CHECK_ARG(false, "page id {} at index {} for row {} is negative", *bad,
                    bad - page_ids.begin(), row);
}

}  // namespace

PageTable::PageTable(int32_t max_num_reqs, int32_t max_num_pages_per_req,
                     int32_t max_num_batched_tokens, std::shared_ptr<DeviceBackend> backend)
    : max_num_reqs_(checked_positive(max_num_reqs, "max_num_reqs")),
      max_num_pages_per_req_(checked_positive(max_num_pages_per_req, "max_num_pages_per_req")),
      max_num_batched_tokens_(checked_positive(max_num_batched_tokens, "max_num_batched_tokens")),
      staging_(static_cast<size_t>(max_num_reqs) * static_cast<size_t>(max_num_pages_per_req),
               kPageTablePadding),
      num_pages_(static_cast<size_t>(max_num_reqs), 0),
      device_(backend ? std::move(backend) : make_host_backend(), max_num_reqs,
              max_num_pages_per_req) {}

void PageTable::check_row(int32_t row, const char* what) const {
  PAGEDKV_CHECK_RANGE(row >= 0 && row < max_num_reqs_, "{} row {} out of range [0, {})", what, row,
                      max_num_reqs_);
}

void PageTable::validate_append_row(std::span<const PageId> page_ids, int32_t row) const {
  check_row(row, "append_row:");
  check_page_ids(page_ids, row);
  const int32_t have = num_pages_[static_cast<size_t>(row)];
  PAGEDKV_CHECK_CAPACITY(
      static_cast<int64_t>(page_ids.size()) <= int64_t{max_num_pages_per_req_} - have,
      "append_row: row {} holds {} pages; appending {} exceeds its capacity of {} pages", row, have,
      page_ids.size(), max_num_pages_per_req_);
}

void PageTable::validate_add_row(std::span<const PageId> page_ids, int32_t row) const {
  check_row(row, "add_row:");
  check_page_ids(page_ids, row);
  PAGEDKV_CHECK_CAPACITY(static_cast<int64_t>(page_ids.size()) <= max_num_pages_per_req_,
                         "add_row: {} pages for row {} (holding {}) exceed its capacity of {} "
                         "pages",
                         page_ids.size(), row, num_pages_[static_cast<size_t>(row)],
                         max_num_pages_per_req_);
}

void PageTable::append_row(std::span<const PageId> page_ids, int32_t row) {
  validate_append_row(page_ids, row);
  int32_t& count = num_pages_[static_cast<size_t>(row)];
  std::copy(page_ids.begin(), page_ids.end(), staging_row(row) + count);
  count += static_cast<int32_t>(page_ids.size());
}

void PageTable::add_row(std::span<const PageId> page_ids, int32_t row) {
  validate_add_row(page_ids, row);
  int32_t& count = num_pages_[static_cast<size_t>(row)];
  PageId* dst = staging_row(row);
  std::copy(page_ids.begin(), page_ids.end(), dst);
  const int32_t n = static_cast<int32_t>(page_ids.size());
  // Columns past the old count are already padding; only the shrunk part needs it.
  if (n < count) std::fill(dst + n, dst + count, kPageTablePadding);
  count = n;
}

void PageTable::move_row(int32_t src, int32_t tgt) {
  check_row(src, "move_row: source");
  check_row(tgt, "move_row: target");
  if (src == tgt) return;
  const int32_t n = num_pages_[static_cast<size_t>(src)];
  int32_t& tgt_count = num_pages_[static_cast<size_t>(tgt)];
  const PageId* from = staging_row(src);
  PageId* to = staging_row(tgt);
  std::copy(from, from + n, to);
  if (n < tgt_count) std::fill(to + n, to + tgt_count, kPageTablePadding);
  tgt_count = n;
}

void PageTable::swap_row(int32_t a, int32_t b) {
  check_row(a, "swap_row: first");
  check_row(b, "swap_row: second");
  if (a == b) return;
  int32_t& ca = num_pages_[static_cast<size_t>(a)];
  int32_t& cb = num_pages_[static_cast<size_t>(b)];
  // Past both counts both rows hold padding, so swapping the longer prefix swaps everything.
  const int32_t n = std::max(ca, cb);
  std::swap_ranges(staging_row(a), staging_row(a) + n, staging_row(b));
  std::swap(ca, cb);
}

void PageTable::commit(int32_t num_reqs) {
  PAGEDKV_CHECK_ARG(num_reqs >= 0, "commit: num_reqs must be >= 0, got {}", num_reqs);
  PAGEDKV_CHECK_RANGE(num_reqs <= max_num_reqs_, "commit: num_reqs {} exceeds max_num_reqs {}",
                      num_reqs, max_num_reqs_);
  device_.upload_rows(staging_, num_reqs);
}

void PageTable::clear() {
  std::fill(staging_.begin(), staging_.end(), kPageTablePadding);
  std::fill(num_pages_.begin(), num_pages_.end(), 0);
  device_.zero();
}

PageTableView PageTable::get_cpu_tensor() const {
  return {staging_.data(), max_num_reqs_, max_num_pages_per_req_};
}

PageTableView PageTable::get_device_tensor() const {
  const int32_t* data = device_.host_data();
  PAGEDKV_CHECK_STATE(data != nullptr,
                      "get_device_tensor: backend '{}' is not host-addressable; use "
                      "read_device_tensor()",
                      device_.backend().name());
  return {data, max_num_reqs_, max_num_pages_per_req_};
}

std::vector<PageId> PageTable::read_device_tensor() const { return device_.read_back(); }

std::span<const PageId> PageTable::row(int32_t row) const {
  check_row(row, "row:");
  return get_cpu_tensor().row(row).first(static_cast<size_t>(num_pages_[static_cast<size_t>(row)]));
}

int32_t PageTable::num_pages(int32_t row) const {
  check_row(row, "num_pages:");
  return num_pages_[static_cast<size_t>(row)];
}

void PageTable::verify() const {
  PAGEDKV_ASSERT(staging_.size() == static_cast<size_t>(max_num_reqs_) *
                                        static_cast<size_t>(max_num_pages_per_req_),
                 "staging holds {} elements, expected {} x {}", staging_.size(), max_num_reqs_,
                 max_num_pages_per_req_);
  PAGEDKV_ASSERT(num_pages_.size() == static_cast<size_t>(max_num_reqs_),
                 "{} row counts for {} rows", num_pages_.size(), max_num_reqs_);
  PAGEDKV_ASSERT(device_.rows() == max_num_reqs_ && device_.cols() == max_num_pages_per_req_,
                 "device copy is [{}, {}], staging is [{}, {}]", device_.rows(), device_.cols(),
                 max_num_reqs_, max_num_pages_per_req_);
  const PageTableView cpu = get_cpu_tensor();
  for (int32_t r = 0; r < max_num_reqs_; ++r) {
    const int32_t n = num_pages_[static_cast<size_t>(r)];
    PAGEDKV_ASSERT(n >= 0 && n <= max_num_pages_per_req_, "row {} count {} outside [0, {}]", r, n,
                   max_num_pages_per_req_);
    for (int32_t c = 0; c < max_num_pages_per_req_; ++c) {
      const PageId p = cpu(r, c);
      if (c < n) {
        PAGEDKV_ASSERT(p >= 0, "row {} column {} holds negative page id {}", r, c, p);
      } else {
        PAGEDKV_ASSERT(p == kPageTablePadding, "row {} column {} past its {} pages holds {}", r, c,
                       n, p);
      }
    }
  }
  const std::vector<PageId> device = read_device_tensor();
  for (size_t i = 0; i < device.size(); ++i) {
    PAGEDKV_ASSERT(device[i] >= 0, "device element {} holds negative page id {}", i, device[i]);
  }
}

}  // namespace pagedkv
