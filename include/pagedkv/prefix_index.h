// pagedkv/prefix_index.h - the prefix-cache index of a page pool: (PageHash, group) -> the
// pages carrying that key, in insertion order (reference-semantics rules 9 and 14).
//
// Several pages may carry one key (two requests computed the same page before either was
// cached); all are kept, a lookup returns the first inserted, and removing one keeps the rest.
//
// Layout, chosen so that no operation allocates and the common ones touch few cache lines:
//   - one record per page id {key, 32-bit key hash, prev, next}: the pages under one key form
//     a circular doubly linked list (head.prev is the tail), so appending and removing any
//     page is O(1);
//   - an open-addressing table of 8-byte slots {32-bit key hash, head page}, linear probing
//     with backward-shift deletion (no tombstones), at most a quarter full. The home slot is the
//     key hash masked, so moving a slot never re-reads a key or touches a page record; a
//     removed page finds its slot by probing from its home for its own id (no key compare
//     unless the page is a duplicate that is not the head).
// The batch paths of the pool call prefetch_key / prefetch_removal a few pages ahead so that
// the random table accesses of a batch overlap instead of queueing one cache miss at a time.
//
// Example:
//   PrefixIndex index(8);
//   index.insert(h, /*group=*/0, 3);
//   index.insert(h, 0, 5);          // duplicate key: kept after page 3
//   index.lookup(h, 0);             // 3
//   index.remove(3);
//   index.lookup(h, 0);             // 5
//
// Invariants (checked by verify()):
//   - a page is indexed iff its record is linked; it is in exactly one list, the list of its
//     key; each list's head is named by exactly one table slot;
//   - keys are unique across slots; every slot is reachable from its home slot without
//     crossing an empty slot (the linear-probing invariant);
//   - the table is at most a quarter full.
//
// Not thread-safe.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/page_hash.h"
#include "pagedkv/types.h"

namespace pagedkv {

class PrefixIndex {
 public:
  static constexpr PageId kNoPage = -1;

  // An empty index over page ids [0, num_pages). Throws InvalidArgument if num_pages < 0.
  explicit PrefixIndex(int32_t num_pages);

  int32_t num_pages() const { return static_cast<int32_t>(recs_.size()); }
  int64_t size() const { return num_indexed_; }  // pages carrying a key
  int64_t num_keys() const { return num_keys_; }  // distinct (hash, group) keys

  // Throws OutOfRange unless 0 <= page < num_pages().
  bool contains(PageId page) const;
  bool contains_unchecked(PageId page) const { return recs_[page].next != kNoPage; }
  // The key of an indexed page. Throws OutOfRange for a bad id, StateError if not indexed.
  const PageHash& hash_of(PageId page) const;
  GroupId group_of(PageId page) const;

  // The first-inserted page under (hash, group), or kNoPage.
  PageId lookup(const PageHash& hash, GroupId group) const;
  // Looks up hashes[0], hashes[1], ... under `group` and appends the pages found to `out`
  // until the first miss; returns how many were found (the longest cached prefix).
  int32_t lookup_prefix(std::span<const PageHash> hashes, GroupId group,
                        std::vector<PageId>& out) const;
  // Every page under (hash, group), in insertion order.
  std::vector<PageId> pages_for(const PageHash& hash, GroupId group) const;

  // Appends `page` to the pages under (hash, group). Throws OutOfRange for a bad id,
  // InvalidArgument for the empty hash or a negative group, StateError if the page is already
  // indexed (nothing changes then).
  void insert(const PageHash& hash, GroupId group, PageId page);
  // Removes `page` from its key's list (and the key once no page is left). Throws OutOfRange
  // for a bad id, StateError if the page is not indexed.
  void remove(PageId page);
  // Unchecked forms for callers that have validated their input; `key_hash` may be passed
  // when the caller has already computed key_hash(hash, group).
  void insert_unchecked(const PageHash& hash, GroupId group, PageId page) {
    insert_unchecked(hash, group, page, key_hash(hash, group));
  }
  void insert_unchecked(const PageHash& hash, GroupId group, PageId page, uint32_t key_hash);
  void remove_unchecked(PageId page);

  // The 32-bit hash of a key that places it in the table. Real digests are uniform already;
  // the multiply spreads hand-made hashes (small words) and the group over the high bits,
  // which are the ones kept.
  static uint32_t key_hash(const PageHash& hash, GroupId group) {
    uint64_t x = hash.words[0] ^ std::rotl(hash.words[1], 21) ^ std::rotl(hash.words[2], 42) ^
                 hash.words[3] ^ (static_cast<uint64_t>(static_cast<uint32_t>(group)) << 40);
    x ^= x >> 29;
    x *= 0x9e3779b97f4a7c15ULL;
    return static_cast<uint32_t>(x >> 32);
  }

  // Hints for batch loops: start loading what a later insert/lookup of this key, or removal
  // of this (valid) page, will touch. prefetch_removal reads the page's record, so a loop
  // prefetches the record (prefetch_record) further ahead first. No effect on the contents.
  void prefetch_key(const PageHash& hash, GroupId group) const {
    prefetch_slot(key_hash(hash, group));
  }
  void prefetch_slot(uint32_t key_hash) const { __builtin_prefetch(&table_[key_hash & mask_]); }
  void prefetch_record(PageId page) const { __builtin_prefetch(&recs_[page], 1); }
  // Both cache lines of a record that an insert will write.
  void prefetch_whole_record(PageId page) const {
    __builtin_prefetch(&recs_[page], 1);
    __builtin_prefetch(reinterpret_cast<const char*>(&recs_[page]) + sizeof(PageRec) - 1, 1);
  }
  void prefetch_removal(PageId page) const {
    const PageRec& r = recs_[page];
    if (r.next != kNoPage) __builtin_prefetch(&table_[r.hash32 & mask_], 1);
  }

  // Empties the index (keeps the memory).
  void clear();

  // Walks every invariant above; throws InternalError naming the first that fails.
  void verify() const;

 private:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  // 48 bytes; the 16-byte header (all a removal reads) never straddles a cache line.
  struct PageRec {
    PageId prev = kNoPage;
    PageId next = kNoPage;  // kNoPage: not indexed
    GroupId group = 0;
    uint32_t hash32 = 0;  // key_hash(hash, group)
    PageHash hash;
  };
  struct Slot {
    uint32_t hash32 = 0;  // key hash; home slot = hash32 & mask
    PageId head = kNoPage;  // kNoPage: empty
  };

  // The slot holding (hash, group), or kNoSlot.
  uint32_t find_slot(const PageHash& hash, GroupId group, uint32_t h) const;
  // The slot of an indexed page's key.
  uint32_t slot_of(PageId page, const PageRec& rec) const;
  void erase_slot(uint32_t slot);
  void grow();

  std::vector<PageRec> recs_;  // [num_pages]
  std::vector<Slot> table_;    // power-of-two size, at most a quarter full
  uint32_t mask_ = 0;
  int64_t num_indexed_ = 0;
  int64_t num_keys_ = 0;
};

}  // namespace pagedkv
