#include "pagedkv/replay/replay.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_config.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv {

namespace {

double ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

int64_t replay_count(const Trace& trace, int64_t max_requests) {
  const auto size = static_cast<int64_t>(trace.requests.size());
  return max_requests < 0 ? size : std::min(size, max_requests);
}

// A node of the key-chain trie: one block of one distinct prefix.
struct ChainKey {
  uint32_t parent;
  uint64_t key;
  friend bool operator==(const ChainKey&, const ChainKey&) = default;
};
struct ChainKeyHash {
  size_t operator()(const ChainKey& k) const {
    uint64_t z = k.key ^ (static_cast<uint64_t>(k.parent) * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 29)) * 0xBF58476D1CE4E5B9ull;
    return static_cast<size_t>(z ^ (z >> 32));
  }
};

}  // namespace

double IdealStats::token_hit_rate() const { return ratio(hit_tokens, tokens); }
double IdealStats::page_hit_rate() const { return ratio(hit_pages, full_pages); }
double ReplayResult::token_hit_rate() const { return ratio(hit_tokens, tokens); }
double ReplayResult::page_hit_rate() const { return ratio(hit_pages, full_pages); }

void ReplayOptions::validate() const {
  PAGEDKV_CHECK_ARG(page_size >= 1, "page_size must be >= 1, got {}", page_size);
  PAGEDKV_CHECK_ARG(num_pages >= 2, "num_pages must be >= 2 (the null page + 1 usable), got {}",
                    num_pages);
  PAGEDKV_CHECK_ARG(max_requests >= -1, "max_requests must be >= -1 (-1 = all), got {}",
                    max_requests);
}

IdealStats ideal_hits(const Trace& trace, int32_t page_size, int64_t max_requests) {
  PAGEDKV_CHECK_ARG(page_size >= 1, "page_size must be >= 1, got {}", page_size);
  PAGEDKV_CHECK_ARG(max_requests >= -1, "max_requests must be >= -1 (-1 = all), got {}",
                    max_requests);
  trace.validate();
  const int64_t count = replay_count(trace, max_requests);
  const int64_t B = trace.block_size;
  const int64_t P = page_size;

  // covered[node]: how many leading tokens of the node's block earlier requests' full pages
  // reached (0 = none yet). Node 0 is the root.
  std::unordered_map<ChainKey, uint32_t, ChainKeyHash> nodes;
  std::vector<int32_t> covered(1, 0);
  std::vector<uint32_t> chain;

  IdealStats s;
  int64_t allocated = 0;
  for (int64_t i = 0; i < count; ++i) {
    const TraceRequest& r = trace.requests[static_cast<size_t>(i)];
    const int64_t n = r.input_length;
    chain.clear();
    uint32_t parent = 0;
    for (uint64_t key : r.block_keys) {
      auto [it, inserted] =
          nodes.try_emplace(ChainKey{parent, key}, static_cast<uint32_t>(covered.size()));
      if (inserted) covered.push_back(0);
      parent = it->second;
      chain.push_back(parent);
    }
    // Longest cached prefix, at most (n - 1) // P pages: page p is cached iff an earlier
    // request with the same key chain up to the block of its last token filled it.
    int64_t hits = 0;
    const int64_t max_hits = (n - 1) / P;
    while (hits < max_hits) {
      const int64_t end = (hits + 1) * P;  // one past the page's last token
      const int64_t b = (end - 1) / B;
      if (covered[chain[static_cast<size_t>(b)]] < end - b * B) break;
      ++hits;
    }
    // This request caches its n // P full pages.
    const int64_t full = n / P;
    const int64_t cached_end = full * P;
    for (int64_t b = 0; b * B < cached_end; ++b) {
      int32_t& c = covered[chain[static_cast<size_t>(b)]];
      c = std::max(c, static_cast<int32_t>(std::min(B, cached_end - b * B)));
    }
    allocated += cdiv(n, P) - hits;
    s.requests += 1;
    s.tokens += n;
    s.full_pages += full;
    s.hit_pages += hits;
    s.hit_tokens += hits * P;
  }
  s.unbounded_num_pages = 1 + allocated;
  return s;
}

ReplayResult replay(const Trace& trace, const ReplayOptions& options) {
  options.validate();
  const IdealStats ideal = ideal_hits(trace, options.page_size, options.max_requests);
  const int32_t max_len = std::max(1, trace.max_input_length());
  PAGEDKV_CHECK_ARG(max_len <= KVCacheConfig::kMaxModelLen,
                    "the longest prompt ({} tokens) exceeds the manager's limit of {} tokens",
                    max_len, KVCacheConfig::kMaxModelLen);
  const int64_t count = replay_count(trace, options.max_requests);
  const int64_t P = options.page_size;
  const int64_t usable = options.num_pages - 1;
  const int64_t progress_step = std::max<int64_t>(1, count / 200);

  const auto start = std::chrono::steady_clock::now();
  KVCacheConfig config = KVCacheConfig::single_group(options.num_pages, options.page_size, max_len);
  config.hash_algorithm = options.hash_algorithm;
  KVCacheManager manager(config);
  RequestOptions request_options;
  request_options.hash_algorithm = options.hash_algorithm;

  ReplayResult r;
  r.num_pages = options.num_pages;
  r.page_size = options.page_size;
  r.hash_algorithm = options.hash_algorithm;
  r.ideal = ideal;
  ComputedPages hit;
  GroupPages new_pages;
  std::vector<TokenId> tokens;
  for (int64_t i = 0; i < count; ++i) {
    const TraceRequest& tr = trace.requests[static_cast<size_t>(i)];
    const int64_t n = tr.input_length;
    r.requests += 1;
    r.tokens += n;
    r.full_pages += n / P;
    if (options.progress && ((i + 1) % progress_step == 0)) options.progress(i + 1, count);
    // Every page is free between requests, so only a prompt larger than the whole pool can
    // fail; the manager refuses it (rule 29) and so does the replay, without retrying.
    if (cdiv(n, P) > usable) {
      r.rejected += 1;
      continue;
    }
    synthesize_prompt(tr, trace.block_size, tokens);
    Request request(fmt::format("r{}", i), std::move(tokens), request_options);
    tokens = {};
    manager.get_computed_pages(request, /*resumed=*/false, hit);
    const int32_t computed = hit.num_computed_tokens;
    const AllocationRequest alloc{.num_new_tokens = request.num_tokens() - computed,
                                  .num_new_computed_tokens = computed,
                                  .new_computed_pages = &hit.pages};
    if (!manager.allocate_slots_into(new_pages, request, alloc)) {
      // Unreachable while the pool is empty between requests; counted, never retried.
      r.rejected += 1;
      continue;
    }
    r.hit_tokens += computed;
    manager.free(request);
  }
  r.hit_pages = r.hit_tokens / P;
  r.evictions = manager.page_pool().num_evictions();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.progress) options.progress(count, count);
  return r;
}

std::string replay_result_json(const ReplayResult& r) {
  nlohmann::ordered_json j;
  j["num_pages"] = r.num_pages;
  j["page_size"] = r.page_size;
  j["capacity_tokens"] = static_cast<int64_t>(r.num_pages - 1) * r.page_size;
  j["hash"] = std::string(hash_algorithm_name(r.hash_algorithm));
  j["requests"] = r.requests;
  j["rejected"] = r.rejected;
  j["tokens"] = r.tokens;
  j["full_pages"] = r.full_pages;
  j["hit_tokens"] = r.hit_tokens;
  j["hit_pages"] = r.hit_pages;
  j["token_hit_rate"] = r.token_hit_rate();
  j["page_hit_rate"] = r.page_hit_rate();
  j["evictions"] = r.evictions;
  j["seconds"] = r.seconds;
  j["ideal_hit_tokens"] = r.ideal.hit_tokens;
  j["ideal_token_hit_rate"] = r.ideal.token_hit_rate();
  j["ideal_page_hit_rate"] = r.ideal.page_hit_rate();
  j["ideal_unbounded_num_pages"] = r.ideal.unbounded_num_pages;
  return j.dump();
}

}  // namespace pagedkv
