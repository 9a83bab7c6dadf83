#include "pagedkv/compat/metadata_write.h"

#include <algorithm>
#include <span>

#include "pagedkv/common/errors.h"
#include "pagedkv/common/types.h"
#include "pagedkv/kv_cache/kv_cache_write.h"

namespace pagedkv {

namespace {

// Writes tokens [0, n) to slot_of(t) (< 0: skip) with write_slots, a chunk of tokens at a time
// so that the slot mapping fits on the stack. The callers checked every slot first, so no
// chunk fails after an earlier one wrote; chunks go in token order, so a slot written twice
// keeps the later token. kChunk is a multiple of every power-of-two page size up to itself, so
// the page-long runs that write_slots copies head by head are not cut.
template <class SlotOf>
void write_mapped(const PagedKVView& v, ConstTokenTensor key, ConstTokenTensor value, int64_t n,
                  SlotOf slot_of) {
  constexpr int64_t kChunk = 512;
  int64_t slots[kChunk];
  for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
    const int64_t len = std::min(kChunk, n - t0);
    for (int64_t i = 0; i < len; ++i) slots[i] = slot_of(t0 + i);
    write_slots(v, key.rows_slice(t0, len), value.rows_slice(t0, len),
                std::span<const int64_t>(slots, static_cast<size_t>(len)));
  }
}

void check_prefill(const PagedKVView& v, const ConstTokenTensor& key,
                   const PagedAttentionMetadata& md) {
  PAGEDKV_CHECK_ARG(md.has_prefill(), "write_prefill_to_cache: the metadata has no prefill");
  PAGEDKV_CHECK_ARG(static_cast<size_t>(key.rows) == md.prefill_position().size(),
                    "key/value have {} tokens, prefill_position has {} (padded prompt length)",
                    key.rows, md.prefill_position().size());
  const int64_t len = md.prefill_length();
  const int64_t ps = v.page_size;
  const auto& table = md.prefill_page_table();
  const int64_t pages_needed = cdiv(len, ps);
  PAGEDKV_CHECK_RANGE(pages_needed <= static_cast<int64_t>(table.size()),
                      "prefill of {} tokens needs {} pages of {}, prefill_page_table has {}", len,
                      pages_needed, ps, table.size());
  for (int64_t i = 0; i < pages_needed; ++i) {
    const PageId page = table[static_cast<size_t>(i)];
    PAGEDKV_CHECK_RANGE(page >= 0 && page < v.num_pages,
                        "prefill_page_table[{}] = {} outside [0, {})", i, page, v.num_pages);
  }
}

void check_decodes(const PagedKVView& v, const ConstTokenTensor& key,
                   const PagedAttentionMetadata& md) {
  PAGEDKV_CHECK_ARG(md.has_decodes(), "write_decodes_to_cache: the metadata has no decodes");
  PAGEDKV_CHECK_ARG(key.rows == md.decodes_batch_size(),
                    "key/value have {} tokens, decodes_position has {} (batch)", key.rows,
                    md.decodes_batch_size());
  const int64_t ps = v.page_size;
  const int32_t cols = md.decodes_pages_per_sequence();
  const auto& pos = md.decodes_position();
  for (int32_t b = 0; b < md.decodes_batch_size(); ++b) {
    const int64_t p = pos[static_cast<size_t>(b)];
    if (p < 0) continue;
    PAGEDKV_CHECK_RANGE(p / ps < cols,
                        "decodes_position[{}] = {} needs logical page {}, decodes_page_table has "
                        "{} columns",
                        b, p, p / ps, cols);
    const PageId page = md.decodes_page(b, static_cast<int32_t>(p / ps));
    PAGEDKV_CHECK_RANGE(page >= 0 && page < v.num_pages,
                        "decodes_page_table[{}, {}] = {} outside [0, {})", b, p / ps, page,
                        v.num_pages);
  }
}

}  // namespace

void write_prefill_to_cache(const PagedKVView& v, ConstTokenTensor key, ConstTokenTensor value,
                            const PagedAttentionMetadata& md) {
  check_write_inputs(v, key, value);
  check_prefill(v, key, md);
  const int64_t ps = v.page_size;
  const PageId* pages = md.prefill_page_table().data();
  write_mapped(v, key, value, md.prefill_length(),
               [pages, ps](int64_t t) { return int64_t{pages[t / ps]} * ps + t % ps; });
}

void write_decodes_to_cache(const PagedKVView& v, ConstTokenTensor key, ConstTokenTensor value,
                            const PagedAttentionMetadata& md) {
  check_write_inputs(v, key, value);
  check_decodes(v, key, md);
  const int64_t ps = v.page_size;
  const auto& pos = md.decodes_position();
  write_mapped(v, key, value, key.rows, [&md, &pos, ps](int64_t b) -> int64_t {
    const int64_t p = pos[static_cast<size_t>(b)];
    if (p < 0) return -1;
    return int64_t{md.decodes_page(static_cast<int32_t>(b), static_cast<int32_t>(p / ps))} * ps +
           p % ps;
  });
}

}  // namespace pagedkv
