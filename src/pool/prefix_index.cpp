#include "pagedkv/pool/prefix_index.h"

#include <algorithm>
#include <array>
#include <bit>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

constexpr uint64_t kMinTableSize = 16;
// Slots per page, so at most 1/8 of the table is full. Lower loads were measured to matter
// more than the table's size: at 1/4 a quarter of inserts and deletions already take a
// second, mispredicted probe step, at 1/2 most do.
constexpr uint64_t kSlotsPerPage = 8;
// Home slots are 32-bit fingerprints' top bits, and slot indices must stay below kNoSlot.
// The cap binds only above 2^28 pages, where the table is still less than full.
constexpr uint64_t kMaxTableSize = uint64_t{1} << 31;
constexpr size_t kLookahead = 8;  // lookup_prefix: how far ahead the table is prefetched
// The batch insert/remove: how many pages ahead memory is prefetched (enough to overlap the
// misses, few enough that the lines are still cached when used).
constexpr size_t kPrefetchDistance = 16;

uint64_t table_size_for(int32_t num_pages) {
  return std::bit_ceil(
      std::clamp(kSlotsPerPage * static_cast<uint64_t>(num_pages), kMinTableSize, kMaxTableSize));
}

}  // namespace

PrefixIndex::PrefixIndex(int32_t num_pages) {
  PAGEDKV_CHECK_ARG(num_pages >= 0, "PrefixIndex num_pages must be >= 0, got {}", num_pages);
  recs_.assign(static_cast<size_t>(num_pages), PageRec{});
  hashes_.assign(static_cast<size_t>(num_pages), PageHash{});
  const uint64_t size = table_size_for(num_pages);
  table_.assign(size, Slot{});
  mask_ = static_cast<uint32_t>(size - 1);
  shift_ = static_cast<uint32_t>(32 - std::countr_zero(size));
}

bool PrefixIndex::contains(PageId page) const {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < num_pages(), "page id {} out of range [0, {})", page,
                      num_pages());
  return contains_unchecked(page);
}

const PageHash& PrefixIndex::hash_of(PageId page) const {
  PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash", page);
  return hashes_[page];
}

GroupId PrefixIndex::group_of(PageId page) const {
  PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash", page);
  return recs_[page].group;
}

inline bool PrefixIndex::holds(const PageHash* hashes, const Slot& s, uint32_t fp,
                               const PageHash& hash) {
  if (s.fp != fp) return false;
  const PageHash& h = hashes[s.head];
  // Word-wise, so that the compare stays inline (operator== calls memcmp).
  return ((h.words[0] ^ hash.words[0]) | (h.words[1] ^ hash.words[1]) |
          (h.words[2] ^ hash.words[2]) | (h.words[3] ^ hash.words[3])) == 0;
}

inline uint32_t PrefixIndex::find_slot(const PageHash& hash, uint32_t fp) const {
  const Slot* slots = table_.data();
  for (uint32_t i = home_slot(fp, shift_);; i = (i + 1) & mask_) {
    const Slot& s = slots[i];
    if (s.head == kNoPage) return kNoSlot;
    if (holds(hashes_.data(), s, fp, hash)) return i;
  }
}

PageId PrefixIndex::lookup(const PageHash& hash, GroupId group) const {
  const uint32_t slot = find_slot(hash, fingerprint(hash, group));
  return slot == kNoSlot ? kNoPage : table_[slot].head;
}

int32_t PrefixIndex::lookup_prefix(std::span<const PageHash> hashes, GroupId group,
                                   std::vector<PageId>& out) const {
  // Each fingerprint is computed once, kLookahead hashes ahead, to prefetch its home slot; a
  // ring keeps it until its lookup.
  std::array<uint32_t, kLookahead> fps;
  const size_t n = hashes.size();
  auto start = [&](size_t i) {
    const uint32_t fp = fingerprint(hashes[i], group);
    fps[i % kLookahead] = fp;
    __builtin_prefetch(&table_[home_slot(fp, shift_)]);
  };
  for (size_t i = 0; i < std::min(n, kLookahead); ++i) start(i);
  size_t found = 0;
  for (; found < n; ++found) {
    const uint32_t fp = fps[found % kLookahead];
    if (found + kLookahead < n) start(found + kLookahead);
    const uint32_t slot = find_slot(hashes[found], fp);
    if (slot == kNoSlot) break;
    out.push_back(table_[slot].head);
  }
  return static_cast<int32_t>(found);
}

std::vector<PageId> PrefixIndex::pages_for(const PageHash& hash, GroupId group) const {
  std::vector<PageId> out;
  const PageId head = lookup(hash, group);
  if (head == kNoPage) return out;
  PageId p = head;
  do {
    out.push_back(p);
    p = recs_[p].next;
  } while (p != head);
  return out;
}

void PrefixIndex::insert(const PageHash& hash, GroupId group, PageId page) {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < num_pages(), "page id {} out of range [0, {})", page,
                      num_pages());
  PAGEDKV_CHECK_ARG(!hash.empty(), "cannot index page {} under the empty hash", page);
  PAGEDKV_CHECK_ARG(group >= 0, "group id must be >= 0, got {}", group);
  PAGEDKV_CHECK_STATE(!contains_unchecked(page), "page {} already carries a hash", page);
  insert_unchecked(hash, group, page);
}

inline bool PrefixIndex::insert_one(const Tables& t, const PageHash& hash, GroupId group,
                                    PageId page, uint32_t fp) {
  // No capacity check: the table has more slots than there are pages, and every key holds one.
  PageRec& rec = t.recs[page];
  t.hashes[page] = hash;
  rec.group = group;
  rec.fp = fp;
  for (uint32_t i = t.home(fp);; i = (i + 1) & t.mask) {
    Slot& s = t.slots[i];
    if (s.head == kNoPage) {  // a new key: this page is its list
      s = Slot{fp, page};
      rec.prev = rec.next = page;
      return true;
    }
    if (holds(t.hashes, s, fp, hash)) {  // a duplicate: link at the tail
      PageRec& head = t.recs[s.head];
      const PageId tail = head.prev;
      rec.prev = tail;
      rec.next = s.head;
      t.recs[tail].next = page;
      head.prev = page;
      return false;
    }
  }
}

void PrefixIndex::insert_unchecked(const PageHash& hash, GroupId group, PageId page) {
  num_keys_ += insert_one(tables(), hash, group, page, fingerprint(hash, group)) ? 1 : 0;
  ++num_indexed_;
}

void PrefixIndex::insert_batch(std::span<const PageHash> hashes, GroupId group,
                               std::span<const PageId> pages, PageId skip) {
  if (pages.size() == 1) {  // a decode step's page: nothing to overlap, no prefetch ring
    if (pages[0] != skip) insert_unchecked(hashes[0], group, pages[0]);
    return;
  }
  const Tables t = tables();
  // Each fingerprint is computed once, kPrefetchDistance pages ahead, to prefetch the home
  // slot; a ring keeps it until its insert.
  std::array<uint32_t, kPrefetchDistance> fps;
  const size_t n = pages.size();
  auto start = [&](size_t i) {
    const uint32_t fp = fingerprint(hashes[i], group);
    fps[i % kPrefetchDistance] = fp;
    __builtin_prefetch(&t.slots[t.home(fp)], 1);
    if (pages[i] != skip) {
      __builtin_prefetch(&t.recs[pages[i]], 1);
      __builtin_prefetch(&t.hashes[pages[i]], 1);
    }
  };
  for (size_t i = 0; i < std::min(n, kPrefetchDistance); ++i) start(i);
  int64_t keys = 0;
  int64_t inserted = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t fp = fps[i % kPrefetchDistance];
    if (i + kPrefetchDistance < n) start(i + kPrefetchDistance);
    if (pages[i] == skip) continue;
    keys += insert_one(t, hashes[i], group, pages[i], fp) ? 1 : 0;
    ++inserted;
  }
  num_keys_ += keys;
  num_indexed_ += inserted;
}

void PrefixIndex::remove(PageId page) {
  PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash to remove", page);
  remove_unchecked(page);
}

inline void PrefixIndex::erase_slot(const Tables& t, uint32_t slot) {
  // Backward-shift deletion: pull later members of the probe run into the hole as long as
  // that keeps each of them at or after its home slot.
  uint32_t hole = slot;
  for (uint32_t j = (slot + 1) & t.mask;; j = (j + 1) & t.mask) {
    const Slot s = t.slots[j];
    if (s.head == kNoPage) break;
    // Cyclic distances to j: the member may move back into the hole only if its home is not
    // strictly between the hole and j.
    if (((j - t.home(s.fp)) & t.mask) >= ((j - hole) & t.mask)) {
      t.slots[hole] = s;
      hole = j;
    }
  }
  t.slots[hole] = Slot{};
}

inline bool PrefixIndex::remove_one(const Tables& t, PageId page) {
  PageRec& r = t.recs[page];
  if (r.next != page) [[unlikely]] {
    remove_duplicate(t, page);
    return false;
  }
  // The only page of its key, so the head of its slot: found by id, no key read.
  uint32_t i = t.home(r.fp);
  for (; t.slots[i].head != page; i = (i + 1) & t.mask) {
    PAGEDKV_ASSERT(t.slots[i].head != kNoPage, "indexed page {} has no table slot", page);
  }
  r.prev = r.next = kNoPage;  // the hash stays behind: meaningless once unlinked
  erase_slot(t, i);
  return true;
}

void PrefixIndex::remove_unchecked(PageId page) {
  num_keys_ -= remove_one(tables(), page) ? 1 : 0;
  --num_indexed_;
}

int64_t PrefixIndex::remove_batch(std::span<const PageId> pages) {
  if (pages.size() == 1) {  // a decode step's page: nothing to overlap, no prefetch stages
    if (!contains_unchecked(pages[0])) return 0;
    remove_unchecked(pages[0]);
    return 1;
  }
  const Tables t = tables();
  // Two prefetch stages: a page's record 2 * kPrefetchDistance pages ahead, then - once it
  // has arrived - the home slot it names, kPrefetchDistance pages ahead.
  auto prefetch_slot_of = [&](PageId page) {
    const PageRec& r = t.recs[page];
    if (r.next != kNoPage) __builtin_prefetch(&t.slots[t.home(r.fp)], 1);
  };
  const size_t n = pages.size();
  for (size_t i = 0; i < std::min(n, 2 * kPrefetchDistance); ++i) {
    __builtin_prefetch(&t.recs[pages[i]], 1);
  }
  for (size_t i = 0; i < std::min(n, kPrefetchDistance); ++i) prefetch_slot_of(pages[i]);
  int64_t keys = 0;
  int64_t removed = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 * kPrefetchDistance < n) {
      __builtin_prefetch(&t.recs[pages[i + 2 * kPrefetchDistance]], 1);
    }
    if (i + kPrefetchDistance < n) prefetch_slot_of(pages[i + kPrefetchDistance]);
    if (t.recs[pages[i]].next == kNoPage) continue;
    keys += remove_one(t, pages[i]) ? 1 : 0;
    ++removed;
  }
  num_keys_ -= keys;
  num_indexed_ -= removed;
  return removed;
}

void PrefixIndex::remove_duplicate(const Tables& t, PageId page) {
  PageRec& r = t.recs[page];
  // Find the key's slot: by id if the page is the head, else by its key.
  uint32_t i = t.home(r.fp);
  for (;; i = (i + 1) & t.mask) {
    const Slot& s = t.slots[i];
    PAGEDKV_ASSERT(s.head != kNoPage, "indexed page {} has no table slot", page);
    if (s.head == page || holds(t.hashes, s, r.fp, t.hashes[page])) break;
  }
  if (t.slots[i].head == page) t.slots[i].head = r.next;  // the next one takes over
  t.recs[r.prev].next = r.next;
  t.recs[r.next].prev = r.prev;
  r.prev = r.next = kNoPage;
}

void PrefixIndex::clear() {
  std::fill(recs_.begin(), recs_.end(), PageRec{});
  std::fill(table_.begin(), table_.end(), Slot{});
  num_indexed_ = 0;
  num_keys_ = 0;
}

void PrefixIndex::verify() const {
  const uint64_t size = table_.size();
  const int32_t pages = num_pages();
  PAGEDKV_ASSERT(size == table_size_for(pages),
                 "table has {} slots, expected {} for {} pages at {} slots per page", size,
                 table_size_for(pages), pages, kSlotsPerPage);
  PAGEDKV_ASSERT(mask_ == size - 1 && shift_ == static_cast<uint32_t>(32 - std::countr_zero(size)),
                 "mask {} / shift {} do not match table size {}", mask_, shift_, size);
  PAGEDKV_ASSERT(hashes_.size() == recs_.size(), "{} hashes for {} page records", hashes_.size(),
                 recs_.size());

  // Every occupied slot heads a well-formed circular list of pages under one key.
  std::vector<char> seen(recs_.size(), 0);
  int64_t keys = 0;
  int64_t listed = 0;
  for (uint32_t i = 0; i < size; ++i) {
    const Slot& s = table_[i];
    if (s.head == kNoPage) continue;
    ++keys;
    PAGEDKV_ASSERT(s.head >= 0 && s.head < pages, "slot {} names invalid page {}", i, s.head);
    const PageRec& head = recs_[s.head];
    const PageHash& hash = hashes_[s.head];
    PAGEDKV_ASSERT(head.next != kNoPage, "slot {} names page {} that is not indexed", i, s.head);
    PAGEDKV_ASSERT(!hash.empty(), "page {} is indexed under the empty hash", s.head);
    PAGEDKV_ASSERT(head.group >= 0, "page {} is indexed under negative group {}", s.head,
                   head.group);
    PAGEDKV_ASSERT(s.fp == fingerprint(hash, head.group) && head.fp == s.fp,
                   "slot {} or its head page {} has a stale fingerprint", i, s.head);
    PAGEDKV_ASSERT(find_slot(hash, s.fp) == i,
                   "slot {} is not found from its home (duplicate key or broken probe run)", i);
    PageId p = s.head;
    do {
      PAGEDKV_ASSERT(p >= 0 && p < pages, "list of slot {} reaches invalid page {}", i, p);
      PAGEDKV_ASSERT(!seen[static_cast<size_t>(p)], "page {} is listed twice", p);
      seen[static_cast<size_t>(p)] = 1;
      const PageRec& r = recs_[p];
      PAGEDKV_ASSERT(r.group == head.group && hashes_[p] == hash && r.fp == head.fp,
                     "page {} in the list of page {} carries another key", p, s.head);
      PAGEDKV_ASSERT(r.next != kNoPage && recs_[r.next].prev == p,
                     "page {}: next {} does not link back", p, r.next);
      ++listed;
      p = r.next;
    } while (p != s.head);
  }
  PAGEDKV_ASSERT(keys == num_keys_, "{} occupied slots but num_keys is {}", keys, num_keys_);
  PAGEDKV_ASSERT(listed == num_indexed_, "{} pages listed but size is {}", listed, num_indexed_);
  for (size_t p = 0; p < recs_.size(); ++p) {
    const bool linked = recs_[p].next != kNoPage;
    PAGEDKV_ASSERT(linked == (seen[p] != 0), "page {} is {}linked but {}listed", p,
                   linked ? "" : "not ", seen[p] ? "" : "not ");
    if (!linked) {
      PAGEDKV_ASSERT(recs_[p].prev == kNoPage, "unindexed page {} keeps links", p);
    }
  }
}

}  // namespace pagedkv
