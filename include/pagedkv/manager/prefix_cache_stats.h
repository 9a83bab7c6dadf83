// pagedkv/manager/prefix_cache_stats.h - prefix-cache hit statistics (rule 22), counted in tokens.
//
// Every prefix-cache lookup of a request records (tokens queried, tokens hit). Requests resumed
// after a preemption are counted separately (they mostly re-hit their own pages and would
// inflate the rate). A rate over the latest `window_capacity` fresh lookups (default 1000) is
// kept in a ring buffer with running sums, so every query of it is O(1).
//
// Example:
//   PrefixCacheStats stats;                     // window of 1000 requests
//   stats.record(/*num_tokens=*/48, /*num_hit_tokens=*/32, /*resumed=*/false);
//   stats.hit_rate();                           // 32 / 48
//   stats.windowed_hit_rate();                  // same until more than 1000 requests
//
// Invariants (verify()):
//   - 0 <= hits <= queries for the fresh and the resumed counters;
//   - the window holds min(requests, window_capacity) entries whose sums are window_queries()
//     and window_hits().
#pragma once

#include <cstdint>
#include <vector>

namespace pagedkv {

class PrefixCacheStats {
 public:
  static constexpr int32_t kDefaultWindow = 1000;

  // Throws InvalidArgument unless window_capacity >= 1.
  explicit PrefixCacheStats(int32_t window_capacity = kDefaultWindow);

  // Throws InvalidArgument unless 0 <= num_hit_tokens <= num_tokens (nothing changes then).
  void record(int32_t num_tokens, int32_t num_hit_tokens, bool resumed);

  // Fresh lookups (requests never preempted).
  int64_t requests() const { return requests_; }
  int64_t queries() const { return queries_; }  // tokens looked up
  int64_t hits() const { return hits_; }        // tokens found
  // Lookups of requests resumed after a preemption.
  int64_t resumed_requests() const { return resumed_requests_; }
  int64_t resumed_queries() const { return resumed_queries_; }
  int64_t resumed_hits() const { return resumed_hits_; }

  // hits / queries (0.0 before any query).
  double hit_rate() const;
  double resumed_hit_rate() const;
  // Over the latest min(requests, window_capacity) fresh lookups.
  double windowed_hit_rate() const;
  int32_t window_capacity() const { return static_cast<int32_t>(ring_.size()); }
  int32_t window_size() const { return window_count_; }
  int64_t window_queries() const { return window_queries_; }
  int64_t window_hits() const { return window_hits_; }

  // Zeroes every counter and empties the window (capacity kept).
  void reset();
  void verify() const;

 private:
  struct Entry {
    int32_t queries = 0;
    int32_t hits = 0;
  };
  int64_t requests_ = 0, queries_ = 0, hits_ = 0;
  int64_t resumed_requests_ = 0, resumed_queries_ = 0, resumed_hits_ = 0;
  std::vector<Entry> ring_;
  int32_t window_next_ = 0;   // slot the next entry overwrites
  int32_t window_count_ = 0;  // entries in use
  int64_t window_queries_ = 0, window_hits_ = 0;
};

}  // namespace pagedkv
