#include "pagedkv/compat/kv_cache_update.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/slot_ranges.h"

namespace pagedkv {

namespace {

// Threads an update uses at most, and the bytes (read + written) per thread below which it
// stays on fewer threads (as write_slots).
constexpr int kMaxThreads = 64;
constexpr int64_t kMinParallelBytes = int64_t{64} << 10;

// The applied slices of one update; both arrays are row-major with the same row size, so a
// slice is one contiguous run of bytes.
struct Slices {
  const int32_t* cache_pos;  // [n] first cache row
  const int32_t* src_pos;    // [n] first row of new_kv_tokens
  const int32_t* lens;       // [n] rows
  int64_t n;
  size_t row_bytes;
  const char* from;
  char* to;

  // Applies, in order, the slices whose first cache row lies in [row_begin, row_end).
  void copy(int64_t row_begin, int64_t row_end) const {
    for (int64_t i = 0; i < n; ++i) {
      if (lens[i] == 0 || cache_pos[i] < row_begin || cache_pos[i] >= row_end) continue;
      std::memcpy(to + static_cast<size_t>(cache_pos[i]) * row_bytes,
                  from + static_cast<size_t>(src_pos[i]) * row_bytes,
                  static_cast<size_t>(lens[i]) * row_bytes);
    }
  }
};

// Cache-row ranges of about equal bytes, cut at page boundaries: a slice lies inside one page,
// so it falls in exactly one range, and slices writing the same rows share a thread.
void split_by_pages(const Slices& s, int32_t page_size, int n, std::span<int64_t> bounds) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    if (s.lens[i] == 0) continue;  // unchecked positions: copy() skips these slices
    lo = std::min<int64_t>(lo, s.cache_pos[i]);
    hi = std::max<int64_t>(hi, s.cache_pos[i]);
  }
  SlotRanges ranges(std::min(lo, hi), hi);
  for (int64_t i = 0; i < s.n; ++i) {
    if (s.lens[i] != 0) ranges.add(s.cache_pos[i], s.lens[i]);
  }
  ranges.cut(n, page_size, bounds);
}

}  // namespace

void kv_cache_update(ConstTokenTensor src, std::span<const int32_t> slice_indices,
                     TokenTensor cache, int64_t total_update_slices, int32_t page_size) {
  src.check("new_kv_tokens");
  cache.check("kv_cache_pages");
  PAGEDKV_CHECK_ARG(src.dtype == cache.dtype, "new_kv_tokens dtype {} != kv_cache_pages dtype {}",
                    dtype_name(src.dtype), dtype_name(cache.dtype));
  PAGEDKV_CHECK_ARG(src.heads == cache.heads && src.dim == cache.dim,
                    "new_kv_tokens [*, {}, {}] does not match kv_cache_pages [*, {}, {}]",
                    src.heads, src.dim, cache.heads, cache.dim);
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  PAGEDKV_CHECK_ARG(cache.rows % page_size == 0,
                    "kv_cache_pages rows {} is not a multiple of page_size {}", cache.rows,
                    page_size);
  PAGEDKV_CHECK_ARG(slice_indices.size() % 3 == 0,
                    "slice_indices must be [3, num_slices], got {} values", slice_indices.size());
  const auto num_slices = static_cast<int64_t>(slice_indices.size() / 3);
  PAGEDKV_CHECK_ARG(total_update_slices >= 0 && total_update_slices <= num_slices,
                    "total_update_slices {} outside [0, num_slices = {}]", total_update_slices,
                    num_slices);
  const int32_t* cache_pos = slice_indices.data();
  const int32_t* src_pos = cache_pos + num_slices;
  const int32_t* lens = src_pos + num_slices;
  for (int64_t i = 0; i < total_update_slices; ++i) {
    const int64_t c = cache_pos[i], s = src_pos[i], n = lens[i];
    PAGEDKV_CHECK_ARG(n >= 0 && n <= page_size, "slice {}: length {} outside [0, page_size = {}]",
                      i, n, page_size);
    if (n == 0) continue;
    PAGEDKV_CHECK_RANGE(c >= 0 && c + n <= cache.rows,
                        "slice {}: cache rows [{}, {}) outside kv_cache_pages [0, {})", i, c, c + n,
                        cache.rows);
    PAGEDKV_CHECK_ARG(c % page_size + n <= page_size,
                      "slice {}: cache rows [{}, {}) cross the page boundary at {} (page_size {})",
                      i, c, c + n, (c / page_size + 1) * page_size, page_size);
    PAGEDKV_CHECK_RANGE(s >= 0 && s + n <= src.rows,
                        "slice {}: new_kv rows [{}, {}) outside new_kv_tokens [0, {})", i, s, s + n,
                        src.rows);
  }
  const Slices slices{cache_pos,
                      src_pos,
                      lens,
                      total_update_slices,
                      src.row_bytes(),
                      static_cast<const char*>(src.data),
                      static_cast<char*>(cache.data)};
  int64_t rows = 0;
  for (int64_t i = 0; i < total_update_slices; ++i) rows += lens[i];
  const auto threads = static_cast<int>(std::clamp<int64_t>(
      std::min<int64_t>(omp_get_max_threads(),
                        2 * rows * static_cast<int64_t>(slices.row_bytes) / kMinParallelBytes),
      1, kMaxThreads));
  if (threads <= 1) {
    slices.copy(0, std::numeric_limits<int64_t>::max());
    return;
  }
  std::array<int64_t, kMaxThreads + 1> bounds{};
  split_by_pages(slices, page_size, threads, bounds);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int i = 0; i < threads; ++i) {
    slices.copy(bounds[static_cast<size_t>(i)], bounds[static_cast<size_t>(i) + 1]);
  }
}

int64_t count_update_slices(std::span<const int32_t> cache_positions,
                            std::span<const int32_t> num_new_tokens, int32_t page_size) {
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  PAGEDKV_CHECK_ARG(cache_positions.size() == num_new_tokens.size(),
                    "cache_positions has {} entries, num_new_tokens {}", cache_positions.size(),
                    num_new_tokens.size());
  int64_t total = 0;
  for (size_t r = 0; r < cache_positions.size(); ++r) {
    const int64_t start = cache_positions[r], n = num_new_tokens[r];
    PAGEDKV_CHECK_ARG(start >= 0, "cache_positions[{}] must be >= 0, got {}", r, start);
    PAGEDKV_CHECK_ARG(n >= 0, "num_new_tokens[{}] must be >= 0, got {}", r, n);
    if (n == 0) continue;
    total += (start + n - 1) / page_size - start / page_size + 1;
  }
  return total;
}

int64_t build_update_slices(std::span<const PageId> page_table, int32_t pages_per_seq,
                            std::span<const int32_t> cache_positions,
                            std::span<const int32_t> num_new_tokens, int32_t page_size,
                            std::span<int32_t> slice_indices) {
  const int64_t needed = count_update_slices(cache_positions, num_new_tokens, page_size);
  PAGEDKV_CHECK_ARG(pages_per_seq > 0, "pages_per_seq must be > 0, got {}", pages_per_seq);
  const size_t num_seqs = cache_positions.size();
  PAGEDKV_CHECK_ARG(page_table.size() == num_seqs * static_cast<size_t>(pages_per_seq),
                    "page_table must be [num_seqs {}, pages_per_seq {}] = {} entries, got {}",
                    num_seqs, pages_per_seq, num_seqs * static_cast<size_t>(pages_per_seq),
                    page_table.size());
  PAGEDKV_CHECK_ARG(slice_indices.size() % 3 == 0,
                    "slice_indices must be [3, capacity], got {} values", slice_indices.size());
  const auto capacity = static_cast<int64_t>(slice_indices.size() / 3);
  PAGEDKV_CHECK_ARG(needed <= capacity, "the batch needs {} slices, slice_indices holds {}", needed,
                    capacity);
  int64_t total_tokens = 0;
  for (size_t r = 0; r < num_seqs; ++r) {
    const int64_t start = cache_positions[r], n = num_new_tokens[r];
    total_tokens += n;
    if (n == 0) continue;
    const int64_t last_page = (start + n - 1) / page_size;
    PAGEDKV_CHECK_RANGE(last_page < pages_per_seq,
                        "sequence {}: token position {} needs logical page {}, the page table "
                        "has {} columns",
                        r, start + n - 1, last_page, pages_per_seq);
    for (int64_t p = start / page_size; p <= last_page; ++p) {
      const PageId page =
          page_table[r * static_cast<size_t>(pages_per_seq) + static_cast<size_t>(p)];
      PAGEDKV_CHECK_RANGE(page >= 0, "sequence {}: page table column {} holds page id {}", r, p,
                          page);
      PAGEDKV_CHECK_RANGE(
          int64_t{page} * page_size + page_size - 1 <= std::numeric_limits<int32_t>::max(),
          "sequence {}: page {} has slots beyond int32 slice indices", r, page);
    }
  }
  PAGEDKV_CHECK_RANGE(total_tokens <= std::numeric_limits<int32_t>::max(),
                      "{} new tokens exceed int32 slice indices", total_tokens);

  int32_t* cache_row = slice_indices.data();
  int32_t* src_row = cache_row + capacity;
  int32_t* len_row = src_row + capacity;
  int64_t k = 0;
  int64_t src = 0;
  for (size_t r = 0; r < num_seqs; ++r) {
    int64_t pos = cache_positions[r];
    int64_t left = num_new_tokens[r];
    while (left > 0) {
      const int64_t col = pos / page_size, off = pos % page_size;
      const int64_t n = std::min<int64_t>(left, page_size - off);
      const PageId page =
          page_table[r * static_cast<size_t>(pages_per_seq) + static_cast<size_t>(col)];
      cache_row[k] = static_cast<int32_t>(int64_t{page} * page_size + off);
      src_row[k] = static_cast<int32_t>(src);
      len_row[k] = static_cast<int32_t>(n);
      ++k;
      pos += n;
      src += n;
      left -= n;
    }
  }
  PAGEDKV_ASSERT(k == needed, "built {} slices, counted {}", k, needed);
  for (int64_t i = k; i < capacity; ++i) cache_row[i] = src_row[i] = len_row[i] = 0;
  return k;
}

}  // namespace pagedkv
