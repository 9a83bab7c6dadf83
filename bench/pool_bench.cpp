// Page-pool throughput on the shape of a real workload: a 65,536-page pool, page size 16,
// requests of U[1024, 4096] tokens (64..256 pages). Requests are admitted in FIFO order and,
// when the pool is full, the oldest ones are freed (pages in reverse, as a finished request
// frees them). items_per_second = pages allocated per second; every page is also freed once.
//
//   CachingOff          PagePool with caching off: get_new_pages + free_pages.
//   CachingOnNoHashes   caching on, but nothing cached: the cost of the eviction check.
//   CachingOnNoHits     caching on, every full page cached (cache_full_pages), so every
//                       reallocation evicts a hash: insert + lazy eviction per page.
//   TouchOnHit          prefix hits on free cached pages: get_cached_page per hash, touch
//                       the hits, free them again (items = pages hit).
//   TouchOnHitPrefixLookup  the same with one get_cached_prefix call per request.
//
// Each runs at 65,536 pages and at 4,096 (whose working set fits in L2), which separates the
// cost of cache misses from the cost of the work.
//
// Baseline*: the same workloads on a straightforward STL pool written like the seed
// (std::list free queue with per-page iterators, std::unordered_map index with per-key
// vectors), measured in the same run.
//
// Run: pool_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagedkv/hash/request.h"
#include "pagedkv/pool/page_pool.h"

namespace pagedkv {
namespace {

constexpr int32_t kNumPages = 65536;  // the workload's pool; 4096 is also run (cache-resident)
constexpr int32_t kPageSize = 16;
constexpr int32_t kNumRequests = 1024;  // > 2x the requests the pool holds: hashes stay unique

// The request shapes and their page hashes, built once.
struct Workload {
  std::vector<std::unique_ptr<Request>> requests;
  std::vector<int32_t> num_pages;  // cdiv(tokens, page size)

  static const Workload& get() {
    static const Workload w = [] {
      Workload w;
      std::mt19937 rng(2024);
      std::uniform_int_distribution<int32_t> len(1024, 4096);
      for (int32_t r = 0; r < kNumRequests; ++r) {
        const int32_t n = len(rng);
        std::vector<TokenId> tokens(static_cast<size_t>(n));
        for (int32_t i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = r * 5000 + i;
        auto req = std::make_unique<Request>(fmt::format("r{}", r), std::move(tokens));
        req->page_hashes(kPageSize);  // hash now, outside the timed loop
        w.num_pages.push_back(cdiv(n, kPageSize));
        w.requests.push_back(std::move(req));
      }
      return w;
    }();
    return w;
  }
};

// ---- the seed-style baseline ------------------------------------------------------------

struct KeyHash {
  size_t operator()(const std::pair<PageHash, GroupId>& k) const {
    return static_cast<size_t>(k.first.words[0] ^ (k.first.words[1] * 31) ^
                               static_cast<uint64_t>(k.second));
  }
};

class BaselinePool {
 public:
  BaselinePool(int32_t n, bool caching)
      : caching_(caching),
        ref_(static_cast<size_t>(n), 0),
        where_(static_cast<size_t>(n)),
        key_(static_cast<size_t>(n)) {
    for (PageId p = 1; p < n; ++p) where_[static_cast<size_t>(p)] = free_.insert(free_.end(), p);
  }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }

  void get_new_pages(int32_t n, std::vector<PageId>& out) {
    for (int32_t i = 0; i < n; ++i) {
      const PageId p = free_.front();
      free_.pop_front();
      if (caching_ && key_[static_cast<size_t>(p)]) {
        auto it = index_.find(*key_[static_cast<size_t>(p)]);
        auto& pages = it->second;
        pages.erase(std::find(pages.begin(), pages.end(), p));
        if (pages.empty()) index_.erase(it);
        key_[static_cast<size_t>(p)].reset();
      }
      ref_[static_cast<size_t>(p)] = 1;
      out.push_back(p);
    }
  }
  void free_pages(std::span<const PageId> ordered) {
    for (PageId p : ordered) --ref_[static_cast<size_t>(p)];
    for (PageId p : ordered) {
      if (ref_[static_cast<size_t>(p)] == 0) {
        where_[static_cast<size_t>(p)] = free_.insert(free_.end(), p);
      }
    }
  }
  void touch(std::span<const PageId> pages) {
    for (PageId p : pages) {
      if (ref_[static_cast<size_t>(p)]++ == 0) free_.erase(where_[static_cast<size_t>(p)]);
    }
  }
  std::optional<PageId> get_cached_page(const PageHash& h, GroupId g) const {
    auto it = index_.find({h, g});
    if (it == index_.end()) return std::nullopt;
    return it->second.front();
  }
  void cache_full_pages(const Request& req, std::span<const PageId> pages, int32_t from, int32_t to,
                        GroupId g) {
    const auto& hashes = req.page_hashes(kPageSize);
    for (int32_t i = from; i < to; ++i) {
      const PageId p = pages[static_cast<size_t>(i)];
      key_[static_cast<size_t>(p)] = std::make_pair(hashes[static_cast<size_t>(i)], g);
      index_[{hashes[static_cast<size_t>(i)], g}].push_back(p);
    }
  }

 private:
  bool caching_;
  std::vector<int32_t> ref_;
  std::list<PageId> free_;
  std::vector<std::list<PageId>::iterator> where_;
  std::vector<std::optional<std::pair<PageHash, GroupId>>> key_;
  std::unordered_map<std::pair<PageHash, GroupId>, std::vector<PageId>, KeyHash> index_;
};

// ---- the workloads, generic over the pool ----------------------------------------------

template <typename Pool>
void alloc_free_loop(benchmark::State& state, Pool& pool, bool cache) {
  const Workload& w = Workload::get();
  struct Live {
    int32_t req;
    std::vector<PageId> pages;
  };
  std::deque<Live> live;
  std::vector<PageId> reversed;
  int64_t pages_allocated = 0;
  int32_t next = 0;
  for (auto _ : state) {
    const int32_t r = next;
    next = (next + 1) % kNumRequests;
    const int32_t n = w.num_pages[static_cast<size_t>(r)];
    while (pool.num_free() < n) {
      const Live& old = live.front();
      reversed.assign(old.pages.rbegin(), old.pages.rend());
      pool.free_pages(reversed);
      live.pop_front();
    }
    Live l{r, {}};
    l.pages.reserve(static_cast<size_t>(n));
    pool.get_new_pages(n, l.pages);
    if (cache) {
      const Request& req = *w.requests[static_cast<size_t>(r)];
      pool.cache_full_pages(req, l.pages, 0, req.num_tokens() / kPageSize, 0);
    }
    live.push_back(std::move(l));
    pages_allocated += n;
  }
  state.SetItemsProcessed(pages_allocated);
}

// Caches as many requests as fit, frees them all (their pages stay cached, rule 7), then each
// iteration replays one request's prefix hit: lookups, touch, free in reverse.
template <typename Pool>
void touch_on_hit_loop(benchmark::State& state, Pool& pool, bool batch_lookup) {
  const Workload& w = Workload::get();
  std::vector<int32_t> cached;
  std::vector<PageId> pages;
  std::vector<PageId> reversed;
  int32_t used = 0;  // pages given out so far: stop before any cached page is reallocated
  for (int32_t r = 0; r < kNumRequests; ++r) {
    const int32_t n = w.num_pages[static_cast<size_t>(r)];
    if (used + n > pool.num_free()) break;
    used += n;
    pages.clear();
    pool.get_new_pages(n, pages);
    const Request& req = *w.requests[static_cast<size_t>(r)];
    pool.cache_full_pages(req, pages, 0, req.num_tokens() / kPageSize, 0);
    cached.push_back(r);
    reversed.assign(pages.rbegin(), pages.rend());
    pool.free_pages(reversed);
  }
  int64_t hits = 0;
  size_t next = 0;
  std::vector<PageId> hit;
  for (auto _ : state) {
    const Request& req = *w.requests[static_cast<size_t>(cached[next])];
    next = (next + 1) % cached.size();
    hit.clear();
    if (batch_lookup) {
      pool.get_cached_prefix(req.page_hashes(kPageSize), hit);
    } else {
      for (const PageHash& h : req.page_hashes(kPageSize)) {
        const auto p = pool.get_cached_page(h, 0);
        if (!p) break;
        hit.push_back(*p);
      }
    }
    pool.touch(hit);
    reversed.assign(hit.rbegin(), hit.rend());
    pool.free_pages(reversed);
    hits += static_cast<int64_t>(hit.size());
  }
  state.SetItemsProcessed(hits);
}

// PagePool's names differ slightly from the baseline's; adapt without virtual calls.
struct Real {
  PagePool pool;
  Real(int32_t n, bool caching) : pool(n, caching) {}
  int32_t num_free() const { return pool.get_num_free_pages(); }
  void get_new_pages(int32_t n, std::vector<PageId>& out) { pool.get_new_pages(n, out); }
  void free_pages(std::span<const PageId> p) { pool.free_pages(p); }
  void touch(std::span<const PageId> p) { pool.touch(p); }
  std::optional<PageId> get_cached_page(const PageHash& h, GroupId g) const {
    return pool.get_cached_page(h, g);
  }
  void get_cached_prefix(std::span<const PageHash> hashes, std::vector<PageId>& out) const {
    pool.get_cached_prefix(hashes, 0, out);
  }
  void cache_full_pages(const Request& req, std::span<const PageId> pages, int32_t from, int32_t to,
                        GroupId g) {
    const PageChainView chain{.page_hashes = req.page_hashes(kPageSize),
                              .token_ids = req.all_token_ids(),
                              .page_size = kPageSize,
                              .lora_id = req.options().lora_id};
    pool.cache_full_pages(chain, pages, from, to, g);
  }
};

struct Baseline {
  BaselinePool pool;
  Baseline(int32_t n, bool caching) : pool(n, caching) {}
  int32_t num_free() const { return pool.num_free(); }
  void get_new_pages(int32_t n, std::vector<PageId>& out) { pool.get_new_pages(n, out); }
  void free_pages(std::span<const PageId> p) { pool.free_pages(p); }
  void touch(std::span<const PageId> p) { pool.touch(p); }
  std::optional<PageId> get_cached_page(const PageHash& h, GroupId g) const {
    return pool.get_cached_page(h, g);
  }
  void get_cached_prefix(std::span<const PageHash> hashes, std::vector<PageId>& out) const {
    for (const PageHash& h : hashes) {
      const auto p = pool.get_cached_page(h, 0);
      if (!p) break;
      out.push_back(*p);
    }
  }
  void cache_full_pages(const Request& req, std::span<const PageId> pages, int32_t from, int32_t to,
                        GroupId g) {
    pool.cache_full_pages(req, pages, from, to, g);
  }
};

template <typename P>
void BM_CachingOff(benchmark::State& state) {
  P p(static_cast<int32_t>(state.range(0)), false);
  alloc_free_loop(state, p, false);
}
template <typename P>
void BM_CachingOnNoHashes(benchmark::State& state) {
  P p(static_cast<int32_t>(state.range(0)), true);
  alloc_free_loop(state, p, false);
}
template <typename P>
void BM_CachingOnNoHits(benchmark::State& state) {
  P p(static_cast<int32_t>(state.range(0)), true);
  alloc_free_loop(state, p, true);
}
template <typename P>
void BM_TouchOnHit(benchmark::State& state) {
  P p(static_cast<int32_t>(state.range(0)), true);
  touch_on_hit_loop(state, p, false);
}
template <typename P>
void BM_TouchOnHitPrefixLookup(benchmark::State& state) {
  P p(static_cast<int32_t>(state.range(0)), true);
  touch_on_hit_loop(state, p, true);
}

void warm_up(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Workload::get().requests.size());
}

void pool_sizes(benchmark::internal::Benchmark* b) { b->Arg(kNumPages)->Arg(4096); }

BENCHMARK(warm_up)->Iterations(1);
BENCHMARK(BM_CachingOff<Real>)->Name("PagePool/CachingOff")->Apply(pool_sizes);
BENCHMARK(BM_CachingOff<Baseline>)->Name("Baseline/CachingOff")->Apply(pool_sizes);
BENCHMARK(BM_CachingOnNoHashes<Real>)->Name("PagePool/CachingOnNoHashes")->Apply(pool_sizes);
BENCHMARK(BM_CachingOnNoHashes<Baseline>)->Name("Baseline/CachingOnNoHashes")->Apply(pool_sizes);
BENCHMARK(BM_CachingOnNoHits<Real>)->Name("PagePool/CachingOnNoHits")->Apply(pool_sizes);
BENCHMARK(BM_CachingOnNoHits<Baseline>)->Name("Baseline/CachingOnNoHits")->Apply(pool_sizes);
BENCHMARK(BM_TouchOnHit<Real>)->Name("PagePool/TouchOnHit")->Apply(pool_sizes);
BENCHMARK(BM_TouchOnHit<Baseline>)->Name("Baseline/TouchOnHit")->Apply(pool_sizes);
BENCHMARK(BM_TouchOnHitPrefixLookup<Real>)
    ->Name("PagePool/TouchOnHitPrefixLookup")
    ->Apply(pool_sizes);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
