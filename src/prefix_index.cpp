#include "pagedkv/prefix_index.h"

#include <algorithm>

#include "pagedkv/errors.h"

namespace pagedkv {

namespace {

constexpr size_t kMinTableSize = 16;
// The table is kept at most 1/kMaxLoadInverse full: short probe runs keep inserts and
// backward-shift deletions to one or two slots, for 8 * 4 = 32 bytes per cached key.
constexpr uint64_t kMaxLoadInverse = 4;
constexpr size_t kLookahead = 8;  // lookup_prefix: how far ahead the table is prefetched

}  // namespace

// Real digests are uniform already, but tests and callers may build small hand-made hashes,
// so every word and the group go through a full 64-bit finalizer.
PrefixIndex::PrefixIndex(int32_t num_pages) {
  PAGEDKV_CHECK_ARG(num_pages >= 0, "PrefixIndex num_pages must be >= 0, got {}", num_pages);
  recs_.assign(static_cast<size_t>(num_pages), PageRec{});
  table_.assign(kMinTableSize, Slot{});
  mask_ = kMinTableSize - 1;
}

bool PrefixIndex::contains(PageId page) const {
  PAGEDKV_CHECK_RANGE(page >= 0 && page < num_pages(), "page id {} out of range [0, {})", page,
                      num_pages());
  return contains_unchecked(page);
}

const PageHash& PrefixIndex::hash_of(PageId page) const {
  PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash", page);
  return recs_[page].hash;
}

GroupId PrefixIndex::group_of(PageId page) const {
  PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash", page);
  return recs_[page].group;
}

uint32_t PrefixIndex::find_slot(const PageHash& hash, GroupId group, uint32_t h) const {
  for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot s = table_[i];
    if (s.head == kNoPage) return kNoSlot;
    if (s.hash32 == h) {
      const PageRec& r = recs_[s.head];
      if (r.group == group && r.hash == hash) return i;
    }
  }
}

PageId PrefixIndex::lookup(const PageHash& hash, GroupId group) const {
  const uint32_t slot = find_slot(hash, group, key_hash(hash, group));
  return slot == kNoSlot ? kNoPage : table_[slot].head;
}

int32_t PrefixIndex::lookup_prefix(std::span<const PageHash> hashes, GroupId group,
                                   std::vector<PageId>& out) const {
  const size_t n = hashes.size();
  for (size_t i = 0; i < std::min(n, kLookahead); ++i) prefetch_key(hashes[i], group);
  size_t found = 0;
  for (; found < n; ++found) {
    if (found + kLookahead < n) prefetch_key(hashes[found + kLookahead], group);
    const PageId p = lookup(hashes[found], group);
    if (p == kNoPage) break;
    out.push_back(p);
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

void PrefixIndex::insert_unchecked(const PageHash& hash, GroupId group, PageId page,
                                   uint32_t h) {
  // Grow first (possibly one key early, if this insert turns out to be a duplicate) so the
  // probe below can place the key where it stops.
  if (static_cast<uint64_t>(num_keys_ + 1) * kMaxLoadInverse > table_.size()) grow();
  PageRec& rec = recs_[page];
  rec.hash = hash;
  rec.group = group;
  rec.hash32 = h;
  for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
    Slot& s = table_[i];
    if (s.head == kNoPage) {  // a new key: this page is its list
      s = Slot{h, page};
      rec.prev = rec.next = page;
      ++num_keys_;
      break;
    }
    if (s.hash32 == h) {
      PageRec& head = recs_[s.head];
      if (head.group == group && head.hash == hash) {  // a duplicate: link at the tail
        const PageId tail = head.prev;
        rec.prev = tail;
        rec.next = s.head;
        recs_[tail].next = page;
        head.prev = page;
        break;
      }
    }
  }
  ++num_indexed_;
}

void PrefixIndex::remove(PageId page) {
  PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash to remove", page);
  remove_unchecked(page);
}

uint32_t PrefixIndex::slot_of(PageId page, const PageRec& rec) const {
  for (uint32_t i = rec.hash32 & mask_;; i = (i + 1) & mask_) {
    const Slot s = table_[i];
    if (s.head == page) return i;
    PAGEDKV_ASSERT(s.head != kNoPage, "indexed page {} has no table slot", page);
    if (s.hash32 != rec.hash32) continue;
    const PageRec& head = recs_[s.head];
    if (head.group == rec.group && head.hash == rec.hash) return i;
  }
}

void PrefixIndex::remove_unchecked(PageId page) {
  const PageRec r = recs_[page];
  const uint32_t slot = slot_of(page, r);
  if (r.next == page) {  // the last page of its key
    erase_slot(slot);
    --num_keys_;
  } else {
    recs_[r.prev].next = r.next;
    recs_[r.next].prev = r.prev;
    if (table_[slot].head == page) table_[slot].head = r.next;  // the next one takes over
  }
  recs_[page] = PageRec{};
  --num_indexed_;
}

void PrefixIndex::erase_slot(uint32_t slot) {
  // Backward-shift deletion: pull later members of the probe run into the hole as long as
  // that keeps each of them at or after its home slot.
  uint32_t hole = slot;
  uint32_t j = slot;
  for (;;) {
    j = (j + 1) & mask_;
    const Slot s = table_[j];
    if (s.head == kNoPage) break;
    const uint32_t home = s.hash32 & mask_;
    // Cyclic distances to j: the member may move back into the hole only if its home is not
    // strictly between the hole and j.
    if (((j - home) & mask_) >= ((j - hole) & mask_)) {
      table_[hole] = s;
      hole = j;
    }
  }
  table_[hole] = Slot{};
}

void PrefixIndex::grow() {
  std::vector<Slot> old = std::move(table_);
  table_.assign(old.size() * 2, Slot{});
  mask_ = static_cast<uint32_t>(table_.size() - 1);
  for (const Slot& s : old) {
    if (s.head == kNoPage) continue;
    uint32_t i = s.hash32 & mask_;
    while (table_[i].head != kNoPage) i = (i + 1) & mask_;
    table_[i] = s;
  }
}

void PrefixIndex::clear() {
  std::fill(recs_.begin(), recs_.end(), PageRec{});
  std::fill(table_.begin(), table_.end(), Slot{});
  num_indexed_ = 0;
  num_keys_ = 0;
}

void PrefixIndex::verify() const {
  PAGEDKV_ASSERT(table_.size() >= kMinTableSize && (table_.size() & (table_.size() - 1)) == 0,
                 "table size {} is not a power of two >= {}", table_.size(), kMinTableSize);
  PAGEDKV_ASSERT(mask_ == table_.size() - 1, "mask {} does not match table size {}", mask_,
                 table_.size());
  PAGEDKV_ASSERT(static_cast<uint64_t>(num_keys_) * kMaxLoadInverse <= table_.size(),
                 "table of {} slots holds {} keys (more than 1/{} full)", table_.size(),
                 kMaxLoadInverse,
                 num_keys_);

  // Every occupied slot heads a well-formed circular list of pages under one key.
  std::vector<char> seen(recs_.size(), 0);
  int64_t keys = 0;
  int64_t listed = 0;
  for (uint32_t i = 0; i < table_.size(); ++i) {
    const Slot s = table_[i];
    if (s.head == kNoPage) continue;
    ++keys;
    PAGEDKV_ASSERT(s.head >= 0 && static_cast<size_t>(s.head) < recs_.size(),
                   "slot {} names invalid page {}", i, s.head);
    const PageRec& head = recs_[s.head];
    PAGEDKV_ASSERT(head.next != kNoPage, "slot {} names page {} that is not indexed", i,
                   s.head);
    PAGEDKV_ASSERT(!head.hash.empty(), "page {} is indexed under the empty hash", s.head);
    PAGEDKV_ASSERT(s.hash32 == key_hash(head.hash, head.group) && head.hash32 == s.hash32,
                   "slot {} or its head page {} has a stale key hash", i, s.head);
    PAGEDKV_ASSERT(find_slot(head.hash, head.group, s.hash32) == i,
                   "slot {} is not found from its home (duplicate key or broken probe run)", i);
    PageId p = s.head;
    do {
      PAGEDKV_ASSERT(p >= 0 && static_cast<size_t>(p) < recs_.size(),
                     "list of slot {} reaches invalid page {}", i, p);
      PAGEDKV_ASSERT(!seen[static_cast<size_t>(p)], "page {} is listed twice", p);
      seen[static_cast<size_t>(p)] = 1;
      const PageRec& r = recs_[p];
      PAGEDKV_ASSERT(r.group == head.group && r.hash == head.hash && r.hash32 == head.hash32,
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
