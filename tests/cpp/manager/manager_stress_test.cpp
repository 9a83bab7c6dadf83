// Randomized scheduler-like runs over several configs, with verify() after every operation and
// the properties of rules 16-20, 25, 30 checked on every result. Small pools make allocation
// failure, eviction and preemption common.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "manager/manager_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv {
namespace {

using manager_testing::snapshot;

struct StressCase {
  const char* name;
  KVCacheConfig config;
};

KVCacheConfig make_config(int32_t num_pages, std::vector<KVCacheGroupSpec> groups,
                          bool caching = true, int32_t spec_tokens = 0) {
  KVCacheConfig c;
  c.num_pages = num_pages;
  c.max_model_len = 160;
  c.groups = std::move(groups);
  c.enable_caching = caching;
  c.num_speculative_tokens = spec_tokens;
  return c;
}

std::vector<StressCase> stress_cases() {
  using S = KVCacheGroupSpec;
  return {
      {"full", make_config(24, {S::full_attention(4)})},
      {"full_page1", make_config(40, {S::full_attention(1)})},
      {"full_caching_off", make_config(24, {S::full_attention(4)}, false)},
      {"full_speculative", make_config(24, {S::full_attention(4)}, true, 2)},
      {"sliding", make_config(24, {S::sliding_window_attention(4, 10)})},
      {"hybrid", make_config(48, {S::full_attention(4), S::sliding_window_attention(8, 12)})},
      {"hybrid_speculative",
       make_config(48, {S::full_attention(4), S::sliding_window_attention(4, 9)}, true, 1)},
      {"two_full_groups", make_config(40, {S::full_attention(4), S::full_attention(2)})},
  };
}

class ManagerStress : public ::testing::TestWithParam<std::tuple<int, int>> {};

// The driver: requests built from a few shared pieces (so prefixes repeat), a waiting and a
// running set, random admission / steps / finishes / preemptions.
class Driver {
 public:
  Driver(const KVCacheConfig& config, uint32_t seed) : m_(config), config_(config), rng_(seed) {}

  void run(int num_ops) {
    for (int op = 0; op < num_ops; ++op) {
      const int r = pick(100);
      if (r < 15 && reqs_.size() < 10) {
        new_request();
      } else if (r < 40) {
        schedule();
      } else if (r < 80) {
        step();
      } else if (r < 88) {
        finish();
      } else if (r < 94) {
        preempt();
      } else if (r < 96) {
        const bool nothing_held = m_.usage() == 0.0;
        EXPECT_EQ(m_.reset_prefix_cache(), nothing_held);
      } else {
        invalid_call();
      }
      m_.verify();
      if (::testing::Test::HasFailure()) return;
    }
    // The run reached the interesting states.
    EXPECT_GT(num_allocated_, num_ops / 5);
    EXPECT_GT(num_refused_, 0);
    if (config_.enable_caching) {
      EXPECT_GT(m_.prefix_cache_stats().hits(), 0);
      EXPECT_GT(m_.prefix_cache_stats().resumed_requests(), 0);
    }
    // Rule 30: after everything finishes, every usable page is free again.
    for (auto& e : reqs_) m_.free(e->req);
    m_.verify();
    EXPECT_EQ(m_.page_pool().get_num_free_pages(), config_.num_usable_pages());
    EXPECT_EQ(m_.num_requests(), 0);
  }

 private:
  struct Entry {
    Request req;
    bool running = false;
    bool preempted = false;  // its next lookups count as resumed
  };

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void new_request() {
    static const std::vector<std::vector<TokenId>> pieces = {
        {1, 2, 3, 4, 5},
        {6, 7, 8, 9, 10, 11, 12, 13},
        {20, 21, 22},
        {30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42},
        {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65}};
    std::vector<TokenId> t;
    const int n = 1 + pick(4);
    for (int i = 0; i < n; ++i) {
      const auto& p = pieces[static_cast<size_t>(pick(static_cast<int>(pieces.size())))];
      t.insert(t.end(), p.begin(), p.end());
    }
    for (int i = pick(6); i > 0; --i) t.push_back(100 + pick(3));
    t.resize(std::min<size_t>(t.size(), 120));
    RequestOptions opts;
    if (pick(5) == 0) opts.cache_salt = "tenant";
    reqs_.push_back(std::make_unique<Entry>(
        Entry{Request(fmt::format("r{}", next_id_++), std::move(t), std::move(opts))}));
  }

  Entry* pick_where(bool running) {
    std::vector<Entry*> c;
    for (auto& e : reqs_) {
      if (e->running == running) c.push_back(e.get());
    }
    return c.empty() ? nullptr : c[static_cast<size_t>(pick(static_cast<int>(c.size())))];
  }

  int32_t chunk_of(int32_t rest) {
    static const int32_t chunks[] = {0, 0, 0, 3, 7, 16};
    const int32_t c = chunks[pick(6)];
    return c == 0 ? rest : std::min(rest, c);
  }

  void check_hit(const Request& req, const ComputedPages& hit) {
    const int32_t lcm = config_.lcm_page_size();
    ASSERT_EQ(hit.pages.size(), config_.groups.size());
    ASSERT_EQ(hit.num_computed_tokens % lcm, 0);
    ASSERT_LE(hit.num_computed_tokens, (req.num_tokens() - 1) / lcm * lcm);  // rule 16
    if (!config_.enable_caching) {
      ASSERT_EQ(hit.num_computed_tokens, 0);
    }
    for (size_t g = 0; g < config_.groups.size(); ++g) {
      const int32_t ps = config_.groups[g].page_size;
      ASSERT_EQ(static_cast<int32_t>(hit.pages[g].size()) * ps, hit.num_computed_tokens);
      const auto& hashes = req.page_hashes(ps);
      for (size_t i = 0; i < hit.pages[g].size(); ++i) {
        const PageId p = hit.pages[g][i];
        if (p == kNullPageId) {
          ASSERT_EQ(config_.groups[g].kind, AttentionKind::kSlidingWindow);
          continue;
        }
        ASSERT_EQ(m_.page_pool().page_hash(p), std::optional<PageHash>(hashes[i]));
      }
    }
  }

  // allocate_slots plus the checks every call must pass; returns success.
  bool allocate(Entry& e, int32_t num_new, int32_t hit_tokens, const GroupPages* hits,
                int32_t lookahead) {
    const GroupPages before = m_.get_page_ids(e.req.request_id());
    const int32_t free_before = m_.page_pool().get_num_free_pages();
    std::optional<GroupPages> got;
    try {
      got = m_.allocate_slots(e.req, {.num_new_tokens = num_new,
                                      .num_new_computed_tokens = hit_tokens,
                                      .new_computed_pages = hits,
                                      .num_lookahead_tokens = lookahead});
    } catch (const CapacityError&) {
      ++num_refused_;
      EXPECT_EQ(m_.get_page_ids(e.req.request_id()), before);
      EXPECT_EQ(m_.page_pool().get_num_free_pages(), free_before);
      return false;
    }
    const GroupPages after = m_.get_page_ids(e.req.request_id());
    if (!got) {
      ++num_refused_;
      EXPECT_EQ(after, before);  // rule 18: nothing changed
      EXPECT_EQ(m_.page_pool().get_num_free_pages(), free_before);
      return false;
    }
    ++num_allocated_;
    const int64_t need =
        std::min<int64_t>(int64_t{e.req.num_computed_tokens()} + hit_tokens + num_new + lookahead,
                          config_.max_model_len);
    for (size_t g = 0; g < config_.groups.size(); ++g) {
      const int32_t ps = config_.groups[g].page_size;
      const size_t prev = before[g].size() + (hits ? (*hits)[g].size() : 0);
      EXPECT_EQ(after[g].size(),
                std::max<size_t>(prev, static_cast<size_t>(cdiv<int64_t>(need, ps))));
      // The new pages are the tail of the table.
      EXPECT_TRUE(std::equal((*got)[g].begin(), (*got)[g].end(),
                             after[g].end() - static_cast<ptrdiff_t>((*got)[g].size())));
      if (config_.groups[g].kind == AttentionKind::kFullAttention && hits) {
        EXPECT_TRUE(std::equal((*hits)[g].begin(), (*hits)[g].end(), after[g].begin()));
      }
    }
    return true;
  }

  void schedule() {
    Entry* e = pick_where(false);
    if (e == nullptr) return;
    ComputedPages hit = m_.get_computed_pages(e->req, e->preempted);
    check_hit(e->req, hit);
    const int32_t rest = e->req.num_tokens() - hit.num_computed_tokens;
    const int32_t num_new = chunk_of(rest);
    const int32_t lookahead = pick(4) == 0 ? 3 : 0;
    if (allocate(*e, num_new, hit.num_computed_tokens, &hit.pages, lookahead)) {
      e->req.set_num_computed_tokens(hit.num_computed_tokens + num_new);
      e->running = true;
    }
  }

  void step() {
    Entry* e = pick_where(true);
    if (e == nullptr) return;
    const int32_t computed = e->req.num_computed_tokens();
    if (computed == e->req.num_tokens()) {
      if (e->req.num_tokens() >= config_.max_model_len) return;
      const TokenId t[1] = {100 + pick(3)};
      e->req.append_output_token_ids(t);
    }
    const int32_t num_new = chunk_of(e->req.num_tokens() - computed);
    const int32_t lookahead = pick(4) == 0 ? 2 : 0;
    if (allocate(*e, num_new, 0, nullptr, lookahead)) {
      e->req.set_num_computed_tokens(computed + num_new);
    }
  }

  void finish() {
    Entry* e = pick_where(true);
    if (e == nullptr) return;
    m_.free(e->req);
    EXPECT_FALSE(m_.has_request(e->req.request_id()));
    reqs_.erase(
        std::find_if(reqs_.begin(), reqs_.end(), [&](const auto& x) { return x.get() == e; }));
  }

  void preempt() {
    Entry* e = pick_where(true);
    if (e == nullptr) return;
    m_.free(e->req);
    e->req.set_num_computed_tokens(0);
    e->preempted = true;
    e->running = false;
  }

  void invalid_call() {
    Entry* e = pick_where(pick(2) == 0);
    if (e == nullptr) return;
    std::vector<std::string> ids;
    for (auto& x : reqs_) ids.push_back(x->req.request_id());
    const auto before = snapshot(m_, ids);
    GroupPages wrong(config_.groups.size() + 1);
    switch (pick(4)) {
      case 0: EXPECT_THROW(m_.allocate_slots(e->req, -1), InvalidArgument); break;
      case 1:
        EXPECT_THROW(m_.allocate_slots(e->req, config_.max_model_len + 1), InvalidArgument);
        break;
      case 2:
        EXPECT_THROW(m_.allocate_slots(e->req, {.num_new_tokens = 1, .new_computed_pages = &wrong}),
                     InvalidArgument);
        break;
      default: EXPECT_THROW(m_.get_num_common_prefix_pages(e->req, 0), InvalidArgument); break;
    }
    EXPECT_EQ(snapshot(m_, ids), before);
  }

  KVCacheManager m_;
  KVCacheConfig config_;
  std::mt19937 rng_;
  std::vector<std::unique_ptr<Entry>> reqs_;
  int next_id_ = 0;
  int num_allocated_ = 0;
  int num_refused_ = 0;  // nullopt or CapacityError
};

TEST_P(ManagerStress, RandomRunsKeepEveryInvariant) {
  const auto [case_index, seed] = GetParam();
  const StressCase c = stress_cases()[static_cast<size_t>(case_index)];
  SCOPED_TRACE(c.name);
  Driver(c.config, static_cast<uint32_t>(seed) * 7919u + 17u).run(1500);
}

INSTANTIATE_TEST_SUITE_P(Configs, ManagerStress,
                         ::testing::Combine(::testing::Range(0, 8), ::testing::Range(0, 3)));

}  // namespace
}  // namespace pagedkv
