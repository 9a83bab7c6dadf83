// Differential stress test: the PagePool and a deliberately naive model (plain vectors, linear
// scans) run the same random request workload; every result, the free-queue order, every ref
// count and hash, and every event must match, verify() must pass after each operation, and
// every usable page must be accounted for (free, or held exactly ref-count times).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/pool/page_pool.h"
#include "pool/pool_test_util.h"

namespace pagedkv {
namespace {

using testing::chain_of;
using V = std::vector<PageId>;

// The reference model: the rules of docs/rules.md written as directly as
// possible, with no attention to speed.
class NaivePool {
 public:
  NaivePool(int32_t n, bool events) : n_(n), events_on_(events), ref_(n, 0), key_(n) {
    for (PageId p = 1; p < n; ++p) free_.push_back(p);
  }

  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  const V& free_list() const { return free_; }
  int32_t ref(PageId p) const { return ref_[static_cast<size_t>(p)]; }
  std::optional<PageHash> hash(PageId p) const {
    const auto& k = key_[static_cast<size_t>(p)];
    return k ? std::optional<PageHash>(k->first) : std::nullopt;
  }

  std::optional<PageId> lookup(const PageHash& h, GroupId g) const {
    for (const auto& [k, p] : entries_) {
      if (k.first == h && k.second == g) return p;
    }
    return std::nullopt;
  }

  V get_new(int32_t n) {
    V out(free_.begin(), free_.begin() + n);
    free_.erase(free_.begin(), free_.begin() + n);
    for (PageId p : out) {
      if (key_[static_cast<size_t>(p)]) {
        if (events_on_) {
          KVEvent e;
          e.kind = KVEvent::Kind::kRemoved;
          e.page_hashes = {key_[static_cast<size_t>(p)]->first};
          e.group_id = key_[static_cast<size_t>(p)]->second;
          e.page_ids = {p};
          events_.push_back(e);
        }
        entries_.erase(std::find_if(entries_.begin(), entries_.end(),
                                    [&](const auto& en) { return en.second == p; }));
        key_[static_cast<size_t>(p)].reset();
        ++evictions_;
      }
      ref_[static_cast<size_t>(p)] = 1;
    }
    return out;
  }

  void free(const V& seq) {
    for (PageId p : seq) {
      if (p != 0) --ref_[static_cast<size_t>(p)];
    }
    for (PageId p : seq) {
      if (p != 0 && ref_[static_cast<size_t>(p)] == 0 &&
          std::find(free_.begin(), free_.end(), p) == free_.end()) {
        free_.push_back(p);
      }
    }
  }

  void touch(const V& seq) {
    for (PageId p : seq) {
      if (p == 0) continue;
      if (ref_[static_cast<size_t>(p)] == 0) free_.erase(std::find(free_.begin(), free_.end(), p));
      ++ref_[static_cast<size_t>(p)];
    }
  }

  void cache(const Request& req, const V& pages, int32_t from, int32_t to, int32_t ps, GroupId g) {
    if (from == to) return;
    KVEvent e;
    e.kind = KVEvent::Kind::kStored;
    if (from > 0) e.parent_hash = req.page_hashes(ps)[static_cast<size_t>(from - 1)];
    e.page_size = ps;
    e.lora_id = req.options().lora_id;
    e.group_id = g;
    for (int32_t i = from; i < to; ++i) {
      const PageId p = pages[static_cast<size_t>(i)];
      if (p == 0) continue;
      const PageHash h = req.page_hashes(ps)[static_cast<size_t>(i)];
      key_[static_cast<size_t>(p)] = std::make_pair(h, g);
      entries_.push_back({{h, g}, p});
      e.page_hashes.push_back(h);
      e.page_ids.push_back(p);
      for (int32_t t = i * ps; t < (i + 1) * ps; ++t) {
        e.token_ids.push_back(req.all_token_ids()[static_cast<size_t>(t)]);
      }
    }
    if (events_on_ && !e.page_ids.empty()) events_.push_back(e);
  }

  bool reset() {
    if (num_free() != n_ - 1) return false;
    entries_.clear();
    for (auto& k : key_) k.reset();
    if (events_on_) {
      KVEvent e;
      e.kind = KVEvent::Kind::kAllCleared;
      events_.push_back(e);
    }
    return true;
  }

  std::vector<KVEvent> take_events() { return std::exchange(events_, {}); }
  int64_t evictions() const { return evictions_; }
  int64_t num_cached() const { return static_cast<int64_t>(entries_.size()); }

 private:
  int32_t n_;
  bool events_on_;
  std::vector<int32_t> ref_;
  V free_;
  std::vector<std::optional<std::pair<PageHash, GroupId>>> key_;
  std::vector<std::pair<std::pair<PageHash, GroupId>, PageId>> entries_;  // insertion order
  std::vector<KVEvent> events_;
  int64_t evictions_ = 0;
};

void expect_same_events(const std::vector<KVEvent>& got, const std::vector<KVEvent>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].kind, want[i].kind) << "event " << i;
    EXPECT_EQ(got[i].parent_hash, want[i].parent_hash) << "event " << i;
    EXPECT_EQ(got[i].page_hashes, want[i].page_hashes) << "event " << i;
    EXPECT_EQ(got[i].token_ids, want[i].token_ids) << "event " << i;
    EXPECT_EQ(got[i].page_size, want[i].page_size) << "event " << i;
    EXPECT_EQ(got[i].lora_id, want[i].lora_id) << "event " << i;
    EXPECT_EQ(got[i].group_id, want[i].group_id) << "event " << i;
    EXPECT_EQ(got[i].page_ids, want[i].page_ids) << "event " << i;
  }
}

struct Live {
  std::unique_ptr<Request> req;
  V pages;
  int32_t num_cached = 0;
  GroupId group = 0;
};

class StressRun {
 public:
  static constexpr int32_t kPageSize = 4;

  StressRun(int32_t num_pages, uint32_t seed)
      : pool_(num_pages, true, true), model_(num_pages, true), rng_(seed) {}

  void run(int steps) {
    for (int step = 0; step < steps; ++step) {
      const uint32_t op = rng_() % 100;
      if (op < 40) {
        new_request();
      } else if (op < 70) {
        free_request();
      } else if (op < 85) {
        grow_request();
      } else if (op < 88) {
        reset();
      } else {
        bad_call();
      }
      check(step);
      if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
    }
    while (!live_.empty()) free_request();
    check(steps);
    EXPECT_EQ(pool_.get_num_free_pages(), pool_.num_pages() - 1);  // nothing leaked
    // The workload reached the interesting states.
    EXPECT_GT(hits_, 0);
    EXPECT_GT(free_hits_, 0);
    EXPECT_GT(duplicate_keys_, 0);
    EXPECT_GT(model_.evictions(), 0);
    EXPECT_GT(capacity_failures_, 0);
    EXPECT_GT(resets_, 0);
  }

 private:
  int32_t rand_int(int32_t lo, int32_t hi) {  // [lo, hi]
    return lo + static_cast<int32_t>(rng_() % static_cast<uint32_t>(hi - lo + 1));
  }

  std::unique_ptr<Request> make_request() {
    // Three prompt families share long prefixes; the tail uses a tiny vocabulary so that
    // distinct requests sometimes compute identical pages (duplicates in the index).
    const int32_t family = rand_int(0, 2);
    const int32_t len = rand_int(1, 40);
    const int32_t diverge = rand_int(0, len);
    std::vector<TokenId> tokens;
    for (int32_t i = 0; i < len; ++i) {
      tokens.push_back(i < diverge ? family * 1000 + i : 5000 + rand_int(0, 1));
    }
    RequestOptions opts;
    if (rand_int(0, 4) == 0) opts.lora_id = rand_int(1, 2);
    return std::make_unique<Request>("r" + std::to_string(next_id_++), std::move(tokens), opts);
  }

  void new_request() {
    Live live;
    live.req = make_request();
    live.group = rand_int(0, 1);
    const Request& req = *live.req;
    const auto& hashes = req.page_hashes(kPageSize);
    V hits;
    if (rand_int(0, 3) != 0) {  // sometimes skip the lookup: makes duplicate keys
      const int32_t max_hit = (req.num_tokens() - 1) / kPageSize;
      for (int32_t i = 0; i < max_hit; ++i) {
        const auto got = pool_.get_cached_page(hashes[static_cast<size_t>(i)], live.group);
        ASSERT_EQ(got, model_.lookup(hashes[static_cast<size_t>(i)], live.group));
        if (!got) break;
        hits.push_back(*got);
        if (pool_.prefix_index().pages_for(hashes[static_cast<size_t>(i)], live.group).size() > 1) {
          ++duplicate_keys_;
        }
      }
    }
    hits_ += static_cast<int64_t>(hits.size());
    const int32_t total = cdiv(req.num_tokens(), kPageSize);
    const int32_t need = total - static_cast<int32_t>(hits.size());
    int32_t free_hits = 0;
    for (PageId p : hits) free_hits += model_.ref(p) == 0 ? 1 : 0;
    free_hits_ += free_hits;
    if (need > model_.num_free() - free_hits) {
      ++capacity_failures_;
      if (need > model_.num_free()) {
        const auto before = testing::snapshot(pool_);
        EXPECT_THROW(pool_.get_new_pages(need), CapacityError);
        EXPECT_EQ(testing::snapshot(pool_), before);
      }
      return;
    }
    pool_.touch(hits);
    model_.touch(hits);
    live.pages = hits;
    pool_.get_new_pages(need, live.pages);
    const V expect_new = model_.get_new(need);
    ASSERT_EQ(V(live.pages.begin() + static_cast<ptrdiff_t>(hits.size()), live.pages.end()),
              expect_new);
    const int32_t full = static_cast<int32_t>(hashes.size());
    live.num_cached = static_cast<int32_t>(hits.size());
    pool_.cache_full_pages(chain_of(req, kPageSize), live.pages, live.num_cached, full, live.group);
    model_.cache(req, live.pages, live.num_cached, full, kPageSize, live.group);
    live.num_cached = full;
    live_.push_back(std::move(live));
  }

  void free_request() {
    if (live_.empty()) return;
    const size_t i = static_cast<size_t>(rand_int(0, static_cast<int32_t>(live_.size()) - 1));
    const V order = testing::reversed(live_[i].pages);
    pool_.free_pages(order);
    model_.free(order);
    live_.erase(live_.begin() + static_cast<ptrdiff_t>(i));
  }

  void grow_request() {
    if (live_.empty()) return;
    Live& live = live_[static_cast<size_t>(rand_int(0, static_cast<int32_t>(live_.size()) - 1))];
    std::vector<TokenId> more(static_cast<size_t>(rand_int(1, 6)));
    for (auto& t : more) t = 5000 + rand_int(0, 1);
    const int32_t need =
        cdiv(live.req->num_tokens() + static_cast<int32_t>(more.size()), kPageSize) -
        static_cast<int32_t>(live.pages.size());
    if (need > model_.num_free()) return;
    live.req->append_output_token_ids(more);
    pool_.get_new_pages(need, live.pages);
    const V expect_new = model_.get_new(need);
    ASSERT_EQ(V(live.pages.end() - need, live.pages.end()), expect_new);
    const int32_t full = live.req->num_tokens() / kPageSize;
    pool_.cache_full_pages(chain_of(*live.req, kPageSize), live.pages, live.num_cached, full,
                           live.group);
    model_.cache(*live.req, live.pages, live.num_cached, full, kPageSize, live.group);
    live.num_cached = full;
  }

  void reset() {
    const bool done = model_.reset();
    resets_ += done ? 1 : 0;
    ASSERT_EQ(pool_.reset_prefix_cache(), done);
  }

  void bad_call() {
    const auto before = testing::snapshot(pool_);
    const uint32_t kind = rng_() % 3;
    if (kind == 0 && model_.num_free() > 0) {
      // Free a held page and, in the same call, a free one: a double free.
      V seq;
      if (!live_.empty() && !live_[0].pages.empty()) seq.push_back(live_[0].pages[0]);
      seq.push_back(model_.free_list()[static_cast<size_t>(rand_int(0, model_.num_free() - 1))]);
      EXPECT_THROW(pool_.free_pages(seq), StateError);
    } else if (kind == 1) {
      EXPECT_THROW(pool_.touch(V{1, pool_.num_pages()}), OutOfRange);
    } else if (!live_.empty() && live_[0].num_cached > 0) {
      // Re-caching an already cached page.
      const Live& l = live_[0];
      EXPECT_THROW(
          pool_.cache_full_pages(chain_of(*l.req, kPageSize), l.pages, 0, l.num_cached, l.group),
          StateError);
    }
    EXPECT_EQ(testing::snapshot(pool_), before);
  }

  void check(int step) {
    SCOPED_TRACE("step " + std::to_string(step));
    pool_.verify();
    ASSERT_EQ(pool_.get_all_free_pages(), model_.free_list());
    ASSERT_EQ(pool_.num_evictions(), model_.evictions());
    ASSERT_EQ(pool_.num_cached_pages(), model_.num_cached());
    // Page conservation: each usable page is free or held exactly as often as the live
    // requests list it.
    std::vector<int32_t> holders(static_cast<size_t>(pool_.num_pages()), 0);
    for (const Live& l : live_) {
      for (PageId p : l.pages) ++holders[static_cast<size_t>(p)];
    }
    int32_t held = 0;
    for (PageId p = 1; p < pool_.num_pages(); ++p) {
      ASSERT_EQ(pool_.ref_count(p), model_.ref(p)) << "page " << p;
      ASSERT_EQ(pool_.ref_count(p), holders[static_cast<size_t>(p)]) << "page " << p;
      ASSERT_EQ(pool_.page_hash(p), model_.hash(p)) << "page " << p;
      held += pool_.ref_count(p) > 0 ? 1 : 0;
    }
    ASSERT_EQ(held + pool_.get_num_free_pages(), pool_.num_pages() - 1);
    expect_same_events(pool_.take_events(), model_.take_events());
  }

  PagePool pool_;
  NaivePool model_;
  std::mt19937 rng_;
  std::vector<Live> live_;
  int next_id_ = 0;
  int64_t hits_ = 0, free_hits_ = 0, duplicate_keys_ = 0, capacity_failures_ = 0, resets_ = 0;
};

TEST(PagePoolStress, MatchesTheNaiveModelUnderRandomRequestWorkloads) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    StressRun run(48, seed);
    run.run(4000);
  }
}

TEST(PagePoolStress, MatchesTheNaiveModelInATightPool) {
  StressRun run(12, 99);  // constant eviction and frequent capacity failures
  run.run(4000);
}

}  // namespace
}  // namespace pagedkv
