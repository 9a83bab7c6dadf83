// pagedkv/pool/free_queue.h - the free pages of a pool in eviction order (head = evicted first),
// as an intrusive doubly linked list over page ids. Links live in one flat array indexed by
// page id, so no operation allocates and every single-page operation is O(1).
//
// Example:
//   FreeQueue q(5);              // empty queue over ids 0..4
//   q.append(1); q.append(2); q.append(3);
//   q.remove(2);                 // a prefix-cache hit on a free page: unlink in O(1)
//   PageId head = q.pop_front(); // 1
//   q.to_vector();               // [3]
//
// Invariants (checked by verify()):
//   - the list is a cycle through a sentinel node; following `next` from the sentinel visits
//     size() distinct ids and comes back, and `prev` mirrors `next` on every step;
//   - a page is linked iff it is in the list; unlinked pages have both links set to kUnlinked.
//
// Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"

namespace pagedkv {

class FreeQueue {
 public:
  // An empty queue over page ids [0, capacity). Throws InvalidArgument if capacity < 0.
  explicit FreeQueue(int32_t capacity);

  int32_t capacity() const { return capacity_; }
  int32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Throws OutOfRange unless 0 <= page < capacity().
  bool contains(PageId page) const;

  // The head (next to be evicted). Throws StateError when empty.
  PageId front() const;
  // Removes and returns the head. Throws StateError when empty.
  PageId pop_front();
  // Removes the n head pages into out[0, n) in queue order. Throws InvalidArgument if n < 0
  // and CapacityError if n > size() (nothing changes then).
  void pop_front_n(int32_t n, PageId* out);
  // Links `page` at the tail. Throws OutOfRange for a bad id, StateError if already queued.
  void append(PageId page);
  // Links every page at the tail in order. All ids are checked first (range, not queued,
  // no repeats); on error nothing changes.
  void append_n(std::span<const PageId> pages);
  // Unlinks `page` wherever it is. Throws OutOfRange for a bad id, StateError if not queued.
  void remove(PageId page);

  // Unchecked forms for callers that have already validated their input (the pool's hot
  // path): pop needs a non-empty queue, append an unqueued id, remove a queued id.
  PageId pop_front_unchecked() {
    const PageId page = links_[sentinel()].next;
    remove_unchecked(page);
    return page;
  }
  void append_unchecked(PageId page) {
    const int32_t tail = links_[sentinel()].prev;
    links_[page] = Links{tail, sentinel()};
    links_[tail].next = page;
    links_[sentinel()].prev = page;
    ++size_;
  }
  void remove_unchecked(PageId page) {
    const Links l = links_[page];
    links_[l.prev].next = l.next;
    links_[l.next].prev = l.prev;
    links_[page] = Links{};
    --size_;
  }
  bool contains_unchecked(PageId page) const { return links_[page].next != kUnlinked; }
  // Links at the tail, in order, every page of `pages` for which keep(page) holds and that is
  // not queued yet (a page listed twice joins once, at its first position). The run is
  // chained with the tail kept in a register and attached to the sentinel once. Unchecked:
  // every id for which keep holds must be valid.
  template <typename Keep>
  void append_if_unchecked(std::span<const PageId> pages, Keep&& keep) {
    Links* links = links_.data();
    const int32_t s = sentinel();
    int32_t tail = links[s].prev;
    int32_t added = 0;
    for (const PageId page : pages) {
      if (!keep(page) || links[page].next != kUnlinked) continue;
      links[page] = Links{tail, s};  // linked now, so a repeat later in `pages` is skipped
      links[tail].next = page;
      tail = page;
      ++added;
    }
    links[s].prev = tail;
    size_ += added;
  }
  // Starts loading the links of a valid page id (a hint for batch loops).
  void prefetch(PageId page) const { __builtin_prefetch(&links_[page], 1); }

  // Every queued page, head first.
  std::vector<PageId> to_vector() const;
  // Calls fn(page) for every queued page, head first.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (int32_t p = links_[sentinel()].next; p != sentinel(); p = links_[p].next) fn(p);
  }

  // Walks every invariant above; throws InternalError naming the first that fails.
  void verify() const;

 private:
  static constexpr int32_t kUnlinked = -1;
  struct Links {
    int32_t prev = kUnlinked;
    int32_t next = kUnlinked;
  };
  int32_t sentinel() const { return capacity_; }

  int32_t capacity_ = 0;
  int32_t size_ = 0;
  std::vector<Links> links_;  // [capacity + 1]; the last entry is the sentinel
};

}  // namespace pagedkv
