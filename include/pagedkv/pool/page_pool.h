// pagedkv/pool/page_pool.h - the pool of fixed-size KV pages with prefix caching (seed 001
// PagePool; vLLM BlockPool). Pages are integer ids 0..N-1 into flat arrays.
//
// Example (11 pages, page size 16 - docs/rules.md rule 5):
//   PagePool pool(11, /*enable_caching=*/true);
//   auto p0 = pool.get_new_pages(4);                  // [1,2,3,4]
//   PageChainView chain{.page_hashes = req0.page_hashes(16),
//                       .token_ids = req0.all_token_ids(), .page_size = 16};
//   pool.cache_full_pages(chain, p0, 0, 3, 0);        // pages 1..3 carry hashes
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
// Errors: every call validates its arguments before changing anything (strong guarantee).
// Not thread-safe: one owner (the scheduler thread) drives it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/page_hash.h"
#include "pagedkv/pool/free_queue.h"
#include "pagedkv/pool/kv_events.h"
#include "pagedkv/pool/prefix_index.h"

namespace pagedkv {

// What one caching call stores: a request's chained page hashes at one page size and the
// tokens under them. A view: it owns nothing (the spans usually point into a Request). Page i
// of the chain has hash page_hashes[i] and tokens [i * page_size, (i + 1) * page_size).
struct PageChainView {
  std::span<const PageHash> page_hashes = {};  // [>= pages cached] chained hashes, page 0 first
  std::span<const TokenId> token_ids = {};     // [>= pages cached * page_size]; events copy them
  int32_t page_size = 0;                       // tokens per page; > 0
  std::optional<int64_t> lora_id = {};         // the adapter, reported in kStored events
  HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128;  // must be the pool's
};

class PagePool {
 public:
  // num_pages >= 2 (null page + at least one usable page); throws InvalidArgument otherwise.
  // Every hash the pool holds is of `hash_algorithm` (cache_full_pages rejects another one),
  // so its events and page_hash() results say how long their digests are.
  PagePool(int32_t num_pages, bool enable_caching, bool enable_kv_events = false,
           HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128);
  ~PagePool();
  PagePool(PagePool&&) noexcept;
  PagePool& operator=(PagePool&&) noexcept;
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  int32_t num_pages() const { return num_pages_; }
  bool enable_caching() const { return enable_caching_; }
  bool enable_kv_events() const { return enable_kv_events_; }
  HashAlgorithm hash_algorithm() const { return hash_algorithm_; }
  PageId null_page() const { return kNullPageId; }

  // Pops n pages from the free-queue head (evicting their hashes), ref count 0 -> 1.
  // Throws InvalidArgument if n < 0, CapacityError if n > free pages (nothing changes).
  std::vector<PageId> get_new_pages(int32_t n);
  void get_new_pages(int32_t n, std::vector<PageId>& out);  // appends to out

  // Decrements each page; appends those reaching 0 to the tail, in `ordered` order.
  // The null page is ignored. Throws OutOfRange for an id not in [0, N) and StateError for a
  // page that is already free (counting repeats within `ordered`; a bad id anywhere in the
  // call is reported before a double free); nothing changes then.
  void free_pages(std::span<const PageId> ordered);

  // Increments each page's count, unlinking free ones from the queue (a hit on a free page).
  // The null page is ignored. Throws OutOfRange for a bad id (nothing changes).
  void touch(std::span<const PageId> pages);

  // The first-inserted cached page for (hash, group), or nullopt (always with caching off).
  // Throws InvalidArgument for a negative group.
  std::optional<PageId> get_cached_page(const PageHash& hash, GroupId group) const;
  // One page per group of `groups` (appended to out) if every group hits; false otherwise
  // (out unchanged).
  bool get_cached_page(const PageHash& hash, std::span<const GroupId> groups,
                       std::vector<PageId>& out) const;

  // The longest cached prefix of `hashes` under `group`: appends one page per hash to `out`
  // until the first miss and returns how many. Same result as get_cached_page per hash, but
  // the index lookups of consecutive hashes overlap. Throws InvalidArgument for a negative
  // group.
  int32_t get_cached_prefix(std::span<const PageHash> hashes, GroupId group,
                            std::vector<PageId>& out) const;

  // Gives pages[i] the hash chain.page_hashes[i] for i in [num_cached_pages, num_full_pages)
  // and inserts them in the index under `group`. Null pages in that range are skipped. Emits
  // one kStored event when events are on (hashes, tokens, page size and LoRA id of the pages
  // stored); its parent hash is chain.page_hashes[num_cached_pages - 1] (none for a range
  // starting at page 0).
  // Throws InvalidArgument for chain.page_size <= 0, a negative group, counts outside
  // 0 <= num_cached_pages <= num_full_pages <= pages.size(), a chain with fewer than
  // num_full_pages hashes or num_full_pages * page_size tokens; OutOfRange for an id in the
  // range not in [0, N); StateError for a page in the range that is free, already carries a
  // hash or appears twice. Nothing changes then. With caching off the arguments are checked
  // the same way and nothing else happens.
  void cache_full_pages(const PageChainView& chain, std::span<const PageId> pages,
                        int32_t num_cached_pages, int32_t num_full_pages, GroupId group);

  // False (nothing changes) while any usable page is held; else clears the index and every
  // hash, emits kAllCleared, keeps the free-queue order, returns true.
  bool reset_prefix_cache();

  int32_t get_num_free_pages() const { return free_queue_.size(); }
  // Held usable pages / usable pages (0.0 when nothing is held).
  double get_usage() const;
  // Free pages in eviction order, head first.
  std::vector<PageId> get_all_free_pages() const;

  int32_t ref_count(PageId page) const;  // OutOfRange on bad id
  // For callers that validated the id (0 <= page < num_pages()).
  int32_t ref_count_unchecked(PageId page) const { return ref_counts_[page]; }
  std::optional<PageHash> page_hash(PageId page) const;  // nullopt if uncached
  int64_t num_cached_pages() const;                      // pages carrying a hash
  int64_t num_evictions() const;                         // hashes dropped on reallocation

  // Events since the last call (empty when events are off).
  std::vector<KVEvent> take_events();

  // Walks every invariant above; throws InternalError naming the first that fails.
  void verify() const;

  // Read-only views for tests and tools (e.g. every page under one key).
  const FreeQueue& free_queue() const { return free_queue_; }
  const PrefixIndex& prefix_index() const { return index_; }

 private:
  void evict(PageId page);
  // cache_full_pages, in the order it runs them: the argument checks, the per-page checks of
  // the range (table indices from first_index on), the kStored event.
  void check_cache_arguments(const PageChainView& chain, std::span<const PageId> pages,
                             int32_t num_cached_pages, int32_t num_full_pages, GroupId group) const;
  void check_pages_cacheable(std::span<const PageId> range, int32_t first_index);
  KVEvent stored_event(const PageChainView& chain, std::span<const PageId> range,
                       int32_t first_index, GroupId group) const;

  int32_t num_pages_ = 0;
  bool enable_caching_ = false;
  bool enable_kv_events_ = false;
  HashAlgorithm hash_algorithm_ = HashAlgorithm::kXxh3_128;
  std::vector<int32_t> ref_counts_;  // [num_pages]; entry 0 (null page) stays 0
  FreeQueue free_queue_;
  PrefixIndex index_;  // empty (and never filled) with caching off
  std::vector<KVEvent> events_;
  int64_t num_evictions_ = 0;
};

}  // namespace pagedkv
