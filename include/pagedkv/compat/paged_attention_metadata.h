// pagedkv/compat/paged_attention_metadata.h - the per-step inputs of a paged attention forward pass
// (seed 004's PagedAttentionMetadata): one prefill sequence and/or a batch of decodes, with
// the page tables that map their logical pages to physical cache pages.
//
// Example:
//   // a 37-token prompt in pages {5, 9, 2} (page_size 16), padded to 48 tokens:
//   auto pre = pagedkv::PagedAttentionMetadata::prefill(37, positions_0_to_47, {5, 9, 2});
//   // two decodes at positions 40 and 3 with 4-column page tables:
//   auto dec = pagedkv::PagedAttentionMetadata::decode({40, 3}, {5, 9, 2, 0,  7, 0, 0, 0}, 4);
//   pre.is_prefill_mode();   // true;  dec.is_decode_mode(); // true
//
// Modes: prefill fields present (prefill_position non-empty) and/or decode fields present
// (decodes_position non-empty). Prefill only -> is_prefill_mode(); decode only ->
// is_decode_mode(); both -> is_mixed_mode(); neither -> empty (init_empty()).
//
// Padding: prefill tokens at index >= prefill_length are padding and never written; a decode
// entry with decodes_position < 0 is a padded batch row and is skipped by writes and
// attention. Page table columns past the ones a sequence uses may hold anything (e.g. 0, the
// null page); page ids actually used are checked against the cache when writing.
//
// Invariants (checked at construction, InvalidArgument naming the value):
//   0 <= prefill_length <= prefill_position.size(); prefill_position.empty() implies
//   prefill_length == 0 and prefill_page_table.empty();
//   decodes_page_table.size() == decodes_position.size() * decodes_pages_per_sequence;
//   decodes_pages_per_sequence > 0 when decodes are present.
#pragma once

#include <cstdint>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv {

class PagedAttentionMetadata {
 public:
  // The seed's init_empty(): no prefill, no decodes.
  static PagedAttentionMetadata init_empty() { return PagedAttentionMetadata(); }
  // prefill_position [padded_prompt_length], prefill_page_table [num_pages_for_prefill]
  static PagedAttentionMetadata prefill(int32_t prefill_length,
                                        std::vector<int32_t> prefill_position,
                                        std::vector<PageId> prefill_page_table);
  // decodes_position [batch], decodes_page_table [batch, pages_per_sequence] row-major
  static PagedAttentionMetadata decode(std::vector<int32_t> decodes_position,
                                       std::vector<PageId> decodes_page_table,
                                       int32_t pages_per_sequence);
  // Any combination (the seed's constructor); validated as above.
  PagedAttentionMetadata(int32_t prefill_length, std::vector<int32_t> prefill_position,
                         std::vector<PageId> prefill_page_table,
                         std::vector<int32_t> decodes_position,
                         std::vector<PageId> decodes_page_table, int32_t pages_per_sequence);

  bool has_prefill() const { return !prefill_position_.empty(); }
  bool has_decodes() const { return !decodes_position_.empty(); }
  bool is_prefill_mode() const { return has_prefill() && !has_decodes(); }
  bool is_decode_mode() const { return has_decodes() && !has_prefill(); }
  bool is_mixed_mode() const { return has_prefill() && has_decodes(); }
  bool is_empty() const { return !has_prefill() && !has_decodes(); }

  int32_t prefill_length() const { return prefill_length_; }
  const std::vector<int32_t>& prefill_position() const { return prefill_position_; }
  const std::vector<PageId>& prefill_page_table() const { return prefill_page_table_; }
  const std::vector<int32_t>& decodes_position() const { return decodes_position_; }
  const std::vector<PageId>& decodes_page_table() const { return decodes_page_table_; }
  int32_t decodes_batch_size() const { return static_cast<int32_t>(decodes_position_.size()); }
  int32_t decodes_pages_per_sequence() const { return decodes_pages_per_sequence_; }
  // Page id of decode row `row`, logical page `col` (unchecked beyond a debug check).
  PageId decodes_page(int32_t row, int32_t col) const;

  bool operator==(const PagedAttentionMetadata&) const = default;

 private:
  PagedAttentionMetadata() = default;

  int32_t prefill_length_ = 0;
  std::vector<int32_t> prefill_position_;   // [padded_prompt_length]
  std::vector<PageId> prefill_page_table_;  // [num_pages_for_prefill]
  std::vector<int32_t> decodes_position_;   // [batch]
  std::vector<PageId> decodes_page_table_;  // [batch, decodes_pages_per_sequence_]
  int32_t decodes_pages_per_sequence_ = 0;
};

}  // namespace pagedkv
