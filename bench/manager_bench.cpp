// KVCacheManager speed on the two paths a scheduler drives.
//
// Lifecycle (pages/s): 10,000 requests of U[1024, 4096] tokens, page size 16, 65,536 pages;
// every second request starts with one of 64 shared prefixes of U[512, 2048] tokens; at most
// 128 requests are held, the oldest is freed to make room. Per request: get_computed_pages ->
// allocate_slots (rest of the prompt) -> free later. Page hashes are computed before the clock
// starts. Throughput counts the pages each request maps (cdiv(num_tokens, 16): hit + new), as
// bench/reference_lifecycle.py does for the Python reference model.
//   BM_Lifecycle/1          the manager with prefix caching (the target)
//   BM_Lifecycle/0          the manager with caching off (no lookups, no index)
//   BM_PoolDirectLifecycle  the same operations written directly against PagePool: the floor
//                           the manager's bookkeeping adds to
//
// Decode (time per step): 256 running requests with 1024-token prompts; each step gives every
// request one token (allocate_slots(request, 1)); full pages are cached as they fill.
//   BM_DecodeStep           per step (256 allocate_slots calls)
//   BM_DecodeStepPoolDirect the pool calls alone (a page every 16 steps + its caching)
//
//   build-*/bench/manager_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/pool/page_pool.h"

namespace pagedkv {
namespace {

constexpr int32_t kPageSize = 16;
constexpr int32_t kNumPages = 65536;
constexpr int32_t kMaxHeld = 128;
constexpr int32_t kMaxModelLen = 8192;

// What the manager hands the pool when it caches a request's pages.
PageChainView chain_of(const Request& r) {
  return PageChainView{.page_hashes = r.page_hashes(kPageSize),
                       .token_ids = r.all_token_ids(),
                       .page_size = kPageSize,
                       .lora_id = r.options().lora_id};
}

struct Workload {
  std::vector<std::unique_ptr<Request>> requests;
  int64_t pages_mapped = 0;  // sum of cdiv(num_tokens, page size)
};

// Built once per process: hashing 10,000 prompts takes a while and is not what is measured.
const Workload& lifecycle_workload() {
  static const Workload w = [] {
    Workload out;
    std::mt19937_64 rng(2024);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    std::vector<std::vector<TokenId>> prefixes(64);
    for (auto& p : prefixes) {
      p.resize(static_cast<size_t>(uniform(512, 2048)));
      for (TokenId& t : p) t = uniform(0, 1 << 30);
    }
    for (int i = 0; i < 10000; ++i) {
      const int n = uniform(1024, 4096);
      std::vector<TokenId> tokens;
      tokens.reserve(static_cast<size_t>(n));
      if (i % 2 == 1) {
        const auto& p = prefixes[static_cast<size_t>(uniform(0, 63))];
        tokens.assign(p.begin(), p.begin() + std::min<ptrdiff_t>(n, std::ssize(p)));
      }
      while (std::ssize(tokens) < n) tokens.push_back(uniform(0, 1 << 30));
      auto r = std::make_unique<Request>(fmt::format("r{}", i), std::move(tokens));
      r->page_hashes(kPageSize);  // hash now, outside every clock
      out.pages_mapped += cdiv(r->num_tokens(), kPageSize);
      out.requests.push_back(std::move(r));
    }
    return out;
  }();
  return w;
}

void BM_Lifecycle(benchmark::State& state) {
  const bool caching = state.range(0) != 0;
  const Workload& w = lifecycle_workload();
  int64_t hit_pages = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto m = std::make_unique<KVCacheManager>(kNumPages, kPageSize, kMaxModelLen, caching);
    std::deque<const Request*> held;
    ComputedPages hit;
    GroupPages new_pages;
    hit_pages = 0;
    state.ResumeTiming();
    for (const auto& r : w.requests) {
      if (std::ssize(held) == kMaxHeld) {
        m->free(*held.front());
        held.pop_front();
      }
      for (;;) {
        m->get_computed_pages(*r, /*resumed=*/false, hit);
        const AllocationRequest alloc{.num_new_tokens = r->num_tokens() - hit.num_computed_tokens,
                                      .num_new_computed_tokens = hit.num_computed_tokens,
                                      .new_computed_pages = &hit.pages};
        if (m->allocate_slots_into(new_pages, *r, alloc)) {
          break;
        }
        if (held.empty()) state.SkipWithError("the pool is too small for one request");
        m->free(*held.front());
        held.pop_front();
      }
      hit_pages += std::ssize(hit.pages[0]);
      held.push_back(r.get());
    }
    for (const Request* r : held) m->free(*r);
    state.PauseTiming();
    m.reset();  // destruction outside the clock
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * w.pages_mapped);
  state.counters["hit_fraction"] =
      static_cast<double>(hit_pages) / static_cast<double>(w.pages_mapped);
}
BENCHMARK(BM_Lifecycle)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

// The same lifecycle as direct PagePool calls: no request table, no validation, no stats.
void BM_PoolDirectLifecycle(benchmark::State& state) {
  const Workload& w = lifecycle_workload();
  struct Held {
    const Request* request;
    std::vector<PageId> pages;
  };
  for (auto _ : state) {
    state.PauseTiming();
    auto pool = std::make_unique<PagePool>(kNumPages, true);
    std::deque<Held> held;
    std::vector<PageId> reversed;
    state.ResumeTiming();
    auto free_oldest = [&] {
      const std::vector<PageId>& p = held.front().pages;
      reversed.assign(p.rbegin(), p.rend());
      pool->free_pages(reversed);
      held.pop_front();
    };
    for (const auto& r : w.requests) {
      if (std::ssize(held) == kMaxHeld) free_oldest();
      const std::vector<PageHash>& hashes = r->page_hashes(kPageSize);
      std::vector<PageId> pages;
      const int32_t max_hit = (r->num_tokens() - 1) / kPageSize;
      for (int32_t i = 0; i < max_hit; ++i) {
        const std::optional<PageId> p = pool->get_cached_page(hashes[static_cast<size_t>(i)], 0);
        if (!p) break;
        pages.push_back(*p);
      }
      const int32_t num_hit = static_cast<int32_t>(pages.size());
      pool->touch(pages);
      pool->get_new_pages(cdiv(r->num_tokens(), kPageSize) - num_hit, pages);
      pool->cache_full_pages(chain_of(*r), pages, num_hit, r->num_tokens() / kPageSize, 0);
      held.push_back(Held{r.get(), std::move(pages)});
    }
    while (!held.empty()) free_oldest();
    state.PauseTiming();
    pool.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * w.pages_mapped);
}
BENCHMARK(BM_PoolDirectLifecycle)->Unit(benchmark::kMillisecond);

// ---- Decode ----

constexpr int kDecodeRequests = 256;
constexpr int32_t kPromptLen = 1024;
constexpr int32_t kDecodeSteps = 1024;  // steps per episode; then everything is re-admitted

// Requests already hold their prompt + every decode token (hashed up front); a decode step
// advances num_computed_tokens by one, which is what allocate_slots sees of a new token.
std::vector<std::unique_ptr<Request>> decode_requests() {
  std::mt19937_64 rng(7);
  std::vector<std::unique_ptr<Request>> out;
  for (int i = 0; i < kDecodeRequests; ++i) {
    std::vector<TokenId> tokens(static_cast<size_t>(kPromptLen + kDecodeSteps));
    for (TokenId& t : tokens) t = static_cast<TokenId>(rng() & 0x3fffffff);
    out.push_back(std::make_unique<Request>(fmt::format("d{}", i), std::move(tokens)));
    out.back()->page_hashes(kPageSize);
  }
  return out;
}

void admit_prompts(KVCacheManager& m, std::vector<std::unique_ptr<Request>>& reqs) {
  for (auto& r : reqs) {
    m.free(*r);
    r->set_num_computed_tokens(0);
  }
  m.reset_prefix_cache();
  for (auto& r : reqs) {
    m.allocate_slots(*r, kPromptLen);
    r->set_num_computed_tokens(kPromptLen);
  }
}

void BM_DecodeStep(benchmark::State& state) {
  auto reqs = decode_requests();
  KVCacheManager m(kNumPages, kPageSize, kMaxModelLen);
  GroupPages new_pages;
  int32_t step = kDecodeSteps;
  for (auto _ : state) {
    if (step == kDecodeSteps) {
      state.PauseTiming();
      admit_prompts(m, reqs);
      step = 0;
      state.ResumeTiming();
    }
    for (auto& r : reqs) {
      if (!m.allocate_slots_into(new_pages, *r, {.num_new_tokens = 1})) {
        state.SkipWithError("out of pages");
      }
      r->set_num_computed_tokens(r->num_computed_tokens() + 1);
    }
    ++step;
  }
  state.SetItemsProcessed(state.iterations() * kDecodeRequests);  // allocate_slots calls
}
BENCHMARK(BM_DecodeStep)->Unit(benchmark::kMicrosecond);

// Floor: only the pool work a decode step implies (a new page every 16 tokens, cached when
// full), with the page lists kept by hand.
void BM_DecodeStepPoolDirect(benchmark::State& state) {
  auto reqs = decode_requests();
  PagePool pool(kNumPages, true);
  std::vector<std::vector<PageId>> tables(kDecodeRequests);
  std::vector<int32_t> computed(kDecodeRequests, 0);
  std::vector<PageId> reversed;
  int32_t step = kDecodeSteps;
  for (auto _ : state) {
    if (step == kDecodeSteps) {
      state.PauseTiming();
      for (auto& t : tables) {
        reversed.assign(t.rbegin(), t.rend());
        pool.free_pages(reversed);
        t.clear();
      }
      pool.reset_prefix_cache();
      for (int i = 0; i < kDecodeRequests; ++i) {
        pool.get_new_pages(cdiv(kPromptLen, kPageSize), tables[static_cast<size_t>(i)]);
        pool.cache_full_pages(chain_of(*reqs[static_cast<size_t>(i)]),
                              tables[static_cast<size_t>(i)], 0, kPromptLen / kPageSize, 0);
        computed[static_cast<size_t>(i)] = kPromptLen;
      }
      step = 0;
      state.ResumeTiming();
    }
    for (int i = 0; i < kDecodeRequests; ++i) {
      auto& table = tables[static_cast<size_t>(i)];
      const int32_t c = ++computed[static_cast<size_t>(i)];
      if (std::ssize(table) * kPageSize < c) pool.get_new_pages(1, table);
      if (c % kPageSize == 0) {
        pool.cache_full_pages(chain_of(*reqs[static_cast<size_t>(i)]), table, c / kPageSize - 1,
                              c / kPageSize, 0);
      }
    }
    ++step;
  }
  state.SetItemsProcessed(state.iterations() * kDecodeRequests);
}
BENCHMARK(BM_DecodeStepPoolDirect)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
