#include "pagedkv/page_table/multi_group_page_table.h"

#include "pagedkv/common/errors.h"

namespace pagedkv {

MultiGroupPageTable::MultiGroupPageTable(int32_t max_num_reqs, int32_t max_model_len,
                                         int32_t max_num_batched_tokens,
                                         std::span<const int32_t> page_sizes,
                                         std::shared_ptr<DeviceBackend> backend)
    : max_model_len_(max_model_len), page_sizes_(page_sizes.begin(), page_sizes.end()) {
  PAGEDKV_CHECK_ARG(max_model_len > 0, "max_model_len must be > 0, got {}", max_model_len);
  PAGEDKV_CHECK_ARG(!page_sizes.empty(), "page_sizes must name at least one group");
  for (size_t g = 0; g < page_sizes.size(); ++g) {
    PAGEDKV_CHECK_ARG(page_sizes[g] > 0, "page size of group {} must be > 0, got {}", g,
                      page_sizes[g]);
  }
  if (!backend) backend = make_host_backend();
  tables_.reserve(page_sizes.size());
  for (const int32_t page_size : page_sizes) {
    const auto cols = static_cast<int32_t>(cdiv<int64_t>(max_model_len, page_size));
    tables_.emplace_back(max_num_reqs, cols, max_num_batched_tokens, backend);
  }
}

int32_t MultiGroupPageTable::page_size(int32_t g) const {
  PAGEDKV_CHECK_RANGE(g >= 0 && g < num_groups(), "group {} out of range [0, {})", g, num_groups());
  return page_sizes_[static_cast<size_t>(g)];
}

PageTable& MultiGroupPageTable::group(int32_t g) {
  PAGEDKV_CHECK_RANGE(g >= 0 && g < num_groups(), "group {} out of range [0, {})", g, num_groups());
  return tables_[static_cast<size_t>(g)];
}

const PageTable& MultiGroupPageTable::group(int32_t g) const {
  PAGEDKV_CHECK_RANGE(g >= 0 && g < num_groups(), "group {} out of range [0, {})", g, num_groups());
  return tables_[static_cast<size_t>(g)];
}

void MultiGroupPageTable::check_group_count(size_t n, const char* what) const {
  PAGEDKV_CHECK_ARG(n == tables_.size(), "{}: got page ids for {} groups, the table has {}", what,
                    n, tables_.size());
}

void MultiGroupPageTable::append_row(std::span<const std::vector<PageId>> page_ids, int32_t row) {
  check_group_count(page_ids.size(), "append_row");
  for (size_t g = 0; g < tables_.size(); ++g) tables_[g].validate_append_row(page_ids[g], row);
  for (size_t g = 0; g < tables_.size(); ++g) tables_[g].append_row(page_ids[g], row);
}

void MultiGroupPageTable::add_row(std::span<const std::vector<PageId>> page_ids, int32_t row) {
  check_group_count(page_ids.size(), "add_row");
  for (size_t g = 0; g < tables_.size(); ++g) tables_[g].validate_add_row(page_ids[g], row);
  for (size_t g = 0; g < tables_.size(); ++g) tables_[g].add_row(page_ids[g], row);
}

// Every group has the same rows, so checking the first group validates all of them.
void MultiGroupPageTable::move_row(int32_t src, int32_t tgt) {
  tables_.front().move_row(src, tgt);
  for (size_t g = 1; g < tables_.size(); ++g) tables_[g].move_row(src, tgt);
}

void MultiGroupPageTable::swap_row(int32_t a, int32_t b) {
  tables_.front().swap_row(a, b);
  for (size_t g = 1; g < tables_.size(); ++g) tables_[g].swap_row(a, b);
}

void MultiGroupPageTable::commit(int32_t num_reqs) {
  tables_.front().commit(num_reqs);
  for (size_t g = 1; g < tables_.size(); ++g) tables_[g].commit(num_reqs);
}

void MultiGroupPageTable::clear() {
  for (PageTable& t : tables_) t.clear();
}

void MultiGroupPageTable::append_rows_batch(
    std::span<const std::vector<std::vector<PageId>>> page_ids_per_req,
    std::span<const int32_t> req_indices) {
  PAGEDKV_CHECK_ARG(page_ids_per_req.size() == req_indices.size(),
                    "append_rows_batch: {} page-id lists for {} row indices",
                    page_ids_per_req.size(), req_indices.size());
  for (size_t i = 0; i < page_ids_per_req.size(); ++i) {
    PAGEDKV_CHECK_ARG(page_ids_per_req[i].size() == tables_.size(),
                      "append_rows_batch: request {} has page ids for {} groups, the table has {}",
                      i, page_ids_per_req[i].size(), tables_.size());
  }
  // A row may be appended to several times in one batch: validate each append against the
  // counts the earlier appends of the batch will have left.
  const int32_t rows = max_num_reqs();
  for (size_t g = 0; g < tables_.size(); ++g) {
    const PageTable& t = tables_[g];
    std::vector<int32_t> pending(t.num_pages_per_row().begin(), t.num_pages_per_row().end());
    for (size_t i = 0; i < req_indices.size(); ++i) {
      const int32_t row = req_indices[i];
      const std::vector<PageId>& ids = page_ids_per_req[i][g];
      PAGEDKV_CHECK_RANGE(row >= 0 && row < rows,
                          "append_rows_batch: request {} row {} out of range [0, {})", i, row,
                          rows);
      for (size_t k = 0; k < ids.size(); ++k) {
        PAGEDKV_CHECK_ARG(ids[k] >= 0,
                          "append_rows_batch: request {} group {}: page id {} at index {} is "
                          "negative",
                          i, g, ids[k], k);
      }
      int32_t& have = pending[static_cast<size_t>(row)];
      PAGEDKV_CHECK_CAPACITY(
          static_cast<int64_t>(ids.size()) <= int64_t{t.max_num_pages_per_req()} - have,
          "append_rows_batch: request {} group {}: row {} holds {} pages; appending {} exceeds "
          "its capacity of {} pages",
          i, g, row, have, ids.size(), t.max_num_pages_per_req());
      have += static_cast<int32_t>(ids.size());
    }
  }
  for (size_t i = 0; i < req_indices.size(); ++i) {
    for (size_t g = 0; g < tables_.size(); ++g) {
      tables_[g].append_row(page_ids_per_req[i][g], req_indices[i]);
    }
  }
}

void MultiGroupPageTable::verify() const {
  PAGEDKV_ASSERT(!tables_.empty(), "no groups");
  PAGEDKV_ASSERT(tables_.size() == page_sizes_.size(), "{} tables for {} page sizes",
                 tables_.size(), page_sizes_.size());
  for (size_t g = 0; g < tables_.size(); ++g) {
    const PageTable& t = tables_[g];
    PAGEDKV_ASSERT(t.max_num_reqs() == tables_.front().max_num_reqs(),
                   "group {} has {} rows, group 0 has {}", g, t.max_num_reqs(),
                   tables_.front().max_num_reqs());
    PAGEDKV_ASSERT(t.max_num_pages_per_req() == cdiv<int64_t>(max_model_len_, page_sizes_[g]),
                   "group {} has {} columns, expected cdiv({}, {})", g, t.max_num_pages_per_req(),
                   max_model_len_, page_sizes_[g]);
    t.verify();
  }
}

}  // namespace pagedkv
