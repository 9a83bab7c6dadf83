// pagedkv/page_table/multi_group_page_table.h - one PageTable per KV-cache group, driven together
// (seed 000 MultiGroupPageTable; vLLM MultiGroupBlockTable). Group g has page size page_sizes[g]
// and cdiv(max_model_len, page_sizes[g]) columns (docs/rules.md rule 32); every group
// has max_num_reqs rows, and a row is the same request slot in every group.
//
// Example (a full-attention group with 16-token pages and a sliding-window group with 32):
//   MultiGroupPageTable tables(/*max_num_reqs=*/8, /*max_model_len=*/4096,
//                              /*max_num_batched_tokens=*/2048, std::vector<int32_t>{16, 32});
//   // tables[0] has 256 columns, tables[1] has 128.
//   std::vector<std::vector<PageId>> ids = {{10, 11}, {20}};   // one list per group
//   tables.append_row(ids, /*row=*/0);
//   tables.commit(1);
//
// Invariants (checked by verify()): num_groups() >= 1; each group's table satisfies the
// PageTable invariants and has the shape above.
//
// Errors: a per-group argument whose length is not num_groups() is InvalidArgument; otherwise
// the PageTable errors. Every group is validated before any group changes (strong guarantee).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "pagedkv/page_table/page_table.h"

namespace pagedkv {

class MultiGroupPageTable {
 public:
  // max_num_reqs, max_model_len, max_num_batched_tokens > 0; page_sizes non-empty, each > 0
  // (InvalidArgument otherwise). backend == nullptr selects HostBackend (shared by all groups).
  MultiGroupPageTable(int32_t max_num_reqs, int32_t max_model_len, int32_t max_num_batched_tokens,
                      std::span<const int32_t> page_sizes,
                      std::shared_ptr<DeviceBackend> backend = nullptr);

  int32_t num_groups() const { return static_cast<int32_t>(tables_.size()); }
  int32_t max_num_reqs() const { return tables_.front().max_num_reqs(); }
  int32_t max_model_len() const { return max_model_len_; }
  int32_t max_num_batched_tokens() const { return tables_.front().max_num_batched_tokens(); }
  // Page size of group g. Throws OutOfRange.
  int32_t page_size(int32_t g) const;
  std::span<const int32_t> page_sizes() const { return page_sizes_; }

  // page_ids [num_groups][pages]: appends page_ids[g] to row `row` of group g.
  void append_row(std::span<const std::vector<PageId>> page_ids, int32_t row);
  // page_ids [num_groups][pages]: replaces row `row` of group g by page_ids[g].
  void add_row(std::span<const std::vector<PageId>> page_ids, int32_t row);
  void move_row(int32_t src, int32_t tgt);
  void swap_row(int32_t a, int32_t b);
  void commit(int32_t num_reqs);
  void clear();

  // page_ids_per_req [num_requests][num_groups][pages], req_indices [num_requests]: appends
  // page_ids_per_req[i][g] to row req_indices[i] of group g, requests in order. A row may
  // appear several times; capacity is checked against the sum of its appends.
  // Throws InvalidArgument if the two lengths differ or a request lacks num_groups lists.
  void append_rows_batch(std::span<const std::vector<std::vector<PageId>>> page_ids_per_req,
                         std::span<const int32_t> req_indices);

  // Group g's table. Throws OutOfRange.
  PageTable& operator[](int32_t g) { return group(g); }
  const PageTable& operator[](int32_t g) const { return group(g); }
  PageTable& group(int32_t g);
  const PageTable& group(int32_t g) const;
  std::span<PageTable> page_tables() { return tables_; }
  std::span<const PageTable> page_tables() const { return tables_; }

  // Walks every invariant above; throws InternalError naming the first that fails.
  void verify() const;

 private:
  void check_group_count(size_t n, const char* what) const;

  int32_t max_model_len_;
  std::vector<int32_t> page_sizes_;  // [num_groups]
  std::vector<PageTable> tables_;    // [num_groups]
};

}  // namespace pagedkv
