#include "pagedkv/page_table/batch_layout.h"

#include <algorithm>
#include <limits>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

void check_table(const PageTableView& table, std::span<const int32_t> num_pages_per_row,
                 int32_t page_size, const char* what) {
  PAGEDKV_CHECK_ARG(page_size > 0, "{}: page_size must be > 0, got {}", what, page_size);
  PAGEDKV_CHECK_ARG(num_pages_per_row.size() == static_cast<size_t>(table.num_rows),
                    "{}: {} row counts for a table of {} rows", what, num_pages_per_row.size(),
                    table.num_rows);
}

void check_row(const PageTableView& table, size_t b, int32_t row, const char* what) {
  PAGEDKV_CHECK_RANGE(row >= 0 && row < table.num_rows,
                      "{}: request {} row {} out of range [0, {})", what, b, row, table.num_rows);
}

// max_tokens: the table's token budget (max_num_batched_tokens), or -1 for none.
int64_t slot_mapping_impl(const PageTableView& table, std::span<const int32_t> num_pages_per_row,
                          int32_t page_size, const SlotMappingBatch& batch, std::span<int64_t> out,
                          int64_t padding, int64_t max_tokens) {
  constexpr const char* kWhat = "compute_slot_mapping";
  check_table(table, num_pages_per_row, page_size, kWhat);
  const size_t n = batch.rows.size();
  PAGEDKV_CHECK_ARG(batch.start_positions.size() == n && batch.num_tokens.size() == n,
                    "{}: rows, start_positions and num_tokens have lengths {}, {}, {}", kWhat, n,
                    batch.start_positions.size(), batch.num_tokens.size());
  int64_t total = 0;
  for (size_t b = 0; b < n; ++b) {
    const int32_t row = batch.rows[b];
    const int32_t start = batch.start_positions[b];
    const int32_t count = batch.num_tokens[b];
    check_row(table, b, row, kWhat);
    PAGEDKV_CHECK_ARG(start >= 0 && count >= 0,
                      "{}: request {} has start position {} and {} tokens; both must be >= 0",
                      kWhat, b, start, count);
    const int64_t end = int64_t{start} + count;
    const int32_t have = num_pages_per_row[static_cast<size_t>(row)];
    PAGEDKV_CHECK_RANGE(count == 0 || (end - 1) / page_size < have,
                        "{}: request {} (row {}) positions [{}, {}) need {} pages but the row "
                        "holds {}",
                        kWhat, b, row, start, end, cdiv<int64_t>(end, page_size), have);
    total += count;
  }
  PAGEDKV_CHECK_CAPACITY(total <= static_cast<int64_t>(out.size()),
                         "{}: the batch has {} tokens, the output holds {}", kWhat, total,
                         out.size());
  PAGEDKV_CHECK_CAPACITY(max_tokens < 0 || total <= max_tokens,
                         "{}: the batch has {} tokens, max_num_batched_tokens is {}", kWhat, total,
                         max_tokens);

  // Walk each request page by page: a run of consecutive slots per page, no division per token.
  int64_t* dst = out.data();
  for (size_t b = 0; b < n; ++b) {
    const std::span<const PageId> pages = table.row(batch.rows[b]);
    int64_t pos = batch.start_positions[b];
    int64_t left = batch.num_tokens[b];
    while (left > 0) {
      const int64_t offset = pos % page_size;
      const int64_t run = std::min<int64_t>(left, page_size - offset);
      const int64_t first =
          int64_t{pages[static_cast<size_t>(pos / page_size)]} * page_size + offset;
      for (int64_t i = 0; i < run; ++i) dst[i] = first + i;
      dst += run;
      pos += run;
      left -= run;
    }
  }
  std::fill(out.begin() + total, out.end(), padding);
  return total;
}

}  // namespace

int64_t compute_slot_mapping(const PageTableView& table, std::span<const int32_t> num_pages_per_row,
                             int32_t page_size, const SlotMappingBatch& batch,
                             std::span<int64_t> out, int64_t padding) {
  return slot_mapping_impl(table, num_pages_per_row, page_size, batch, out, padding, -1);
}

int64_t compute_slot_mapping(const PageTable& table, int32_t page_size,
                             const SlotMappingBatch& batch, std::span<int64_t> out,
                             int64_t padding) {
  return slot_mapping_impl(table.get_cpu_tensor(), table.num_pages_per_row(), page_size, batch, out,
                           padding, table.max_num_batched_tokens());
}

int64_t flashinfer_num_indices(int32_t page_size, std::span<const int32_t> seq_lens) {
  PAGEDKV_CHECK_ARG(page_size > 0, "flashinfer_num_indices: page_size must be > 0, got {}",
                    page_size);
  int64_t total = 0;
  for (size_t b = 0; b < seq_lens.size(); ++b) {
    PAGEDKV_CHECK_ARG(seq_lens[b] >= 0, "flashinfer_num_indices: request {} has seq_len {} < 0", b,
                      seq_lens[b]);
    total += cdiv<int64_t>(seq_lens[b], page_size);
  }
  return total;
}

int64_t export_flashinfer_layout(const PageTableView& table,
                                 std::span<const int32_t> num_pages_per_row, int32_t page_size,
                                 const FlashInferBatch& batch, const FlashInferPageIndex& out) {
  constexpr const char* kWhat = "export_flashinfer_layout";
  check_table(table, num_pages_per_row, page_size, kWhat);
  const size_t n = batch.rows.size();
  PAGEDKV_CHECK_ARG(batch.seq_lens.size() == n, "{}: {} rows but {} seq_lens", kWhat, n,
                    batch.seq_lens.size());
  int64_t total = 0;
  for (size_t b = 0; b < n; ++b) {
    const int32_t row = batch.rows[b];
    const int32_t len = batch.seq_lens[b];
    check_row(table, b, row, kWhat);
    PAGEDKV_CHECK_ARG(len >= 0, "{}: request {} has seq_len {} < 0", kWhat, b, len);
    const int64_t need = cdiv<int64_t>(len, page_size);
    const int32_t have = num_pages_per_row[static_cast<size_t>(row)];
    PAGEDKV_CHECK_RANGE(need <= have,
                        "{}: request {} (row {}) has seq_len {}, needing {} pages, but the row "
                        "holds {}",
                        kWhat, b, row, len, need, have);
    total += need;
  }
  PAGEDKV_CHECK_CAPACITY(out.indptr.size() >= n + 1, "{}: indptr holds {}, the batch needs {}",
                         kWhat, out.indptr.size(), n + 1);
  PAGEDKV_CHECK_CAPACITY(out.last_page_len.size() >= n,
                         "{}: last_page_len holds {}, the batch needs {}", kWhat,
                         out.last_page_len.size(), n);
  PAGEDKV_CHECK_CAPACITY(total <= static_cast<int64_t>(out.indices.size()),
                         "{}: the batch needs {} indices, the buffer holds {}", kWhat, total,
                         out.indices.size());
  PAGEDKV_CHECK_CAPACITY(total <= std::numeric_limits<int32_t>::max(),
                         "{}: {} indices do not fit int32 indptr", kWhat, total);

  int32_t at = 0;
  out.indptr[0] = 0;
  for (size_t b = 0; b < n; ++b) {
    const int32_t len = batch.seq_lens[b];
    const auto need = static_cast<int32_t>(cdiv<int64_t>(len, page_size));
    const std::span<const PageId> pages = table.row(batch.rows[b]);
    std::copy_n(pages.begin(), need, out.indices.begin() + at);
    at += need;
    out.indptr[b + 1] = at;
    out.last_page_len[b] = len == 0 ? 0 : (len - 1) % page_size + 1;
  }
  return total;
}

int64_t export_flashinfer_layout(const PageTable& table, int32_t page_size,
                                 const FlashInferBatch& batch, const FlashInferPageIndex& out) {
  return export_flashinfer_layout(table.get_cpu_tensor(), table.num_pages_per_row(), page_size,
                                  batch, out);
}

}  // namespace pagedkv
