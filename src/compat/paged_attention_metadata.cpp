#include "pagedkv/compat/paged_attention_metadata.h"

#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

PagedAttentionMetadata::PagedAttentionMetadata(int32_t prefill_length,
                                               std::vector<int32_t> prefill_position,
                                               std::vector<PageId> prefill_page_table,
                                               std::vector<int32_t> decodes_position,
                                               std::vector<PageId> decodes_page_table,
                                               int32_t pages_per_sequence) {
  PAGEDKV_CHECK_ARG(prefill_length >= 0, "prefill_length must be >= 0, got {}", prefill_length);
  PAGEDKV_CHECK_ARG(static_cast<size_t>(prefill_length) <= prefill_position.size(),
                    "prefill_length {} exceeds the {} prefill positions", prefill_length,
                    prefill_position.size());
  PAGEDKV_CHECK_ARG(!prefill_position.empty() || prefill_page_table.empty(),
                    "prefill_page_table has {} entries but there is no prefill "
                    "(prefill_position is empty)",
                    prefill_page_table.size());
  if (decodes_position.empty()) {
    PAGEDKV_CHECK_ARG(decodes_page_table.empty(),
                      "decodes_page_table has {} entries but there are no decodes",
                      decodes_page_table.size());
  } else {
    PAGEDKV_CHECK_ARG(pages_per_sequence > 0, "decodes need pages_per_sequence > 0, got {}",
                      pages_per_sequence);
    const size_t want = decodes_position.size() * static_cast<size_t>(pages_per_sequence);
    PAGEDKV_CHECK_ARG(decodes_page_table.size() == want,
                      "decodes_page_table must have batch {} * pages_per_sequence {} = {} "
                      "entries, got {}",
                      decodes_position.size(), pages_per_sequence, want, decodes_page_table.size());
  }
  prefill_length_ = prefill_length;
  prefill_position_ = std::move(prefill_position);
  prefill_page_table_ = std::move(prefill_page_table);
  decodes_position_ = std::move(decodes_position);
  decodes_page_table_ = std::move(decodes_page_table);
  decodes_pages_per_sequence_ = decodes_position_.empty() ? 0 : pages_per_sequence;
}

PagedAttentionMetadata PagedAttentionMetadata::prefill(int32_t prefill_length,
                                                       std::vector<int32_t> prefill_position,
                                                       std::vector<PageId> prefill_page_table) {
  PAGEDKV_CHECK_ARG(!prefill_position.empty(),
                    "a prefill needs prefill_position (padded prompt positions), got none");
  return PagedAttentionMetadata(prefill_length, std::move(prefill_position),
                                std::move(prefill_page_table), {}, {}, 0);
}

PagedAttentionMetadata PagedAttentionMetadata::decode(std::vector<int32_t> decodes_position,
                                                      std::vector<PageId> decodes_page_table,
                                                      int32_t pages_per_sequence) {
  PAGEDKV_CHECK_ARG(!decodes_position.empty(), "a decode step needs at least one position");
  return PagedAttentionMetadata(0, {}, {}, std::move(decodes_position),
                                std::move(decodes_page_table), pages_per_sequence);
}

PageId PagedAttentionMetadata::decodes_page(int32_t row, int32_t col) const {
  PAGEDKV_DCHECK(
      row >= 0 && row < decodes_batch_size() && col >= 0 && col < decodes_pages_per_sequence_,
      "decode page ({}, {}) outside [{}, {}]", row, col, decodes_batch_size(),
      decodes_pages_per_sequence_);
  return decodes_page_table_[static_cast<size_t>(row) * decodes_pages_per_sequence_ +
                             static_cast<size_t>(col)];
}

}  // namespace pagedkv
