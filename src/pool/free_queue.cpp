#include "pagedkv/pool/free_queue.h"

#include "pagedkv/common/errors.h"

namespace pagedkv {

FreeQueue::FreeQueue(int32_t capacity) : capacity_(capacity) {
  PAGEDKV_CHECK_ARG(capacity >= 0, "FreeQueue capacity must be >= 0, got {}", capacity);
  links_.assign(static_cast<size_t>(capacity) + 1, Links{});
  links_[sentinel()] = Links{sentinel(), sentinel()};
}

bool FreeQueue::contains(PageId page) const {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < capacity_, "page id {} out of range [0, {})", page,
                      capacity_);
  return contains_unchecked(page);
}

PageId FreeQueue::front() const {
  PAGEDKV_CHECK_STATE(size_ > 0, "front() on an empty free queue");
  return links_[sentinel()].next;
}

PageId FreeQueue::pop_front() {
  PAGEDKV_CHECK_STATE(size_ > 0, "pop_front() on an empty free queue");
  return pop_front_unchecked();
}

void FreeQueue::pop_front_n(int32_t n, PageId* out) {
  PAGEDKV_CHECK_ARG(n >= 0, "cannot pop a negative number of pages ({})", n);
  PAGEDKV_CHECK_CAPACITY(n <= size_, "cannot pop {} pages: only {} are free", n, size_);
  if (n == 0) return;
  // Walk the n head nodes once, then splice the sentinel to the node after them.
  int32_t p = links_[sentinel()].next;
  for (int32_t i = 0; i < n; ++i) {
    out[i] = p;
    const int32_t next = links_[p].next;
    links_[p] = Links{};
    p = next;
  }
  links_[sentinel()].next = p;
  links_[p].prev = sentinel();
  size_ -= n;
}

void FreeQueue::append(PageId page) {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < capacity_, "page id {} out of range [0, {})", page,
                      capacity_);
  PAGEDKV_CHECK_STATE(!contains_unchecked(page), "page {} is already in the free queue", page);
  append_unchecked(page);
}

void FreeQueue::append_n(std::span<const PageId> pages) {
  // Check everything first; a repeat inside `pages` is found by linking as we go and
  // unlinking again on failure, which restores the queue exactly (the tail is the only part
  // that moved).
  size_t linked = 0;
  auto undo = [&] {
    while (linked > 0) remove_unchecked(pages[--linked]);
  };
  for (const PageId page : pages) {
    if (page < 0 || page >= capacity_) {
      undo();
      PAGEDKV_CHECK_RANGE(false, "page id {} out of range [0, {})", page, capacity_);
    }
    if (contains_unchecked(page)) {
      undo();
      PAGEDKV_CHECK_STATE(false, "page {} is already in the free queue", page);
    }
    append_unchecked(page);
    ++linked;
  }
}

void FreeQueue::remove(PageId page) {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < capacity_, "page id {} out of range [0, {})", page,
                      capacity_);
  PAGEDKV_CHECK_STATE(contains_unchecked(page), "page {} is not in the free queue", page);
  remove_unchecked(page);
}

std::vector<PageId> FreeQueue::to_vector() const {
  std::vector<PageId> out;
  out.reserve(static_cast<size_t>(size_));
  for_each([&](PageId p) { out.push_back(p); });
  return out;
}

void FreeQueue::verify() const {
  PAGEDKV_ASSERT(links_.size() == static_cast<size_t>(capacity_) + 1,
                 "free queue has {} link slots for capacity {}", links_.size(), capacity_);
  PAGEDKV_ASSERT(size_ >= 0 && size_ <= capacity_, "free queue size {} outside [0, {}]", size_,
                 capacity_);
  // Walk from the sentinel; stop after capacity + 1 steps so a corrupt cycle cannot hang us.
  int32_t count = 0;
  int32_t prev = sentinel();
  int32_t p = links_[sentinel()].next;
  while (p != sentinel()) {
    PAGEDKV_ASSERT(p >= 0 && p < capacity_, "free queue link to invalid id {}", p);
    PAGEDKV_ASSERT(links_[p].prev == prev, "page {} has prev {} but follows {}", p, links_[p].prev,
                   prev);
    ++count;
    PAGEDKV_ASSERT(count <= size_, "free queue walk exceeds its size {}", size_);
    prev = p;
    p = links_[p].next;
  }
  PAGEDKV_ASSERT(links_[sentinel()].prev == prev, "sentinel prev {} is not the tail {}",
                 links_[sentinel()].prev, prev);
  PAGEDKV_ASSERT(count == size_, "free queue walk found {} pages, size says {}", count, size_);
  int32_t linked = 0;
  for (int32_t i = 0; i < capacity_; ++i) {
    const bool has_next = links_[i].next != kUnlinked;
    const bool has_prev = links_[i].prev != kUnlinked;
    PAGEDKV_ASSERT(has_next == has_prev, "page {} is half linked", i);
    linked += has_next ? 1 : 0;
  }
  PAGEDKV_ASSERT(linked == size_, "{} pages are linked but the queue holds {}", linked, size_);
}

}  // namespace pagedkv
