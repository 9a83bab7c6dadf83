// pagedkv/compat/hbm_page_manager.h - the seed-002 page manager: a plain allocator of HBM pages
// without prefix caching, kept for callers written against that API. It is a thin facade over
// a PagePool with caching off, so both share one allocation path and one set of checks.
//
// Example:
//   HBMPageManager mgr(/*num_pages=*/64, /*page_size=*/16);
//   auto pages = mgr.alloc_prefill_hbm_pages(40);  // cdiv(40, 16) = 3 pages: [1, 2, 3]
//   mgr.alloc_hbm_pages(1000);                     // not enough free pages: [] (seed behaviour)
//   mgr.free_hbm_pages(pages);                     // page 0 (the dummy page) would be ignored
//
// Invariants: page 0 (current_page_index(), the dummy page) is never handed out; the other
// num_pages - 1 pages are each either free or allocated (verify()).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/pool/page_pool.h"

namespace pagedkv {

class HBMPageManager {
 public:
  // Throws InvalidArgument unless num_pages >= 2 and page_size > 0.
  HBMPageManager(int32_t num_pages, int32_t page_size);

  int32_t page_size() const { return page_size_; }
  // The dummy page every unused page-table entry points at (always 0).
  PageId current_page_index() const { return kNullPageId; }
  int32_t num_pages() const { return pool_.num_pages(); }
  int32_t num_free_pages() const { return pool_.get_num_free_pages(); }

  // cdiv(prompt_len, page_size) pages, or an empty list if that many are not free (or the
  // count is <= 0).
  std::vector<PageId> alloc_prefill_hbm_pages(int64_t prompt_len);
  // n pages in free order, or an empty list if n <= 0 or fewer than n are free.
  std::vector<PageId> alloc_hbm_pages(int64_t n);
  // Returns pages to the free list in the given order; the dummy page 0 is skipped. Throws
  // OutOfRange for an id not in [0, num_pages) and StateError for a page that is not
  // allocated (double free); nothing changes then.
  void free_hbm_pages(std::span<const PageId> pages);

  const PagePool& pool() const { return pool_; }
  void verify() const { pool_.verify(); }

 private:
  int32_t page_size_;
  PagePool pool_;
};

}  // namespace pagedkv
