// pagedkv/page_table/batch_layout.h - per-step layouts computed from a page table for one batch:
//   (a) the slot mapping: where each new token's K/V is written in the paged cache;
//   (b) the FlashInfer-style page index (indptr / indices / last_page_len) that paged
//       attention kernels read.
// Both are pure functions over a table (and its row counts) into caller-provided buffers, so
// a runner can keep persistent, fixed-size buffers (as CUDA-graph capture needs).
//
// A slot is page_id * page_size + offset: token position p of a request whose row holds pages
// P[0..] lives in slot P[p / page_size] * page_size + p % page_size.
//
// Example (page size 4; row 0 = [7, 2], row 1 = [5]):
//   std::vector<int32_t> rows = {0, 1}, starts = {3, 0}, counts = {2, 1};
//   std::vector<int64_t> slots(8);
//   compute_slot_mapping(table, 4, {rows, starts, counts}, slots);
//   // slots = [31, 8, 20, -1, -1, -1, -1, -1]   (positions 3, 4 of row 0; position 0 of row 1)
//   std::vector<int32_t> lens = {6, 1}, indptr(3), indices(3), last(2);
//   export_flashinfer_layout(table, 4, {rows, lens}, {indptr, indices, last});
//   // indptr = [0, 2, 3], indices = [7, 2, 5], last = [2, 1]; returns 3
//
// Both functions validate everything before writing anything: on any error the output
// buffers are untouched. They read the STAGING table (what the host schedules this step);
// the PageTableView overloads accept any table, e.g. a committed copy.
#pragma once

#include <cstdint>
#include <span>

#include "pagedkv/page_table/page_table.h"

namespace pagedkv {

// Slot mapping padding. -1 means "no slot": pagedkv's KV writes and vLLM skip such tokens.
// The seed pads with 0 (SLOT_MAPPING_PADDING_VAL), which makes padding tokens write into
// slot 0 (the null page); pass padding = 0 to reproduce it.
inline constexpr int64_t kSlotMappingPadding = -1;

// One step's new tokens. Request b occupies table row rows[b] and brings num_tokens[b] tokens
// at positions [start_positions[b], start_positions[b] + num_tokens[b]).
struct SlotMappingBatch {
  std::span<const int32_t> rows;             // [batch] table row of each request
  std::span<const int32_t> start_positions;  // [batch] position of its first new token, >= 0
  std::span<const int32_t> num_tokens;       // [batch] new tokens, >= 0
};

// table            [rows, cols] page ids
// num_pages_per_row [rows] valid pages at the front of each row
// out              [capacity] int64: slots of the batch's tokens, request after request, in
//                  position order; out[total, capacity) = padding
// returns          total = sum(num_tokens)
// Errors: page_size <= 0, batch spans of different lengths, num_pages_per_row.size() !=
// rows, negative start or count -> InvalidArgument; a row outside the table or a token
// position past the row's pages (position / page_size >= num_pages_per_row[row]) ->
// OutOfRange; total > out.size() -> CapacityError.
int64_t compute_slot_mapping(const PageTableView& table, std::span<const int32_t> num_pages_per_row,
                             int32_t page_size, const SlotMappingBatch& batch,
                             std::span<int64_t> out, int64_t padding = kSlotMappingPadding);

// The same over a PageTable's staging copy; also total > max_num_batched_tokens ->
// CapacityError. out is typically [max_num_batched_tokens].
int64_t compute_slot_mapping(const PageTable& table, int32_t page_size,
                             const SlotMappingBatch& batch, std::span<int64_t> out,
                             int64_t padding = kSlotMappingPadding);

// The requests whose KV an attention step reads: request b uses row rows[b] and has
// seq_lens[b] tokens in the cache, i.e. its first cdiv(seq_lens[b], page_size) pages.
struct FlashInferBatch {
  std::span<const int32_t> rows;      // [batch] table row of each request
  std::span<const int32_t> seq_lens;  // [batch] tokens in the cache, >= 0
};

// Output buffers, FlashInfer's paged-KV index arrays (its paged_kv_t). Buffers may be longer
// than needed; only the prefixes below are written.
struct FlashInferPageIndex {
  std::span<int32_t> indptr;         // [batch + 1] start of each request's pages in indices
  std::span<int32_t> indices;        // [capacity] page ids, cdiv(seq_len, page_size) per request
  std::span<int32_t> last_page_len;  // [batch] tokens in the last page: 1..page_size, 0 if empty
};

// Number of indices the export of seq_lens writes: sum of cdiv(seq_len, page_size).
// Throws InvalidArgument for page_size <= 0 or a negative seq_len.
int64_t flashinfer_num_indices(int32_t page_size, std::span<const int32_t> seq_lens);

// Fills out.indptr[0, batch], out.indices[0, total), out.last_page_len[0, batch);
// returns total (the number of indices written).
// Errors: page_size <= 0, rows/seq_lens of different lengths, num_pages_per_row.size() !=
// rows, negative seq_len -> InvalidArgument; a row outside the table or seq_len needing more
// pages than the row holds -> OutOfRange; an output buffer too short, or total > INT32_MAX
// (indptr is int32) -> CapacityError.
int64_t export_flashinfer_layout(const PageTableView& table,
                                 std::span<const int32_t> num_pages_per_row, int32_t page_size,
                                 const FlashInferBatch& batch, const FlashInferPageIndex& out);

// The same over a PageTable's staging copy.
int64_t export_flashinfer_layout(const PageTable& table, int32_t page_size,
                                 const FlashInferBatch& batch, const FlashInferPageIndex& out);

}  // namespace pagedkv
