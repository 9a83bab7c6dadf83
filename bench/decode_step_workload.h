// The decode step of manager_bench as a template over the manager type, so that
// slot_index_bench can run it on two builds of the manager in one process: 256 running
// requests (ids "req-NNNNN") with 1024-token prompts; each step gives every request one token
// (allocate_slots_into(request, 1)); full pages are cached as they fill; after 1024 steps
// everything is freed and re-admitted outside the clock.
#pragma once

#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv::bench {

inline constexpr int kDecodeRequests = 256;
inline constexpr int32_t kDecodePromptLen = 1024;
inline constexpr int32_t kDecodeSteps = 1024;
inline constexpr int32_t kDecodePageSize = 16;
inline constexpr int32_t kDecodeNumPages = 65536;
inline constexpr int32_t kDecodeMaxModelLen = 8192;

// Requests already hold their prompt + every decode token (hashed up front); a decode step
// advances num_computed_tokens by one, which is what allocate_slots sees of a new token.
inline std::vector<std::unique_ptr<Request>> decode_requests() {
  std::mt19937_64 rng(7);
  std::vector<std::unique_ptr<Request>> out;
  for (int i = 0; i < kDecodeRequests; ++i) {
    std::vector<TokenId> tokens(static_cast<size_t>(kDecodePromptLen + kDecodeSteps));
    for (TokenId& t : tokens) t = static_cast<TokenId>(rng() & 0x3fffffff);
    // Distinct 5-digit ids in a scattered order (7919 is prime to 90000).
    out.push_back(std::make_unique<Request>(fmt::format("req-{}", 10000 + (i * 7919) % 90000),
                                            std::move(tokens)));
    out.back()->page_hashes(kDecodePageSize);
  }
  return out;
}

template <typename Manager>
void admit_decode_prompts(Manager& m, std::vector<std::unique_ptr<Request>>& reqs) {
  for (auto& r : reqs) {
    m.free(*r);
    r->set_num_computed_tokens(0);
  }
  m.reset_prefix_cache();
  for (auto& r : reqs) {
    m.allocate_slots(*r, kDecodePromptLen);
    r->set_num_computed_tokens(kDecodePromptLen);
  }
}

template <typename Manager>
void BM_DecodeStepWith(benchmark::State& state) {
  auto reqs = decode_requests();
  Manager m(kDecodeNumPages, kDecodePageSize, kDecodeMaxModelLen);
  GroupPages new_pages;
  int32_t step = kDecodeSteps;
  for (auto _ : state) {
    if (step == kDecodeSteps) {
      state.PauseTiming();
      admit_decode_prompts(m, reqs);
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

}  // namespace pagedkv::bench
