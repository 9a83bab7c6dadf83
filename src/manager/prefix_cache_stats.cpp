// Prefix-cache statistics: counters plus a fixed ring of the latest fresh lookups.
#include "pagedkv/manager/prefix_cache_stats.h"

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {
double ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}
}  // namespace

PrefixCacheStats::PrefixCacheStats(int32_t window_capacity) {
  PAGEDKV_CHECK_ARG(window_capacity >= 1, "window_capacity must be >= 1, got {}", window_capacity);
  ring_.resize(static_cast<size_t>(window_capacity));
}

void PrefixCacheStats::record(int32_t num_tokens, int32_t num_hit_tokens, bool resumed) {
  PAGEDKV_CHECK_ARG(num_tokens >= 0, "num_tokens must be >= 0, got {}", num_tokens);
  PAGEDKV_CHECK_ARG(num_hit_tokens >= 0 && num_hit_tokens <= num_tokens,
                    "num_hit_tokens must be in [0, num_tokens={}], got {}", num_tokens,
                    num_hit_tokens);
  if (resumed) {
    ++resumed_requests_;
    resumed_queries_ += num_tokens;
    resumed_hits_ += num_hit_tokens;
    return;
  }
  ++requests_;
  queries_ += num_tokens;
  hits_ += num_hit_tokens;
  Entry& e = ring_[static_cast<size_t>(window_next_)];
  if (window_count_ == window_capacity()) {
    window_queries_ -= e.queries;  // the oldest entry leaves the window
    window_hits_ -= e.hits;
  } else {
    ++window_count_;
  }
  e = Entry{num_tokens, num_hit_tokens};
  window_queries_ += num_tokens;
  window_hits_ += num_hit_tokens;
  window_next_ = window_next_ + 1 == window_capacity() ? 0 : window_next_ + 1;
}

double PrefixCacheStats::hit_rate() const { return ratio(hits_, queries_); }
double PrefixCacheStats::resumed_hit_rate() const { return ratio(resumed_hits_, resumed_queries_); }
double PrefixCacheStats::windowed_hit_rate() const { return ratio(window_hits_, window_queries_); }

void PrefixCacheStats::reset() {
  const int32_t capacity = window_capacity();
  *this = PrefixCacheStats(capacity);
}

void PrefixCacheStats::verify() const {
  PAGEDKV_ASSERT(0 <= hits_ && hits_ <= queries_, "hits {} not in [0, queries {}]", hits_,
                 queries_);
  PAGEDKV_ASSERT(0 <= resumed_hits_ && resumed_hits_ <= resumed_queries_,
                 "resumed hits {} not in [0, resumed queries {}]", resumed_hits_, resumed_queries_);
  const int64_t expected_count = requests_ < window_capacity() ? requests_ : window_capacity();
  PAGEDKV_ASSERT(window_count_ == expected_count, "window holds {} entries, expected {}",
                 window_count_, expected_count);
  // The entries in use are the window_count_ slots just before window_next_.
  int64_t q = 0, h = 0;
  for (int32_t i = 0; i < window_count_; ++i) {
    int32_t idx = window_next_ - 1 - i;
    if (idx < 0) idx += window_capacity();
    q += ring_[static_cast<size_t>(idx)].queries;
    h += ring_[static_cast<size_t>(idx)].hits;
  }
  PAGEDKV_ASSERT(q == window_queries_ && h == window_hits_,
                 "window sums ({}, {}) differ from the entries ({}, {})", window_queries_,
                 window_hits_, q, h);
  PAGEDKV_ASSERT(window_hits_ <= window_queries_, "window hits {} > window queries {}",
                 window_hits_, window_queries_);
}

}  // namespace pagedkv
