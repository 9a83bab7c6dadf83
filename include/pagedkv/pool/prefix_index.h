// pagedkv/pool/prefix_index.h - the prefix-cache index of a page pool: (PageHash, group) -> the
// pages carrying that key, in insertion order (docs/rules.md rules 9 and 14).
//
// Several pages may carry one key (two requests computed the same page before either was
// cached); all are kept, a lookup returns the first inserted, and removing one keeps the rest.
//
// Layout, chosen so that no operation allocates or rehashes, and the common ones touch few
// cache lines and rarely take a second (hard to predict) probe step:
//   - an open-addressing table of 8-byte slots {32-bit key fingerprint, head page}, linear
//     probing with backward-shift deletion (no tombstones). It is sized once for the pool with
//     eight slots per page; a page carries at most one key, so the table is never more than
//     1/8 full: most probes end in the home slot and most deletions shift nothing. The home
//     slot is the fingerprint's top bits, so a probe or a backward shift reads slots only, and
//     the fingerprint fixes the group, so a lookup reads nothing but slots and the head's hash;
//   - per page a 16-byte record {prev, next, group, fingerprint}: the pages under one key form
//     a circular doubly linked list (head.prev is the tail), so appending and removing any
//     page is O(1), and a removed page finds its slot by probing from its home for its own id
//     (no key compare unless it is a duplicate that is not the head);
//   - per page its 32-byte hash, apart: read only to confirm a fingerprint match and by
//     hash_of.
// Memory: 16 + 32 + 8 * 8 = 112 bytes per page, allocated at construction.
// bench/prefix_index_bench.cpp measures this design against an abseil Swiss-table index with
// the same interface (the evidence for keeping a hand-written table here).
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
//   - keys are unique across slots; a slot's and each listed page's fingerprint is that of
//     the key; every slot is reachable from its home slot without crossing an empty slot (the
//     linear-probing invariant);
//   - the table has eight slots per page rounded up to a power of two (at least 16, at most
//     2^31).
//
// Not thread-safe.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/page_hash.h"

namespace pagedkv {

class PrefixIndex {
 public:
  static constexpr PageId kNoPage = -1;

  // An empty index over page ids [0, num_pages). Throws InvalidArgument if num_pages < 0.
  explicit PrefixIndex(int32_t num_pages);

  int32_t num_pages() const { return static_cast<int32_t>(recs_.size()); }
  int64_t size() const { return num_indexed_; }   // pages carrying a key
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
  // Unchecked forms for callers that have validated their input (a valid id; for insert a
  // non-empty hash, a group >= 0 and a page not indexed yet; for remove an indexed page).
  void insert_unchecked(const PageHash& hash, GroupId group, PageId page);
  void remove_unchecked(PageId page);
  // Batch forms for the pool's hot paths: memory for later pages is prefetched while earlier
  // ones are processed, so the cache misses of a batch overlap.
  // insert_batch: inserts pages[i] under (hashes[i], group) for every i in order, skipping
  // pages equal to `skip` (the pool passes its null page). Unchecked: hashes.size() ==
  // pages.size(); every other page a valid unindexed id appearing once, as insert_unchecked.
  void insert_batch(std::span<const PageHash> hashes, GroupId group, std::span<const PageId> pages,
                    PageId skip);
  // remove_batch: removes every indexed page of `pages` (valid ids, each at most once), leaves
  // the others alone; returns how many were removed.
  int64_t remove_batch(std::span<const PageId> pages);

  // The 32-bit fingerprint of a key; its top bits are the home slot. Real digests are
  // uniform already; the xor-shift and multiply spread hand-made hashes (small words) over the
  // top bits. The group enters through an odd multiple, a bijection of the 32-bit group: for
  // one hash, distinct groups get distinct fingerprints, so equal fingerprints and equal
  // hashes mean equal keys, and a probe never reads a page's group.
  static uint32_t fingerprint(const PageHash& hash, GroupId group) {
    uint64_t x =
        hash.words[0] ^ std::rotl(hash.words[1], 21) ^ std::rotl(hash.words[2], 42) ^ hash.words[3];
    x ^= x >> 29;
    x *= 0x9e3779b97f4a7c15ULL;
    return static_cast<uint32_t>(x >> 32) ^ (static_cast<uint32_t>(group) * 0x9e3779b1U);
  }

  // Empties the index (keeps the memory).
  void clear();

  // Walks every invariant above; throws InternalError naming the first that fails.
  void verify() const;

 private:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  // 16 bytes, four to a cache line: everything a removal reads.
  struct PageRec {
    PageId prev = kNoPage;
    PageId next = kNoPage;  // kNoPage: not indexed
    GroupId group = 0;
    uint32_t fp = 0;  // fingerprint(hash, group)
  };
  // 8 bytes, eight to a cache line: everything a probe and a backward shift read.
  struct Slot {
    uint32_t fp = 0;        // fingerprint of the key; home slot = fp >> shift
    PageId head = kNoPage;  // first-inserted page under the key; kNoPage: empty
  };

  // The arrays and table geometry copied out of the members once per call: stores through
  // these pointers cannot alias the copies, so a batch loop keeps them in registers.
  struct Tables {
    PageRec* recs;
    PageHash* hashes;
    Slot* slots;
    uint32_t mask;   // table size - 1
    uint32_t shift;  // 32 - log2(table size)
    uint32_t home(uint32_t fp) const { return home_slot(fp, shift); }
  };
  Tables tables() { return {recs_.data(), hashes_.data(), table_.data(), mask_, shift_}; }

  static uint32_t home_slot(uint32_t fp, uint32_t shift) {
    return static_cast<uint32_t>(static_cast<uint64_t>(fp) >> shift);
  }
  // Whether the occupied slot `s` holds the key whose hash is `hash` and fingerprint `fp`
  // (which fixes the group): the fingerprint rules out almost every other key before the
  // head page's hash is read.
  static bool holds(const PageHash* hashes, const Slot& s, uint32_t fp, const PageHash& hash);
  // The slot holding the key (hash, fingerprint fp), or kNoSlot.
  uint32_t find_slot(const PageHash& hash, uint32_t fp) const;
  // The bodies shared by the single and batch forms (inlined into both); the caller keeps
  // the counts. insert_one returns whether the key is new, remove_one whether it is gone.
  static bool insert_one(const Tables& t, const PageHash& hash, GroupId group, PageId page,
                         uint32_t fp);
  static bool remove_one(const Tables& t, PageId page);
  // A page that shares its key with others: unlink it, hand its slot to the next if needed.
  static void remove_duplicate(const Tables& t, PageId page);
  static void erase_slot(const Tables& t, uint32_t slot);

  std::vector<PageRec> recs_;     // [num_pages]
  std::vector<PageHash> hashes_;  // [num_pages]; meaningful only for indexed pages
  std::vector<Slot> table_;       // [8 * num_pages rounded up to a power of two, >= 16]
  uint32_t mask_ = 0;             // table size - 1
  uint32_t shift_ = 32;           // 32 - log2(table size)
  int64_t num_indexed_ = 0;
  int64_t num_keys_ = 0;
};

}  // namespace pagedkv
