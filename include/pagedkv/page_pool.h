// pagedkv/page_pool.h - the pool of fixed-size KV pages with prefix caching (seed 001
// PagePool; vLLM BlockPool). Pages are integer ids 0..N-1 into flat arrays.
//
// Example (11 pages, page size 16 - reference-semantics rule 5):
//   PagePool pool(11, /*enable_caching=*/true);
//   auto p0 = pool.get_new_pages(4);                  // [1,2,3,4]
//   pool.cache_full_pages(req0, p0, 0, 3, 16, 0);     // pages 1..3 carry hashes
//   ...
//   pool.free_pages(reversed(p0));                    // tail of the chain evicted first
//
// Invariants (checked by verify()):
//   - page 0 is the null page: never free, never handed out, never hashed;
//   - every other page is either in the free queue (ref count 0) or held (ref count > 0);
//     free count == queue length; usable pages == N - 1 == free + held;
//   - a page carries a hash iff it is in the prefix index under (hash, its group);
//     several pages may share one key, the index lists them in insertion order;
//   - free-queue order is the eviction order (head first), observable via get_all_free_pages.
//
// Not thread-safe: one owner (the scheduler thread) drives it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "pagedkv/kv_events.h"
#include "pagedkv/page_hash.h"
#include "pagedkv/request.h"
#include "pagedkv/types.h"

namespace pagedkv {

class FreeQueue;
class PrefixIndex;

class PagePool {
 public:
  // num_pages >= 2 (null page + at least one usable page); throws InvalidArgument otherwise.
  PagePool(int32_t num_pages, bool enable_caching, bool enable_kv_events = false);
  ~PagePool();
  PagePool(PagePool&&) noexcept;
  PagePool& operator=(PagePool&&) noexcept;
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  int32_t num_pages() const;
  bool enable_caching() const;
  PageId null_page() const { return kNullPageId; }

  // Pops n pages from the free-queue head (evicting their hashes), ref count 0 -> 1.
  // Throws InvalidArgument if n < 0, CapacityError if n > free pages (nothing changes).
  std::vector<PageId> get_new_pages(int32_t n);
  void get_new_pages(int32_t n, std::vector<PageId>& out);  // appends to out

  // Decrements each page; appends those reaching 0 to the tail, in `ordered` order.
  // The null page is ignored. Throws OutOfRange for an id not in [0, N) and StateError for a
  // page that is already free (counting repeats within `ordered`); nothing changes then.
  void free_pages(std::span<const PageId> ordered);

  // Increments each page's count, unlinking free ones from the queue (a hit on a free page).
  // The null page is ignored. Throws OutOfRange for a bad id (nothing changes).
  void touch(std::span<const PageId> pages);

  // The first-inserted cached page for (hash, group), or nullopt.
  std::optional<PageId> get_cached_page(const PageHash& hash, GroupId group) const;
  // One page per group of `groups` (appended to out) if every group hits; false otherwise
  // (out unchanged).
  bool get_cached_page(const PageHash& hash, std::span<const GroupId> groups,
                       std::vector<PageId>& out) const;

  // Gives pages[num_cached_pages, num_full_pages) the request's hashes at `page_size` (the
  // request computes them) and inserts them in the index under `group`. Null pages in that
  // range are skipped. Emits one kStored event when events are on. No-op with caching off.
  // Throws InvalidArgument / OutOfRange / StateError on inconsistent arguments (a page that
  // already carries a hash, num_full_pages beyond the request's full pages or pages.size()).
  void cache_full_pages(const Request& request, std::span<const PageId> pages,
                        int32_t num_cached_pages, int32_t num_full_pages, int32_t page_size,
                        GroupId group);

  // False (nothing changes) while any usable page is held; else clears the index and every
  // hash, emits kAllCleared, keeps the free-queue order, returns true.
  bool reset_prefix_cache();

  int32_t get_num_free_pages() const;
  // Held usable pages / usable pages (0.0 when nothing is held).
  double get_usage() const;
  // Free pages in eviction order, head first.
  std::vector<PageId> get_all_free_pages() const;

  int32_t ref_count(PageId page) const;                // OutOfRange on bad id
  std::optional<PageHash> page_hash(PageId page) const;  // nullopt if uncached
  int64_t num_cached_pages() const;                    // pages carrying a hash
  int64_t num_evictions() const;                       // hashes dropped on reallocation

  // Events since the last call (empty when events are off).
  std::vector<KVEvent> take_events();

  // Walks every invariant above; throws InternalError naming the first that fails.
  void verify() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace pagedkv
