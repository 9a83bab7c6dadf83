// PrefixIndex, the hand-written open-addressing table, against the same interface and
// semantics built on abseil's Swiss table (AbslPrefixIndex below), in the same run. The project
// keeps a hand-written table only where it beats absl by a margin that matters; this program is
// that evidence for PrefixIndex.
//
//   LookupHit/N      lookups of indexed keys, in random order (items = lookups)
//   LookupMiss/N     lookups of keys that are not indexed
//   CacheEvict/N     the pool's cache-then-evict pattern: every page indexed with insert_batch
//                    (128-page requests), then every page removed with remove_batch in another
//                    order (items = pages, each inserted and removed once)
//   CacheEvictOne/N  the same with insert_unchecked / remove_unchecked (the pool's path with
//                    KV events on)
// N = pages in the index, each under a distinct key (xxh3_128-like digests: two random words,
// two zero words). 64K is the pool of pool_bench and manager_bench; at 1M nothing fits in L2.
//
// Measured 2026-11-29 on "AMD EPYC" (lscpu; 2 shared cores, 1 MiB L2 per core, 32 MiB L3),
// g++ 12 -O3, abseil 20220623; medians of 5 repetitions, items/s of PrefixIndex / AbslPrefixIndex
// in two runs:
//   CacheEvict     64K 3.2x 3.5x   1M 3.3x 3.3x    LookupHit   64K 1.3x 1.1x   1M 1.1x 1.2x
//   CacheEvictOne  64K 2.6x 1.7x   1M 2.6x 2.4x    LookupMiss  64K 0.8x 0.9x   1M 1.5x 1.2x
// At the pool level (PagePool's index switched at compile time in scratch builds, the builds'
// programs alternated three times, median of the per-run medians), on a quiet machine:
//   manager_bench BM_Lifecycle/1 1.9x, BM_PoolDirectLifecycle 1.8x; pool_bench (65,536 pages)
//   CachingOnNoHits 2.5x, TouchOnHit 1.06x, TouchOnHitPrefixLookup 1.2x.
// With other builds running the lifecycle ratio was 1.65x, but TouchOnHit/65536 was 0.5x,
// probably because PrefixIndex's table (8 slots of 8 bytes per page: 4 MiB at 64K pages) loses
// more of its cached lines to other processes than the Swiss table (2 slots of 5 bytes a page).
// A flat_hash_map<(hash, group), head page> design (the 40-byte key in every slot) was slower
// than the set below on every pool-level benchmark (lifecycle 2.8x-3.8x behind PrefixIndex).
//
// Before the benchmarks run, both indexes are driven through the same random sequence of
// inserts, removals, lookups, prefix lookups, batches and clears; every result is compared as
// it is produced, the sizes after every step, and everything (verify(), every page's key, every
// key's pages) every 250 steps. The program aborts if they disagree.
//
// Run: prefix_index_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <absl/container/flat_hash_set.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/pool/prefix_index.h"

namespace pagedkv {
namespace {

// ---- AbslPrefixIndex: the same on flat_hash_set<head page id> over per-page records ------
// The set holds the head page of every key; its hash and equality read the key from the
// page's record, so a slot is 4 bytes (a 16-slot group is one cache line) and a key is
// stored once. One 64-byte record per page holds its key and its links in the circular
// doubly linked list of the pages under that key (head.prev is the tail).
class AbslPrefixIndex {
 public:
  static constexpr PageId kNoPage = -1;

  explicit AbslPrefixIndex(int32_t num_pages)
      : recs_(checked_size(num_pages)), heads_(0, KeyHash{recs_.data()}, KeyEq{recs_.data()}) {
    heads_.reserve(reserve_for(num_pages));
  }
  // The set's functors point into recs_: a move keeps the buffer, a copy would not.
  AbslPrefixIndex(AbslPrefixIndex&&) noexcept = default;
  AbslPrefixIndex& operator=(AbslPrefixIndex&&) noexcept = default;
  AbslPrefixIndex(const AbslPrefixIndex&) = delete;
  AbslPrefixIndex& operator=(const AbslPrefixIndex&) = delete;

  int32_t num_pages() const { return static_cast<int32_t>(recs_.size()); }
  int64_t size() const { return num_indexed_; }
  int64_t num_keys() const { return static_cast<int64_t>(heads_.size()); }

  bool contains(PageId page) const {
    PAGEDKV_CHECK_RANGE(page >= 0 && page < num_pages(), "page id {} out of range [0, {})", page,
                        num_pages());
    return contains_unchecked(page);
  }
  bool contains_unchecked(PageId page) const { return recs_[page].next != kNoPage; }
  const PageHash& hash_of(PageId page) const {
    PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash", page);
    return recs_[page].hash;
  }
  GroupId group_of(PageId page) const {
    PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash", page);
    return recs_[page].group;
  }

  PageId lookup(const PageHash& hash, GroupId group) const {
    const auto it = heads_.find(KeyRef{&hash, group});
    return it == heads_.end() ? kNoPage : *it;
  }
  int32_t lookup_prefix(std::span<const PageHash> hashes, GroupId group,
                        std::vector<PageId>& out) const {
    const size_t n = hashes.size();
    for (size_t i = 0; i < std::min(n, kLookahead); ++i) {
      heads_.prefetch(KeyRef{&hashes[i], group});
    }
    size_t found = 0;
    for (; found < n; ++found) {
      if (found + kLookahead < n) heads_.prefetch(KeyRef{&hashes[found + kLookahead], group});
      const auto it = heads_.find(KeyRef{&hashes[found], group});
      if (it == heads_.end()) break;
      out.push_back(*it);
    }
    return static_cast<int32_t>(found);
  }
  std::vector<PageId> pages_for(const PageHash& hash, GroupId group) const {
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

  void insert(const PageHash& hash, GroupId group, PageId page) {
    PAGEDKV_CHECK_RANGE(page >= 0 && page < num_pages(), "page id {} out of range [0, {})", page,
                        num_pages());
    PAGEDKV_CHECK_ARG(!hash.empty(), "cannot index page {} under the empty hash", page);
    PAGEDKV_CHECK_ARG(group >= 0, "group id must be >= 0, got {}", group);
    PAGEDKV_CHECK_STATE(!contains_unchecked(page), "page {} already carries a hash", page);
    insert_unchecked(hash, group, page);
  }
  void remove(PageId page) {
    PAGEDKV_CHECK_STATE(contains(page), "page {} carries no hash to remove", page);
    remove_unchecked(page);
  }
  void insert_unchecked(const PageHash& hash, GroupId group, PageId page) {
    insert_one(hash, group, page);
    ++num_indexed_;
  }
  void remove_unchecked(PageId page) {
    remove_one(page);
    --num_indexed_;
  }
  void insert_batch(std::span<const PageHash> hashes, GroupId group, std::span<const PageId> pages,
                    PageId skip) {
    const size_t n = pages.size();
    auto start = [&](size_t i) {
      heads_.prefetch(KeyRef{&hashes[i], group});
      if (pages[i] != skip) __builtin_prefetch(&recs_[pages[i]], 1);
    };
    for (size_t i = 0; i < std::min(n, kPrefetchDistance); ++i) start(i);
    for (size_t i = 0; i < n; ++i) {
      if (i + kPrefetchDistance < n) start(i + kPrefetchDistance);
      if (pages[i] == skip) continue;
      insert_one(hashes[i], group, pages[i]);
      ++num_indexed_;
    }
  }
  int64_t remove_batch(std::span<const PageId> pages) {
    // Two stages: a page's record 2 * kPrefetchDistance pages ahead, then the set's group
    // for its key kPrefetchDistance pages ahead.
    const size_t n = pages.size();
    auto prefetch_key = [&](PageId p) {
      if (recs_[p].next != kNoPage) heads_.prefetch(p);
    };
    for (size_t i = 0; i < std::min(n, 2 * kPrefetchDistance); ++i) {
      __builtin_prefetch(&recs_[pages[i]], 1);
    }
    for (size_t i = 0; i < std::min(n, kPrefetchDistance); ++i) prefetch_key(pages[i]);
    int64_t removed = 0;
    for (size_t i = 0; i < n; ++i) {
      if (i + 2 * kPrefetchDistance < n) {
        __builtin_prefetch(&recs_[pages[i + 2 * kPrefetchDistance]], 1);
      }
      if (i + kPrefetchDistance < n) prefetch_key(pages[i + kPrefetchDistance]);
      if (recs_[pages[i]].next == kNoPage) continue;
      remove_one(pages[i]);
      ++removed;
    }
    num_indexed_ -= removed;
    return removed;
  }

  void clear() {
    for (PageRec& r : recs_) r.prev = r.next = kNoPage;
    heads_.clear();  // frees a large table; reserve again so that no insert allocates
    heads_.reserve(reserve_for(num_pages()));
    num_indexed_ = 0;
  }

  void verify() const {
    PAGEDKV_ASSERT(heads_.capacity() >= reserve_for(num_pages()),
                   "set of capacity {} is not reserved for {} pages", heads_.capacity(),
                   num_pages());
    const int32_t pages = num_pages();
    std::vector<char> seen(recs_.size(), 0);
    int64_t listed = 0;
    for (const PageId head : heads_) {
      PAGEDKV_ASSERT(head >= 0 && head < pages, "the set names invalid page {}", head);
      const PageRec& h = recs_[head];
      PAGEDKV_ASSERT(!h.hash.empty() && h.group >= 0, "page {} has an empty key or group {}", head,
                     h.group);
      PageId p = head;
      do {
        PAGEDKV_ASSERT(p >= 0 && p < pages, "list of page {} reaches invalid page {}", head, p);
        PAGEDKV_ASSERT(!seen[static_cast<size_t>(p)], "page {} is listed twice", p);
        seen[static_cast<size_t>(p)] = 1;
        const PageRec& r = recs_[p];
        PAGEDKV_ASSERT(r.hash == h.hash && r.group == h.group,
                       "page {} in the list of page {} carries another key", p, head);
        PAGEDKV_ASSERT(r.next != kNoPage && recs_[r.next].prev == p,
                       "page {}: next {} does not link back", p, r.next);
        ++listed;
        p = r.next;
      } while (p != head);
    }
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

 private:
  static constexpr size_t kLookahead = 8;
  static constexpr size_t kPrefetchDistance = 16;

  // Everything about a page in one cache line.
  struct alignas(64) PageRec {
    PageHash hash;  // meaningful only while indexed
    GroupId group = 0;
    PageId prev = kNoPage;
    PageId next = kNoPage;  // kNoPage: not indexed
  };
  // A key to look up without a page: the set's hash and equality accept both.
  struct KeyRef {
    const PageHash* hash;
    GroupId group;
  };
  static size_t hash_key(const PageHash& hash, GroupId group) {
    const auto& w = hash.words;
    uint64_t x = w[0] ^ std::rotl(w[1], 21) ^ std::rotl(w[2], 42) ^ w[3] ^
                 (static_cast<uint64_t>(static_cast<uint32_t>(group)) << 32);
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    return static_cast<size_t>(x ^ (x >> 32));
  }
  static bool same_key(const PageRec& r, const PageHash& hash, GroupId group) {
    const auto& x = r.hash.words;
    const auto& y = hash.words;
    return r.group == group && ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
  }
  struct KeyHash {
    using is_transparent = void;
    const PageRec* recs;
    size_t operator()(PageId p) const { return hash_key(recs[p].hash, recs[p].group); }
    size_t operator()(const KeyRef& k) const { return hash_key(*k.hash, k.group); }
  };
  struct KeyEq {
    using is_transparent = void;
    const PageRec* recs;
    bool operator()(PageId a, PageId b) const {
      return same_key(recs[a], recs[b].hash, recs[b].group);
    }
    bool operator()(PageId a, const KeyRef& k) const { return same_key(recs[a], *k.hash, k.group); }
    bool operator()(const KeyRef& k, PageId a) const { return same_key(recs[a], *k.hash, k.group); }
  };

  static size_t checked_size(int32_t num_pages) {
    PAGEDKV_CHECK_ARG(num_pages >= 0, "PrefixIndex num_pages must be >= 0, got {}", num_pages);
    return static_cast<size_t>(num_pages);
  }
  static size_t reserve_for(int32_t num_pages) {
    const size_t n = static_cast<size_t>(num_pages);
    return std::max<size_t>(n + n / 8 + 1, 16);
  }

  void insert_one(const PageHash& hash, GroupId group, PageId page) {
    PageRec& rec = recs_[page];
    rec.hash = hash;
    rec.group = group;
    const auto [it, fresh] = heads_.insert(page);  // finds the head if the key is indexed
    if (fresh) {
      rec.prev = rec.next = page;
      return;
    }
    const PageId head = *it;  // a duplicate: link at the tail
    const PageId tail = recs_[head].prev;
    rec.prev = tail;
    rec.next = head;
    recs_[tail].next = page;
    recs_[head].prev = page;
  }
  void remove_one(PageId page) {
    PageRec& r = recs_[page];
    if (r.next == page) [[likely]] {
      heads_.erase(page);  // finds the key by the page's own record: it is the head
    } else {
      recs_[r.prev].next = r.next;
      recs_[r.next].prev = r.prev;
      const auto it = heads_.find(page);
      if (*it == page) {  // the next one takes over: same key, so same hash
        heads_.erase(it);
        heads_.insert(r.next);
      }
    }
    r.prev = r.next = kNoPage;
  }

  std::vector<PageRec> recs_;  // [num_pages]
  absl::flat_hash_set<PageId, KeyHash, KeyEq> heads_;
  int64_t num_indexed_ = 0;
};

// ---- the differential check ----------------------------------------------------------------

[[noreturn]] void fail(const std::string& what) {
  fmt::print(stderr, "prefix_index_bench: {}\n", what);
  std::abort();
}

PageHash small_hash(uint64_t w) {
  PageHash h;
  h.words[0] = w;
  return h;
}

// Keys from a small set (many duplicates, many probe collisions), three groups, single and
// batch forms mixed; everything observable is compared.
template <typename A, typename B>
void check_agree(uint32_t seed) {
  constexpr int32_t kPages = 400;
  constexpr uint64_t kWords = 97;
  constexpr GroupId kGroups = 3;
  A a(kPages);
  B b(kPages);
  std::mt19937 rng(seed);
  auto expect = [](bool ok, int step, const std::string& what) {
    if (!ok) fail(fmt::format("the indexes disagree at step {}: {}", step, what));
  };
  auto compare_all = [&](int step) {
    a.verify();
    b.verify();
    for (PageId p = 0; p < kPages; ++p) {
      expect(a.contains(p) == b.contains(p), step, fmt::format("contains({})", p));
      if (!a.contains(p)) continue;
      expect(a.hash_of(p) == b.hash_of(p) && a.group_of(p) == b.group_of(p), step,
             fmt::format("key of page {}", p));
    }
    for (uint64_t w = 1; w <= kWords; ++w) {
      for (GroupId g = 0; g < kGroups; ++g) {
        expect(a.pages_for(small_hash(w), g) == b.pages_for(small_hash(w), g), step,
               fmt::format("pages_for({}, {})", w, g));
      }
    }
  };
  for (int step = 0; step < 30000; ++step) {
    const uint32_t op = rng() % 8;
    const PageId p = static_cast<PageId>(rng() % kPages);
    const GroupId g = static_cast<GroupId>(rng() % kGroups);
    const PageHash h = small_hash(rng() % kWords + 1);
    if (op <= 2) {  // insert or remove one page, checked forms
      if (a.contains(p)) {
        a.remove(p);
        b.remove(p);
      } else {
        a.insert(h, g, p);
        b.insert(h, g, p);
      }
    } else if (op == 3) {  // lookup
      expect(a.lookup(h, g) == b.lookup(h, g), step, "lookup");
    } else if (op == 4) {  // lookup_prefix over a run of keys
      std::vector<PageHash> run;
      for (uint32_t k = rng() % 24; k > 0; --k) run.push_back(small_hash(rng() % kWords + 1));
      std::vector<PageId> out_a = {7};
      std::vector<PageId> out_b = {7};
      expect(a.lookup_prefix(run, g, out_a) == b.lookup_prefix(run, g, out_b) && out_a == out_b,
             step, "lookup_prefix");
    } else if (op <= 6) {  // the pool's batch: evict what is indexed, then index them all
      std::vector<PageId> pages;
      std::vector<char> picked(kPages, 0);
      for (uint32_t k = rng() % 40; k > 0; --k) {
        const PageId q = static_cast<PageId>(rng() % kPages);
        if (!picked[static_cast<size_t>(q)]) pages.push_back(q);
        picked[static_cast<size_t>(q)] = 1;
      }
      expect(a.remove_batch(pages) == b.remove_batch(pages), step, "remove_batch");
      std::vector<PageHash> hashes;
      for (size_t k = 0; k < pages.size(); ++k) hashes.push_back(small_hash(rng() % kWords + 1));
      a.insert_batch(hashes, g, pages, /*skip=*/0);
      b.insert_batch(hashes, g, pages, /*skip=*/0);
    } else if (rng() % 64 == 0) {
      a.clear();
      b.clear();
    }
    expect(a.size() == b.size() && a.num_keys() == b.num_keys(), step, "size or num_keys");
    if (step % 250 == 0) compare_all(step);
  }
  compare_all(30000);
}

// ---- the benchmarks ------------------------------------------------------------------------

constexpr int32_t kRequestPages = 128;

// Per size: a distinct random digest per page, lookup and eviction orders, and misses.
struct Data {
  std::vector<PageHash> hashes;        // [n] hashes[i] is the key of insert_order[i]
  std::vector<PageId> insert_order;    // [n] a random permutation of the page ids
  std::vector<PageId> evict_order;     // [n] another one
  std::vector<uint32_t> lookup_order;  // [n] a random permutation of [0, n)
  std::vector<PageHash> misses;        // [n] digests that are not indexed

  static const Data& get(int32_t n) {
    static std::map<int32_t, Data> cache;
    auto [it, fresh] = cache.try_emplace(n);
    if (!fresh) return it->second;
    Data& d = it->second;
    std::mt19937_64 rng(static_cast<uint64_t>(n));
    auto digest = [&] {
      PageHash h;
      h.words[0] = rng();
      h.words[1] = rng();
      return h;
    };
    for (int32_t i = 0; i < n; ++i) d.hashes.push_back(digest());
    for (int32_t i = 0; i < n; ++i) d.misses.push_back(digest());
    d.insert_order.resize(static_cast<size_t>(n));
    std::iota(d.insert_order.begin(), d.insert_order.end(), 0);
    d.evict_order = d.insert_order;
    std::shuffle(d.insert_order.begin(), d.insert_order.end(), rng);
    std::shuffle(d.evict_order.begin(), d.evict_order.end(), rng);
    d.lookup_order.resize(static_cast<size_t>(n));
    std::iota(d.lookup_order.begin(), d.lookup_order.end(), 0u);
    std::shuffle(d.lookup_order.begin(), d.lookup_order.end(), rng);
    return d;
  }
};

template <typename Index>
void fill(Index& index, const Data& d) {
  const size_t n = d.hashes.size();
  for (size_t i = 0; i < n; i += kRequestPages) {
    const size_t len = std::min<size_t>(kRequestPages, n - i);
    index.insert_batch(std::span(d.hashes).subspan(i, len), 0,
                       std::span(d.insert_order).subspan(i, len), Index::kNoPage);
  }
}

// Lookups in batches of 1024 per iteration, so that the loop overhead does not count.
template <typename Index>
void lookup_loop(benchmark::State& state, bool hit) {
  const int32_t n = static_cast<int32_t>(state.range(0));
  const Data& d = Data::get(n);
  Index index(n);
  fill(index, d);
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {  // the answers, checked once
    if (index.lookup(d.hashes[i], 0) != d.insert_order[i] ||
        index.lookup(d.misses[i], 0) != Index::kNoPage) {
      fail(fmt::format("wrong lookup result for key {} of {}", i, n));
    }
  }
  const std::vector<PageHash>& keys = hit ? d.hashes : d.misses;
  constexpr size_t kBatch = 1024;
  size_t next = 0;
  for (auto _ : state) {
    for (size_t k = 0; k < kBatch; ++k) {
      benchmark::DoNotOptimize(index.lookup(keys[d.lookup_order[next]], 0));
      next = next + 1 == keys.size() ? 0 : next + 1;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
}

// Every page indexed in 128-page requests, then every page evicted in 128-page batches.
template <typename Index>
void cache_evict_loop(benchmark::State& state, bool batch) {
  const int32_t n = static_cast<int32_t>(state.range(0));
  const Data& d = Data::get(n);
  Index index(n);
  for (auto _ : state) {
    if (batch) {
      fill(index, d);
      for (size_t i = 0; i < d.evict_order.size(); i += kRequestPages) {
        const size_t len = std::min<size_t>(kRequestPages, d.evict_order.size() - i);
        index.remove_batch(std::span(d.evict_order).subspan(i, len));
      }
    } else {
      for (size_t i = 0; i < d.hashes.size(); ++i) {
        index.insert_unchecked(d.hashes[i], 0, d.insert_order[i]);
      }
      for (PageId p : d.evict_order) index.remove_unchecked(p);
    }
    if (index.size() != 0) fail("pages left after evicting every page");
  }
  state.SetItemsProcessed(state.iterations() * n);
}

template <typename Index>
void BM_LookupHit(benchmark::State& state) {
  lookup_loop<Index>(state, true);
}
template <typename Index>
void BM_LookupMiss(benchmark::State& state) {
  lookup_loop<Index>(state, false);
}
template <typename Index>
void BM_CacheEvict(benchmark::State& state) {
  cache_evict_loop<Index>(state, true);
}
template <typename Index>
void BM_CacheEvictOne(benchmark::State& state) {
  cache_evict_loop<Index>(state, false);
}

void sizes(benchmark::internal::Benchmark* b) { b->Arg(1 << 16)->Arg(1 << 20); }

BENCHMARK(BM_LookupHit<PrefixIndex>)->Name("PrefixIndex/LookupHit")->Apply(sizes);
BENCHMARK(BM_LookupHit<AbslPrefixIndex>)->Name("Absl/LookupHit")->Apply(sizes);
BENCHMARK(BM_LookupMiss<PrefixIndex>)->Name("PrefixIndex/LookupMiss")->Apply(sizes);
BENCHMARK(BM_LookupMiss<AbslPrefixIndex>)->Name("Absl/LookupMiss")->Apply(sizes);
BENCHMARK(BM_CacheEvict<PrefixIndex>)->Name("PrefixIndex/CacheEvict")->Apply(sizes);
BENCHMARK(BM_CacheEvict<AbslPrefixIndex>)->Name("Absl/CacheEvict")->Apply(sizes);
BENCHMARK(BM_CacheEvictOne<PrefixIndex>)->Name("PrefixIndex/CacheEvictOne")->Apply(sizes);
BENCHMARK(BM_CacheEvictOne<AbslPrefixIndex>)->Name("Absl/CacheEvictOne")->Apply(sizes);

}  // namespace
}  // namespace pagedkv

int main(int argc, char** argv) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    pagedkv::check_agree<pagedkv::PrefixIndex, pagedkv::AbslPrefixIndex>(seed);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
