// pagedkv/kv_cache/slot_ranges.h - cutting cache slots into ranges of about equal work, so that
// the threads of one cache write can each take a range: writes to different ranges never touch
// the same cache rows, and every write to a given slot stays on one thread, in order.
//
// Example (two threads over a slot mapping):
//   pagedkv::SlotRanges ranges(min_slot, max_slot);
//   for (int64_t s : slots) if (s >= 0) ranges.add(s, 1);   // or add_run(first, n) per run
//   std::array<int64_t, 3> bounds;
//   ranges.cut(2, /*align=*/1, bounds);   // thread i writes slots in [bounds[i], bounds[i + 1])
//
// Contract: every slot passed to add() lies in [lo, hi] (lo <= hi, both >= 0) and weights are
// >= 0 (unchecked: callers pass slots they have validated). cut() fills n + 1 bounds with
// bounds[0] = 0 <= bounds[1] <= ... <= bounds[n] = INT64_MAX, each interior bound a multiple of
// align (> 0). Ranges are balanced to within one of kBuckets equal buckets of [lo, hi]; a range
// may be empty. No allocation.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace pagedkv {

class SlotRanges {
 public:
  static constexpr int kBuckets = 64;

  SlotRanges(int64_t lo, int64_t hi);
  void add(int64_t slot, int64_t weight) {
    weight_[static_cast<size_t>((slot - lo_) / width_)] += weight;
    total_ += weight;
  }
  // Weight 1 for each slot of [slot, slot + len) (len >= 1, slot + len - 1 <= hi), split at
  // bucket edges: the same buckets as len calls of add(s, 1), with one division.
  void add_run(int64_t slot, int64_t len);
  void cut(int n, int64_t align, std::span<int64_t> bounds) const;

 private:
  int64_t lo_;
  int64_t width_;
  int64_t total_ = 0;
  std::array<int64_t, kBuckets> weight_{};
};

}  // namespace pagedkv
