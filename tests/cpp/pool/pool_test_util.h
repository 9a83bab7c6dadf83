// Helpers shared by the pool tests: requests with chosen tokens and a snapshot of everything a
// PagePool exposes, to prove that a failed call changed nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pagedkv/hash/request.h"
#include "pagedkv/pool/page_pool.h"

namespace pagedkv::testing {

// A hand-made hash with the given first two words (index tests choose keys directly).
inline PageHash test_hash(uint64_t w0, uint64_t w1 = 0) {
  PageHash x;
  x.words[0] = w0;
  x.words[1] = w1;
  return x;
}

// Tokens [base, base + n): requests built from the same base share every full page.
inline std::vector<TokenId> iota_tokens(int32_t n, int32_t base = 0) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = base + i;
  return t;
}

// A request whose first `shared` tokens are 0.. and the rest are unique to `tail_base`.
inline Request make_request(const std::string& id, int32_t shared, int32_t tail, int32_t tail_base,
                            RequestOptions opts = {}) {
  std::vector<TokenId> t = iota_tokens(shared);
  for (int32_t i = 0; i < tail; ++i) t.push_back(tail_base + i);
  return Request(id, std::move(t), std::move(opts));
}

// What the KV-cache manager passes the pool to cache `r`'s pages at `page_size`.
inline PageChainView chain_of(const Request& r, int32_t page_size) {
  return PageChainView{.page_hashes = r.page_hashes(page_size),
                       .token_ids = r.all_token_ids(),
                       .page_size = page_size,
                       .lora_id = r.options().lora_id,
                       .hash_algorithm = r.hasher().algorithm()};
}

// Everything observable about a pool except the event buffer (reading that drains it).
struct PoolSnapshot {
  std::vector<PageId> free_pages;
  std::vector<int32_t> ref_counts;
  std::vector<std::optional<PageHash>> hashes;
  int64_t num_cached = 0;
  int64_t num_evictions = 0;
  bool operator==(const PoolSnapshot&) const = default;
};

inline PoolSnapshot snapshot(const PagePool& pool) {
  PoolSnapshot s;
  s.free_pages = pool.get_all_free_pages();
  for (PageId p = 0; p < pool.num_pages(); ++p) {
    s.ref_counts.push_back(pool.ref_count(p));
    s.hashes.push_back(pool.page_hash(p));
  }
  s.num_cached = pool.num_cached_pages();
  s.num_evictions = pool.num_evictions();
  return s;
}

inline std::vector<PageId> reversed(std::vector<PageId> v) {
  return std::vector<PageId>(v.rbegin(), v.rend());
}

}  // namespace pagedkv::testing
