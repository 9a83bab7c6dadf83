#include "pagedkv/kv_cache/slot_ranges.h"

#include <algorithm>
#include <limits>

namespace pagedkv {

SlotRanges::SlotRanges(int64_t lo, int64_t hi)
    : lo_(lo), width_(hi >= lo ? (hi - lo) / kBuckets + 1 : 1) {}

void SlotRanges::add_run(int64_t slot, int64_t len) {
  const int64_t end = slot + len;
  for (int64_t b = (slot - lo_) / width_; slot < end; ++b) {
    const int64_t edge = std::min(end, lo_ + (b + 1) * width_);
    weight_[static_cast<size_t>(b)] += edge - slot;
    slot = edge;
  }
  total_ += len;
}

// Walks the buckets in slot order and ends range i at the first bucket edge where the weight
// seen reaches i / n of the total.
void SlotRanges::cut(int n, int64_t align, std::span<int64_t> bounds) const {
  bounds[0] = 0;
  int64_t seen = 0;
  int b = 0;
  for (int i = 1; i < n; ++i) {
    while (b < kBuckets && seen + weight_[static_cast<size_t>(b)] <= total_ * i / n) {
      seen += weight_[static_cast<size_t>(b++)];
    }
    const int64_t edge = (lo_ + b * width_) / align * align;
    bounds[static_cast<size_t>(i)] = std::max(bounds[static_cast<size_t>(i) - 1], edge);
  }
  bounds[static_cast<size_t>(n)] = std::numeric_limits<int64_t>::max();
}

}  // namespace pagedkv
