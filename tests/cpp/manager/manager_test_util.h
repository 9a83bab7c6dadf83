// Helpers shared by the manager tests: requests with chosen tokens, and a snapshot of
// everything a KVCacheManager exposes, to prove that a failed call changed nothing.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv::manager_testing {

// Tokens [base, base + n): requests built from the same base share every full page.
inline std::vector<TokenId> iota_tokens(int32_t n, int32_t base = 0) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = base + i;
  return t;
}

// The first `shared` tokens are 0.. (shared by every such request), the next `tail` tokens
// start at `tail_base` (unique per request when the bases differ).
inline std::vector<TokenId> prompt(int32_t shared, int32_t tail = 0, int32_t tail_base = 1 << 20) {
  std::vector<TokenId> t = iota_tokens(shared);
  for (int32_t i = 0; i < tail; ++i) t.push_back(tail_base + i);
  return t;
}

// Everything observable about a manager and its pool except the event buffer (reading it
// drains it): free-queue order, ref counts, hashes, each listed request's pages, statistics.
struct ManagerSnapshot {
  std::vector<PageId> free_pages;
  std::vector<int32_t> ref_counts;
  std::vector<std::optional<PageHash>> hashes;
  std::map<std::string, GroupPages> tables;
  int32_t num_requests = 0;
  std::vector<int64_t> stats;
  bool operator==(const ManagerSnapshot&) const = default;
};

inline ManagerSnapshot snapshot(const KVCacheManager& m, const std::vector<std::string>& ids) {
  ManagerSnapshot s;
  const PagePool& pool = m.page_pool();
  s.free_pages = pool.get_all_free_pages();
  for (PageId p = 0; p < pool.num_pages(); ++p) {
    s.ref_counts.push_back(pool.ref_count(p));
    s.hashes.push_back(pool.page_hash(p));
  }
  for (const std::string& id : ids) s.tables[id] = m.get_page_ids(id);
  s.num_requests = m.num_requests();
  const PrefixCacheStats& st = m.prefix_cache_stats();
  s.stats = {st.requests(),         st.queries(),         st.hits(),
             st.resumed_requests(), st.resumed_queries(), st.resumed_hits(),
             st.window_size(),      st.window_queries(),  st.window_hits()};
  return s;
}

// Lookup + allocation of the whole rest of the prompt, as a scheduler admits a request;
// advances num_computed_tokens like the scheduler after the step. Returns the hit tokens,
// or -1 when allocation failed.
inline int32_t admit(KVCacheManager& m, Request& r, int32_t num_lookahead_tokens = 0) {
  ComputedPages hit = m.get_computed_pages(r);
  const int32_t n = r.num_tokens() - hit.num_computed_tokens;
  if (!m.allocate_slots(r, {.num_new_tokens = n,
                            .num_new_computed_tokens = hit.num_computed_tokens,
                            .new_computed_pages = &hit.pages,
                            .num_lookahead_tokens = num_lookahead_tokens})) {
    return -1;
  }
  r.set_num_computed_tokens(r.num_tokens());
  return hit.num_computed_tokens;
}

// One decode step: append a token, allocate its slot, advance. False if allocation failed.
inline bool decode_step(KVCacheManager& m, Request& r, TokenId token) {
  const TokenId t[1] = {token};
  r.append_output_token_ids(t);
  if (!m.allocate_slots(r, 1)) return false;
  r.set_num_computed_tokens(r.num_tokens());
  return true;
}

}  // namespace pagedkv::manager_testing
