// pagedkv/replay/replay.h - cache-only replay of a request trace through a KVCacheManager: how many
// prompt tokens a prefix cache of a given capacity would have served from cache.
//
// Each request of the trace, in order, is prefilled alone and then finished:
//   Request(synthesised prompt) -> get_computed_pages -> allocate_slots(request,
//   {num_tokens - num_computed new, num_computed hit, hit pages}) -> free(request)
// The manager caches the request's full pages when it allocates them, and `free` puts them back
// on the free queue (tail of the chain first), where they stay hittable until reallocated (LRU).
// Nothing runs concurrently and nothing decodes: the replay measures the prefix cache alone.
//
// Example:
//   Trace trace = load_trace("conversation_trace.jsonl", TraceFormat::kMooncake);
//   ReplayResult r = replay(trace, {.page_size = 16, .num_pages = 65536});
//   fmt::print("{}\n", replay_result_json(r));   // one JSON object
//
// Definitions (over the replayed requests; n = prompt length, P = page size):
//   tokens          sum of n.
//   hit_tokens      sum of the num_computed_tokens returned by get_computed_pages, counted for
//                   admitted requests only. At most (n - 1) // P pages hit (the last prompt
//                   token is always recomputed), so a prompt never hits all of its tokens.
//   token_hit_rate  hit_tokens / tokens.
//   full_pages      sum of n // P (the pages a prompt fills; only full pages are cached).
//   hit_pages       hit_tokens / P (hits are whole pages).
//   page_hit_rate   hit_pages / full_pages. A prompt whose length is a multiple of P can hit at
//                   most full_pages - 1 of its pages.
//   rejected        requests needing more pages than the pool has (cdiv(n, P) > num_pages - 1);
//                   allocate_slots refuses them even in an otherwise empty pool. They count in
//                   tokens and full_pages but hit nothing, cache nothing and are not retried.
//   evictions       cached pages whose hash was dropped because the page was reallocated.
//   seconds         wall time of the replay loop (token synthesis, hashing, the manager).
//   ideal_*         the same quantities for an unbounded cache (ideal_hits below).
//
// Invariants: hit_tokens <= ideal_hit_tokens at every capacity; with num_pages >=
// ideal.unbounded_num_pages the replay never evicts and hit_tokens == ideal_hit_tokens; after
// each request every usable page is free again.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pagedkv/hash/page_hash.h"
#include "pagedkv/replay/trace.h"

namespace pagedkv {

// Hit statistics of an unbounded prefix cache, computed exactly from the block keys without a
// manager: a page's content (with everything before it) is fixed by the chain of block keys up
// to the block holding its last token and by that token's offset in the block, so a trie over
// key chains remembering how far earlier requests' full pages reached answers every lookup.
struct IdealStats {
  int64_t requests = 0;
  int64_t tokens = 0;
  int64_t full_pages = 0;
  int64_t hit_tokens = 0;
  int64_t hit_pages = 0;
  // 1 + the pages the replay allocates in all (sum of cdiv(n, P) - hit pages). A pool this
  // large (null page included) never hands out a page twice: freed pages queue up behind the
  // never-used ones, so nothing is evicted and the replay hits exactly `hit_tokens`. (Smaller
  // pools may reach the ideal too; this is the capacity that guarantees it.)
  int64_t unbounded_num_pages = 0;

  double token_hit_rate() const;
  double page_hit_rate() const;
};

struct ReplayOptions {
  int32_t page_size = 16;
  int32_t num_pages = 0;  // total pages, the null page included; >= 2
  HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128;
  int64_t max_requests = -1;  // replay only the first N requests of the trace; -1 = all
  // Called with (requests done, requests to do) about every 0.5 % of the trace and at the end.
  std::function<void(int64_t, int64_t)> progress = nullptr;

  // Throws InvalidArgument naming the bad field (page_size < 1, num_pages < 2,
  // max_requests < -1).
  void validate() const;
};

struct ReplayResult {
  int32_t num_pages = 0;
  int32_t page_size = 0;
  HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128;
  int64_t requests = 0;
  int64_t rejected = 0;
  int64_t tokens = 0;
  int64_t full_pages = 0;
  int64_t hit_tokens = 0;
  int64_t hit_pages = 0;
  int64_t evictions = 0;
  double seconds = 0.0;
  IdealStats ideal;

  double token_hit_rate() const;
  double page_hit_rate() const;
};

// Throws InvalidArgument for a bad page size or an invalid trace.
IdealStats ideal_hits(const Trace& trace, int32_t page_size, int64_t max_requests = -1);

// Replays the trace at one capacity (and computes its ideal). Throws InvalidArgument for bad
// options or an invalid trace; the trace is not modified.
ReplayResult replay(const Trace& trace, const ReplayOptions& options);

// One JSON object on one line: num_pages, page_size, capacity_tokens, hash, requests,
// rejected, tokens, full_pages, hit_tokens, hit_pages, token_hit_rate, page_hit_rate,
// evictions, seconds, ideal_hit_tokens, ideal_token_hit_rate, ideal_page_hit_rate,
// ideal_unbounded_num_pages.
std::string replay_result_json(const ReplayResult& result);

}  // namespace pagedkv
