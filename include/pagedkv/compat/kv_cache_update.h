// pagedkv/compat/kv_cache_update.h - the ragged paged KV-cache update of seed 003
// (kv_cache_update): copy runs of new K/V token rows into a flat [slots, combined_heads, dim]
// cache, one run per page slice, in place; and the helper that cuts a batch's new tokens into such
// slices.
//
// Example (page_size 16; request 0 holds 20 tokens, its page table row is {3, 7, 9, 0}, and
// 15 new tokens arrive):
//   std::vector<int32_t> slices(3 * 8);
//   int64_t n = pagedkv::build_update_slices(page_table, /*pages_per_seq=*/4,
//                                            /*cache_positions=*/{20}, /*num_new=*/{15},
//                                            /*page_size=*/16, slices);
//   // n == 2: columns (7*16 + 4, 0, 12) and (9*16, 12, 3); columns 2..7 are (0, 0, 0)
//   pagedkv::kv_cache_update(new_kv, slices, cache_rows, n, 16);
//
// Contract (docs/rules.md rule 33):
//   new_kv_tokens  [tokens, combined_heads, dim]              any dtype
//   slice_indices  [3, num_slices] int32, row-major: row 0 cache start slot, row 1 start row
//                  in new_kv_tokens, row 2 length
//   kv_cache_pages [num_pages * page_size, combined_heads, dim]   same dtype, heads and dim
//   Only the first total_update_slices slices (0 <= total <= num_slices) are applied, in
//   order; each applied slice has 0 <= len <= page_size, stays inside one page
//   (cache_pos % page_size + len <= page_size) and inside both arrays. Rows outside the
//   slices are untouched. Every slice is checked before anything is copied (strong guarantee).
//   The copy is raw (element codes): on an int8 cache it does not touch scales.
//   Undefined: new_kv_tokens overlapping kv_cache_pages.
// Speed: updates of 128 KiB or more (bytes read + written) run on up to omp_get_max_threads()
// OpenMP threads, each taking the slices of a range of pages (slices writing the same rows
// share a thread, so the later one still wins). No allocation.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/kv_cache/token_tensor.h"

namespace pagedkv {

// Applies the slices (contract above). Throws InvalidArgument (shape/dtype mismatch, len >
// page_size, a slice crossing a page, total_update_slices outside [0, num_slices]) or
// OutOfRange (a source or cache range outside its array), naming the slice, value and limit.
void kv_cache_update(ConstTokenTensor new_kv_tokens, std::span<const int32_t> slice_indices,
                     TokenTensor kv_cache_pages, int64_t total_update_slices, int32_t page_size);

// Number of slices build_update_slices produces: for every sequence, its new tokens
// [cache_positions[i], cache_positions[i] + num_new_tokens[i]) split at page boundaries.
int64_t count_update_slices(std::span<const int32_t> cache_positions,
                            std::span<const int32_t> num_new_tokens, int32_t page_size);

// Fills slice_indices [3, capacity] (capacity = slice_indices.size() / 3) for a batch whose
// new tokens are packed in sequence order in new_kv_tokens:
//   page_table      [num_seqs, pages_per_seq] row-major physical page ids
//   cache_positions [num_seqs] position of each sequence's first new token (= cached tokens)
//   num_new_tokens  [num_seqs] new tokens of each sequence (0 allowed)
// Returns the number of slices written; columns past it are set to (0, 0, 0). Checks
// everything first: InvalidArgument (sizes, negative counts, capacity too small), OutOfRange
// (a token past the table's pages, a negative page id).
int64_t build_update_slices(std::span<const PageId> page_table, int32_t pages_per_seq,
                            std::span<const int32_t> cache_positions,
                            std::span<const int32_t> num_new_tokens, int32_t page_size,
                            std::span<int32_t> slice_indices);

}  // namespace pagedkv
