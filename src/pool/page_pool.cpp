#include "pagedkv/pool/page_pool.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

PagePool::PagePool(int32_t num_pages, bool enable_caching, bool enable_kv_events,
                   HashAlgorithm hash_algorithm)
    : num_pages_(num_pages),
      enable_caching_(enable_caching),
      enable_kv_events_(enable_kv_events),
      hash_algorithm_(hash_algorithm),
      free_queue_(0),
      index_(0) {
  PAGEDKV_CHECK_ARG(num_pages >= 2 && num_pages < std::numeric_limits<int32_t>::max(),
                    "num_pages must be in [2, {}) (null page + >= 1 usable page), got {}",
                    std::numeric_limits<int32_t>::max(), num_pages);
  ref_counts_.assign(static_cast<size_t>(num_pages), 0);
  free_queue_ = FreeQueue(num_pages);
  // The null page is never queued; every usable page starts free, in id order.
  for (PageId p = 1; p < num_pages; ++p) free_queue_.append_unchecked(p);
  if (enable_caching) index_ = PrefixIndex(num_pages);
}

PagePool::~PagePool() = default;
PagePool::PagePool(PagePool&&) noexcept = default;
PagePool& PagePool::operator=(PagePool&&) noexcept = default;

std::vector<PageId> PagePool::get_new_pages(int32_t n) {
  std::vector<PageId> out;
  get_new_pages(n, out);
  return out;
}

void PagePool::get_new_pages(int32_t n, std::vector<PageId>& out) {
  PAGEDKV_CHECK_ARG(n >= 0, "cannot get a negative number of pages ({})", n);
  PAGEDKV_CHECK_CAPACITY(n <= free_queue_.size(), "cannot get {} pages: only {} of {} are free", n,
                         free_queue_.size(), num_pages_ - 1);
  const size_t base = out.size();
  out.resize(base + static_cast<size_t>(n));
  // Room for one "removed" event per page, taken before any page leaves the queue.
  if (enable_kv_events_ && index_.size() > 0) events_.reserve(events_.size() + n);
  PageId* pages = out.data() + base;
  free_queue_.pop_front_n(n, pages);
  // Lazy eviction: a page leaves the index only now, when it is handed out again.
  if (index_.size() > 0) {
    if (enable_kv_events_) {
      for (int32_t i = 0; i < n; ++i) {
        if (index_.contains_unchecked(pages[i])) evict(pages[i]);
      }
    } else {
      num_evictions_ += index_.remove_batch(std::span<const PageId>(pages, static_cast<size_t>(n)));
    }
  }
  for (int32_t i = 0; i < n; ++i) ref_counts_[pages[i]] = 1;
}

// One page's eviction with its event (events on; the batch path has no per-page hook).
void PagePool::evict(PageId page) {
  KVEvent ev;
  ev.kind = KVEvent::Kind::kRemoved;
  ev.hash_algorithm = hash_algorithm_;
  ev.page_hashes.push_back(index_.hash_of(page));
  ev.group_id = index_.group_of(page);
  ev.page_ids.push_back(page);
  events_.push_back(std::move(ev));
  index_.remove_unchecked(page);
  ++num_evictions_;
}

void PagePool::free_pages(std::span<const PageId> ordered) {
  // Pass 1 checks and decrements; a repeated page is thus checked against its count after
  // the earlier decrements. On a bad id the counts already taken are restored (cold path).
  const size_t n = ordered.size();
  const PageId* ids = ordered.data();
  int32_t* counts = ref_counts_.data();
  const auto limit = static_cast<uint32_t>(num_pages_);
  size_t i = 0;
  for (; i < n; ++i) {
    const PageId p = ids[i];
    if (static_cast<uint32_t>(p) >= limit) [[unlikely]]
      break;
    if (p == kNullPageId) continue;
    free_queue_.prefetch(p);  // pass 2 reads the page's queue links
    if (counts[p] <= 0) [[unlikely]]
      break;
    --counts[p];
  }
  if (i < n) [[unlikely]] {
    for (size_t k = 0; k < i; ++k) {
      if (ids[k] != kNullPageId) ++counts[ids[k]];
    }
    // Report a bad id anywhere in the call before a double free, so the error does not
    // depend on where in the sequence the two mistakes sit.
    for (size_t k = i; k < n; ++k) {
      PAGEDKV_CHECK_RANGE(static_cast<uint32_t>(ids[k]) < limit,
                          "free_pages: page id {} out of range [0, {})", ids[k], num_pages_);
    }
    PAGEDKV_CHECK_STATE(false, "free_pages: page {} is already free (double free)", ids[i]);
  }
  // Pass 2: the pages that reached 0 join the tail as one run; a page listed twice joins
  // once, at its first position.
  free_queue_.append_if_unchecked(
      ordered, [counts](PageId p) { return p != kNullPageId && counts[p] == 0; });
}

void PagePool::touch(std::span<const PageId> pages) {
  for (const PageId p : pages) {
    PAGEDKV_CHECK_RANGE(static_cast<uint32_t>(p) < static_cast<uint32_t>(num_pages_),
                        "touch: page id {} out of range [0, {})", p, num_pages_);
  }
  for (const PageId p : pages) {
    if (p == kNullPageId) continue;
    if (ref_counts_[p] == 0) free_queue_.remove_unchecked(p);
    ++ref_counts_[p];
  }
}

std::optional<PageId> PagePool::get_cached_page(const PageHash& hash, GroupId group) const {
  PAGEDKV_CHECK_ARG(group >= 0, "group id must be >= 0, got {}", group);
  if (index_.size() == 0) return std::nullopt;
  const PageId p = index_.lookup(hash, group);
  if (p == PrefixIndex::kNoPage) return std::nullopt;
  return p;
}

int32_t PagePool::get_cached_prefix(std::span<const PageHash> hashes, GroupId group,
                                    std::vector<PageId>& out) const {
  PAGEDKV_CHECK_ARG(group >= 0, "group id must be >= 0, got {}", group);
  if (index_.size() == 0) return 0;
  return index_.lookup_prefix(hashes, group, out);
}

bool PagePool::get_cached_page(const PageHash& hash, std::span<const GroupId> groups,
                               std::vector<PageId>& out) const {
  for (const GroupId g : groups) {
    PAGEDKV_CHECK_ARG(g >= 0, "group id must be >= 0, got {}", g);
  }
  if (index_.size() == 0) return groups.empty();
  const size_t base = out.size();
  for (const GroupId g : groups) {
    const PageId p = index_.lookup(hash, g);
    if (p == PrefixIndex::kNoPage) {
      out.resize(base);
      return false;
    }
    out.push_back(p);
  }
  return true;
}

void PagePool::check_cache_arguments(const PageChainView& chain, std::span<const PageId> pages,
                                     int32_t num_cached_pages, int32_t num_full_pages,
                                     GroupId group) const {
  PAGEDKV_CHECK_ARG(chain.page_size > 0, "page_size must be > 0, got {}", chain.page_size);
  PAGEDKV_CHECK_ARG(chain.hash_algorithm == hash_algorithm_,
                    "the chain is hashed with {}, the pool holds {} hashes",
                    hash_algorithm_name(chain.hash_algorithm),
                    hash_algorithm_name(hash_algorithm_));
  PAGEDKV_CHECK_ARG(group >= 0, "group id must be >= 0, got {}", group);
  PAGEDKV_CHECK_ARG(num_cached_pages >= 0 && num_cached_pages <= num_full_pages,
                    "need 0 <= num_cached_pages <= num_full_pages, got {} and {}", num_cached_pages,
                    num_full_pages);
  PAGEDKV_CHECK_ARG(static_cast<size_t>(num_full_pages) <= pages.size(),
                    "num_full_pages {} exceeds the {} pages given", num_full_pages, pages.size());
  PAGEDKV_CHECK_ARG(static_cast<size_t>(num_full_pages) <= chain.page_hashes.size(),
                    "num_full_pages {} exceeds the {} page hashes given", num_full_pages,
                    chain.page_hashes.size());
  const int64_t tokens_needed = int64_t{num_full_pages} * chain.page_size;
  PAGEDKV_CHECK_ARG(static_cast<int64_t>(chain.token_ids.size()) >= tokens_needed,
                    "{} full pages of {} tokens need {} tokens, {} given", num_full_pages,
                    chain.page_size, tokens_needed, chain.token_ids.size());
}

// Every page of `range` (table indices from first_index on) must be a valid id, held, not yet
// hashed and listed once; null pages are skipped. Held pages have a count > 0, so a page
// already seen is marked by negating its count: repeats are found without extra memory, and
// every mark is undone before returning or throwing.
void PagePool::check_pages_cacheable(std::span<const PageId> range, int32_t first_index) {
  const PageId* ids = range.data();
  int32_t* counts = ref_counts_.data();
  const auto limit = static_cast<uint32_t>(num_pages_);
  size_t i = 0;
  for (; i < range.size(); ++i) {
    const PageId p = ids[i];
    if (static_cast<uint32_t>(p) >= limit) [[unlikely]]
      break;
    if (p == kNullPageId) continue;
    const int32_t rc = counts[p];
    if (rc <= 0 || (enable_caching_ && index_.contains_unchecked(p))) [[unlikely]]
      break;
    counts[p] = -rc;
  }
  auto unmark = [&](size_t upto) {
    for (size_t k = 0; k < upto; ++k) {
      if (ids[k] != kNullPageId) counts[ids[k]] = -counts[ids[k]];
    }
  };
  if (i == range.size()) [[likely]] {
    unmark(i);
    return;
  }
  const PageId p = ids[i];
  // Negative: marked earlier in this call (read before the marks are undone).
  const int32_t rc = static_cast<uint32_t>(p) < limit ? counts[p] : 0;
  unmark(i);
  // A bad id anywhere in the range is reported before a page in the wrong state.
  for (size_t k = i; k < range.size(); ++k) {
    PAGEDKV_CHECK_RANGE(static_cast<uint32_t>(ids[k]) < limit,
                        "cache_full_pages: page id {} (index {}) out of range [0, {})", ids[k],
                        first_index + static_cast<int64_t>(k), num_pages_);
  }
  const int64_t at = first_index + static_cast<int64_t>(i);
  PAGEDKV_CHECK_STATE(rc >= 0, "cache_full_pages: page {} appears twice", p);
  PAGEDKV_CHECK_STATE(rc != 0, "cache_full_pages: page {} (index {}) is free", p, at);
  PAGEDKV_CHECK_STATE(false, "cache_full_pages: page {} (index {}) already carries a hash", p, at);
}

// The kStored event of caching `range` (table indices from first_index on); no page_ids when
// the range holds only null pages.
KVEvent PagePool::stored_event(const PageChainView& chain, std::span<const PageId> range,
                               int32_t first_index, GroupId group) const {
  KVEvent ev;
  ev.kind = KVEvent::Kind::kStored;
  ev.hash_algorithm = hash_algorithm_;
  const auto ps = static_cast<size_t>(chain.page_size);
  for (size_t i = 0; i < range.size(); ++i) {
    if (range[i] == kNullPageId) continue;
    const size_t page = static_cast<size_t>(first_index) + i;
    ev.page_hashes.push_back(chain.page_hashes[page]);
    ev.page_ids.push_back(range[i]);
    const auto tokens = chain.token_ids.subspan(page * ps, ps);
    ev.token_ids.insert(ev.token_ids.end(), tokens.begin(), tokens.end());
  }
  // The chain parent is the hash of the page before the range: it is what the stored hashes
  // were chained from, whatever physical page (or null page) holds it.
  if (first_index > 0) ev.parent_hash = chain.page_hashes[static_cast<size_t>(first_index - 1)];
  ev.page_size = chain.page_size;
  ev.lora_id = chain.lora_id;
  ev.group_id = group;
  return ev;
}

void PagePool::cache_full_pages(const PageChainView& chain, std::span<const PageId> pages,
                                int32_t num_cached_pages, int32_t num_full_pages, GroupId group) {
  // The arguments are checked with caching off too: a caller bug should not depend on a
  // configuration flag to surface.
  check_cache_arguments(chain, pages, num_cached_pages, num_full_pages, group);
  const size_t first = static_cast<size_t>(num_cached_pages);
  const size_t count = static_cast<size_t>(num_full_pages - num_cached_pages);
  const auto range = pages.subspan(first, count);
  check_pages_cacheable(range, num_cached_pages);
  if (!enable_caching_ || range.empty()) return;

  const auto hashes = chain.page_hashes.subspan(first, count);
  if (!enable_kv_events_) {
    index_.insert_batch(hashes, group, range, kNullPageId);
    return;
  }
  // The event is built (and room for it reserved) before the index changes, so an allocation
  // failure leaves the pool as it was.
  KVEvent ev = stored_event(chain, range, num_cached_pages, group);
  if (!ev.page_ids.empty()) events_.reserve(events_.size() + 1);
  index_.insert_batch(hashes, group, range, kNullPageId);
  if (!ev.page_ids.empty()) events_.push_back(std::move(ev));
}

bool PagePool::reset_prefix_cache() {
  if (free_queue_.size() != num_pages_ - 1) return false;
  index_.clear();
  if (enable_kv_events_) {
    KVEvent ev;
    ev.kind = KVEvent::Kind::kAllCleared;
    ev.hash_algorithm = hash_algorithm_;
    events_.push_back(std::move(ev));
  }
  return true;
}

double PagePool::get_usage() const {
  const int32_t usable = num_pages_ - 1;
  return static_cast<double>(usable - free_queue_.size()) / static_cast<double>(usable);
}

std::vector<PageId> PagePool::get_all_free_pages() const { return free_queue_.to_vector(); }

int32_t PagePool::ref_count(PageId page) const {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < num_pages_, "page id {} out of range [0, {})", page,
                      num_pages_);
  return ref_counts_[page];
}

std::optional<PageHash> PagePool::page_hash(PageId page) const {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < num_pages_, "page id {} out of range [0, {})", page,
                      num_pages_);
  if (!enable_caching_ || !index_.contains_unchecked(page)) return std::nullopt;
  return index_.hash_of(page);
}

int64_t PagePool::num_cached_pages() const { return index_.size(); }

int64_t PagePool::num_evictions() const { return num_evictions_; }

std::vector<KVEvent> PagePool::take_events() {
  std::vector<KVEvent> out;
  out.swap(events_);
  return out;
}

void PagePool::verify() const {
  free_queue_.verify();
  index_.verify();
  PAGEDKV_ASSERT(ref_counts_.size() == static_cast<size_t>(num_pages_),
                 "{} ref counts for {} pages", ref_counts_.size(), num_pages_);
  PAGEDKV_ASSERT(free_queue_.capacity() == num_pages_, "free queue capacity {} != {} pages",
                 free_queue_.capacity(), num_pages_);
  PAGEDKV_ASSERT(ref_counts_[kNullPageId] == 0, "null page has ref count {}",
                 ref_counts_[kNullPageId]);
  PAGEDKV_ASSERT(!free_queue_.contains_unchecked(kNullPageId), "null page is in the free queue");
  if (enable_caching_) {
    PAGEDKV_ASSERT(index_.num_pages() == num_pages_, "index covers {} pages, pool has {}",
                   index_.num_pages(), num_pages_);
    PAGEDKV_ASSERT(!index_.contains_unchecked(kNullPageId), "null page carries a hash");
  } else {
    PAGEDKV_ASSERT(index_.size() == 0, "caching is off but {} pages carry hashes", index_.size());
  }
  int32_t held = 0;
  for (PageId p = 1; p < num_pages_; ++p) {
    const int32_t rc = ref_counts_[p];
    PAGEDKV_ASSERT(rc >= 0, "page {} has negative ref count {}", p, rc);
    PAGEDKV_ASSERT((rc == 0) == free_queue_.contains_unchecked(p),
                   "page {} has ref count {} but is {}in the free queue", p, rc,
                   free_queue_.contains_unchecked(p) ? "" : "not ");
    held += rc > 0 ? 1 : 0;
  }
  PAGEDKV_ASSERT(held + free_queue_.size() == num_pages_ - 1,
                 "{} held + {} free != {} usable pages", held, free_queue_.size(), num_pages_ - 1);
}

}  // namespace pagedkv
