// The KV-cache manager's request-id table (request id -> slot): absl::flat_hash_map<
// std::string, int32_t>, what the manager uses, against the hand-written open-addressing
// table it replaced (the baseline, kept here), on the manager's pattern.
//
//   BM_Find<Index>/L     L live ids ("req-NNNNN"), every one looked up once per iteration in a
//                        fixed shuffled order - the manager finds the request on every call
//   BM_Churn<Index>/L    L live ids; each item erases a random live id and inserts a new one
//                        in its slot - requests finishing and being admitted
//
// The decode step end to end with each table was measured in the same run when the manager
// still had both (commit "slot_index_bench: the request-id table against
// absl::flat_hash_map"): within 10% either way, far from the 1.3x that would have kept the
// hand-written table. manager_bench's BM_DecodeStep measures the manager as it is.
//
//   build/bench/slot_index_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <fmt/format.h>

namespace pagedkv {
namespace {

// The table KVCacheManager used before absl::flat_hash_map (its SlotIndex): linear probing
// over a power-of-two table of (id hash, slot) at load <= 1/2, ids kept per slot,
// backward-shift deletion.
class HandWrittenIndex {
 public:
  int32_t find(std::string_view id) const {
    if (size_ == 0) return -1;
    const uint64_t h = hash(id);
    for (size_t i = home(h);; i = (i + 1) & (table_.size() - 1)) {
      const Entry& e = table_[i];
      if (e.slot < 0) return -1;
      if (e.hash == h && ids_[static_cast<size_t>(e.slot)] == id) return e.slot;
    }
  }
  void insert(std::string_view id, int32_t slot) {
    if (static_cast<size_t>(size_ + 1) * 2 > table_.size()) grow();
    if (ids_.size() <= static_cast<size_t>(slot)) ids_.resize(static_cast<size_t>(slot) + 1);
    ids_[static_cast<size_t>(slot)].assign(id);
    const uint64_t h = hash(id);
    size_t i = home(h);
    while (table_[i].slot >= 0) i = (i + 1) & (table_.size() - 1);
    table_[i] = Entry{h, slot};
    ++size_;
  }
  int32_t erase(std::string_view id) {
    if (size_ == 0) return -1;
    const uint64_t h = hash(id);
    const size_t mask = table_.size() - 1;
    size_t i = home(h);
    for (;; i = (i + 1) & mask) {
      if (table_[i].slot < 0) return -1;
      if (table_[i].hash == h && ids_[static_cast<size_t>(table_[i].slot)] == id) break;
    }
    const int32_t slot = table_[i].slot;
    for (size_t j = (i + 1) & mask; table_[j].slot >= 0; j = (j + 1) & mask) {
      const size_t k = home(table_[j].hash);
      const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) {
        table_[i] = table_[j];
        i = j;
      }
    }
    table_[i] = Entry{};
    --size_;
    return slot;
  }

 private:
  struct Entry {
    uint64_t hash = 0;
    int32_t slot = -1;
  };
  static uint64_t hash(std::string_view id) { return std::hash<std::string_view>{}(id); }
  size_t home(uint64_t h) const { return static_cast<size_t>(h) & (table_.size() - 1); }
  void grow() {
    std::vector<Entry> old = std::move(table_);
    table_.assign(old.empty() ? 64 : old.size() * 2, Entry{});
    for (const Entry& e : old) {
      if (e.slot < 0) continue;
      size_t i = home(e.hash);
      while (table_[i].slot >= 0) i = (i + 1) & (table_.size() - 1);
      table_[i] = e;
    }
  }

  std::vector<Entry> table_;
  std::vector<std::string> ids_;
  int32_t size_ = 0;
};

// absl::flat_hash_map<std::string, int32_t> as KVCacheManager uses it; lookups by string
// view (heterogeneous: no std::string is built to look an id up).
class AbslIndex {
 public:
  int32_t find(std::string_view id) const {
    const auto it = map_.find(absl::string_view(id.data(), id.size()));
    return it == map_.end() ? -1 : it->second;
  }
  void insert(std::string_view id, int32_t slot) { map_.emplace(std::string(id), slot); }
  int32_t erase(std::string_view id) {
    const auto it = map_.find(absl::string_view(id.data(), id.size()));
    if (it == map_.end()) return -1;
    const int32_t slot = it->second;
    map_.erase(it);
    return slot;
  }

 private:
  absl::flat_hash_map<std::string, int32_t> map_;
};

// n distinct ids "req-NNNNN" in a scattered order, starting at `first` (7919 is prime to
// 90000, so the first 90000 are distinct).
std::vector<std::string> make_ids(int n, int first = 0) {
  std::vector<std::string> ids;
  ids.reserve(static_cast<size_t>(n));
  for (int i = first; i < first + n; ++i) {
    ids.push_back(fmt::format("req-{}", 10000 + (static_cast<int64_t>(i) * 7919) % 90000));
  }
  return ids;
}

template <typename Index>
void BM_Find(benchmark::State& state) {
  const int live = static_cast<int>(state.range(0));
  const std::vector<std::string> ids = make_ids(live);
  Index index;
  for (int i = 0; i < live; ++i) index.insert(ids[static_cast<size_t>(i)], i);
  // The callers hold their own copies of the ids (a Request owns its id string).
  std::vector<std::string> order = ids;
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  for (auto _ : state) {
    int64_t sum = 0;
    for (const std::string& id : order) sum += index.find(id);
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * live);
}

template <typename Index>
void BM_Churn(benchmark::State& state) {
  const int live = static_cast<int>(state.range(0));
  constexpr int kFresh = 1 << 16;  // ids to admit; a live window never wraps onto itself
  std::vector<std::string> slots = make_ids(live);
  const std::vector<std::string> fresh = make_ids(kFresh, live);
  std::vector<int32_t> victims(4096);
  std::mt19937 rng(5);
  for (int32_t& v : victims) v = std::uniform_int_distribution<int32_t>(0, live - 1)(rng);
  Index index;
  for (int i = 0; i < live; ++i) index.insert(slots[static_cast<size_t>(i)], i);
  size_t next = 0;
  for (auto _ : state) {
    const int32_t slot = victims[next % victims.size()];
    std::string& id = slots[static_cast<size_t>(slot)];
    benchmark::DoNotOptimize(index.erase(id));
    id = fresh[next % fresh.size()];
    index.insert(id, slot);
    ++next;
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_TEMPLATE(BM_Find, HandWrittenIndex)->Arg(256)->Arg(1024);
BENCHMARK_TEMPLATE(BM_Find, AbslIndex)->Arg(256)->Arg(1024);
BENCHMARK_TEMPLATE(BM_Churn, HandWrittenIndex)->Arg(256)->Arg(1024);
BENCHMARK_TEMPLATE(BM_Churn, AbslIndex)->Arg(256)->Arg(1024);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
