// Randomized runs: thousands of requests through tight pools (preemption is frequent), random
// aborts in every state, EOS / stop tokens / length limits. After every schedule() and
// update_from_output(): verify(), plus the output's own invariants checked against a model
// page table kept from the outputs alone (what a model runner would hold). At the end every
// request has finished and every usable page is free (progress, rule 30).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pagedkv/common/errors.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {
namespace {

constexpr TokenId kEos = 2;
constexpr TokenId kStop = 3;

struct StressCase {
  const char* name;
  KVCacheConfig kv;
  SchedulerConfig sched;
  int32_t max_prompt;  // prompts of 1..max_prompt tokens
};

KVCacheConfig kv_config(int32_t num_pages, std::vector<KVCacheGroupSpec> groups,
                        int32_t max_model_len) {
  KVCacheConfig c;
  c.num_pages = num_pages;
  c.max_model_len = max_model_len;
  c.groups = std::move(groups);
  return c;
}

SchedulerConfig sched_config(SchedulingPolicy policy, bool chunked, int32_t threshold, bool reserve,
                             int32_t max_model_len, int32_t budget = 32) {
  SchedulerConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = chunked ? budget : std::max(budget, max_model_len);
  c.max_model_len = max_model_len;
  c.enable_chunked_prefill = chunked;
  c.long_prefill_token_threshold = threshold;
  c.policy = policy;
  c.reserve_full_prompt = reserve;
  return c;
}

std::vector<StressCase> stress_cases() {
  using S = KVCacheGroupSpec;
  const auto kFcfs = SchedulingPolicy::kFcfs;
  const auto kPrio = SchedulingPolicy::kPriority;
  const KVCacheConfig full4 = kv_config(25, {S::full_attention(4)}, 64);
  return {
      {"fcfs", full4, sched_config(kFcfs, true, 0, true, 64), 48},
      {"priority", full4, sched_config(kPrio, true, 0, true, 64), 48},
      {"fcfs_no_chunking", full4, sched_config(kFcfs, false, 0, true, 64), 48},
      {"priority_threshold_no_reserve", full4, sched_config(kPrio, true, 5, false, 64), 48},
      {"fcfs_page1", kv_config(81, {S::full_attention(1)}, 64),
       sched_config(kFcfs, true, 7, true, 64), 48},
      {"hybrid_sliding",
       kv_config(49, {S::full_attention(4), S::sliding_window_attention(4, 8)}, 64),
       sched_config(kPrio, true, 0, true, 64), 48},
      // 10 usable pages hold 40 tokens of one request, less than max_model_len: prompts above
      // that are refused (rule 29) and requests stop at 41 tokens.
      {"pool_below_max_model_len", kv_config(11, {S::full_attention(4)}, 64),
       sched_config(kFcfs, true, 0, true, 64, 16), 48},
  };
}

class SchedulerStress : public ::testing::TestWithParam<size_t> {};

class Driver {
 public:
  Driver(const StressCase& c, uint32_t seed) : c_(c), m_(c.kv), s_(c.sched, m_), rng_(seed) {
    for (auto& prefix : prefixes_) {
      prefix.resize(static_cast<size_t>(uniform(4, 24)));
      for (TokenId& t : prefix) t = uniform(10, 1000);
    }
  }

  void run(int32_t num_requests) {
    int32_t added = 0;
    int64_t steps = 0;
    while (added < num_requests || s_.has_unfinished_requests()) {
      ASSERT_LT(++steps, 200000) << "no progress";
      while (added < num_requests && s_.num_waiting() < 12 && uniform(0, 2) != 0) {
        add(fmt::format("r{}", added++));
      }
      if (uniform(0, 60) == 0) abort_random();
      ASSERT_NO_FATAL_FAILURE(step());
    }
    EXPECT_EQ(m_.page_pool().get_num_free_pages(), m_.config().num_usable_pages());
    EXPECT_EQ(m_.num_requests(), 0);
    EXPECT_TRUE(tables_.empty());
    EXPECT_EQ(finished_ + aborted_ + refused_, num_requests);
    EXPECT_GT(s_.stats().num_preemptions, 0) << "the pool is not tight enough to test preemption";
  }

 private:
  int32_t uniform(int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng_);
  }

  void add(const std::string& id) {
    std::vector<TokenId> prompt;
    if (uniform(0, 1) == 0) prompt = prefixes_[static_cast<size_t>(uniform(0, 3))];
    const int32_t len = uniform(1, c_.max_prompt);
    while (std::ssize(prompt) < len) prompt.push_back(uniform(10, 1000));
    prompt.resize(static_cast<size_t>(len));
    SamplingParams p;
    p.max_tokens = uniform(1, 24);
    p.min_tokens = uniform(0, 1) == 0 ? 0 : uniform(0, p.max_tokens);
    p.ignore_eos = uniform(0, 5) == 0;
    p.stop_token_ids = {kStop};
    try {
      s_.add_request(Request(id, std::move(prompt)), p, kEos, uniform(0, 3));
    } catch (const CapacityError&) {
      ASSERT_GT(len, s_.max_num_tokens() - 1);
      ++refused_;
      return;
    }
    live_.insert(id);
  }

  void abort_random() {
    if (live_.empty()) return;
    auto it = live_.begin();
    std::advance(it, uniform(0, static_cast<int32_t>(live_.size()) - 1));
    const std::string id = *it;
    ASSERT_TRUE(s_.abort_request(id));
    forget(id);
    ++aborted_;
    s_.verify();
  }

  void forget(const std::string& id) {
    live_.erase(id);
    tables_.erase(id);
  }

  void step() {
    std::map<std::string, int32_t> computed_before;
    for (const Sequence* seq : s_.running()) {
      computed_before[seq->request_id()] = seq->num_computed_tokens();
    }
    const SchedulerOutput out = s_.schedule();
    s_.verify();
    ASSERT_NO_FATAL_FAILURE(check_output(out, computed_before));
    if (uniform(0, 80) == 0) abort_random();  // between schedule and update
    std::vector<std::vector<TokenId>> sampled(out.num_scheduled_tokens.size());
    for (size_t i = 0; i < sampled.size(); ++i) {
      const Sequence* seq = s_.find_sequence(out.num_scheduled_tokens[i].first);
      if (seq != nullptr && seq->num_computed_tokens() >= seq->num_tokens()) {
        sampled[i] = {uniform(0, 30)};  // EOS and the stop token come up now and then
      }
    }
    for (const RequestOutput& r : s_.update_from_output(out, sampled)) {
      ASSERT_EQ(r.new_token_ids.size(), 1u);
      if (!r.finished) continue;
      forget(r.request_id);
      ++finished_;
    }
    s_.verify();
  }

  // The output against the rules and against the page table a model runner builds from it.
  void check_output(const SchedulerOutput& out, const std::map<std::string, int32_t>& before) {
    const SchedulerConfig& sc = c_.sched;
    ASSERT_LE(s_.num_running(), sc.max_num_seqs);
    int32_t total = 0;
    std::set<std::string> scheduled;
    for (const auto& [id, n] : out.num_scheduled_tokens) {
      ASSERT_GE(n, 1);
      ASSERT_TRUE(scheduled.insert(id).second) << id << " scheduled twice";
      total += n;
    }
    ASSERT_EQ(total, out.total_num_scheduled_tokens);
    ASSERT_LE(total, sc.max_num_batched_tokens);
    for (const std::string& id : out.preempted_req_ids) {
      ASSERT_EQ(scheduled.count(id), 0u) << id;
      tables_.erase(id);
    }
    if (!out.preempted_req_ids.empty()) {  // rule 37: no admission in such a step
      ASSERT_TRUE(out.scheduled_new_reqs.empty());
      const auto& resumed = out.scheduled_cached_reqs.resumed;
      ASSERT_EQ(std::count(resumed.begin(), resumed.end(), 1), 0);
    }
    for (const NewRequestData& d : out.scheduled_new_reqs) {
      ASSERT_EQ(scheduled.count(d.request_id), 1u);
      ASSERT_EQ(tables_.count(d.request_id), 0u);
      tables_[d.request_id] = d.page_ids;
      ASSERT_EQ(d.num_computed_tokens % m_.config().lcm_page_size(), 0);  // whole pages hit
    }
    const CachedRequestData& cached = out.scheduled_cached_reqs;
    ASSERT_EQ(out.scheduled_new_reqs.size() + static_cast<size_t>(cached.size()), scheduled.size());
    for (int32_t i = 0; i < cached.size(); ++i) {
      const std::string& id = cached.request_ids[static_cast<size_t>(i)];
      const auto& pages = cached.new_page_ids[static_cast<size_t>(i)];
      ASSERT_EQ(scheduled.count(id), 1u);
      if (cached.resumed[static_cast<size_t>(i)]) {
        ASSERT_TRUE(pages.has_value());
        ASSERT_EQ(tables_.count(id), 0u) << id << " resumed while the model still has it";
        tables_[id] = *pages;
        continue;
      }
      ASSERT_EQ(tables_.count(id), 1u) << id;
      ASSERT_EQ(before.at(id), cached.num_computed_tokens[static_cast<size_t>(i)]);  // rule 41
      if (!pages) continue;
      for (size_t g = 0; g < pages->size(); ++g) {
        auto& table = tables_[id][g];
        table.insert(table.end(), (*pages)[g].begin(), (*pages)[g].end());
      }
    }
    // The model's tables, built from outputs only, match the manager (a sliding-window group
    // may have swapped pages for the null page) and cover every scheduled token.
    for (const auto& [id, n] : out.num_scheduled_tokens) {
      const Sequence* seq = s_.find_sequence(id);
      ASSERT_NE(seq, nullptr);
      const GroupPages held = m_.get_page_ids(id);
      const GroupPages& told = tables_.at(id);
      ASSERT_EQ(held.size(), told.size());
      for (size_t g = 0; g < held.size(); ++g) {
        ASSERT_EQ(held[g].size(), told[g].size()) << id;
        for (size_t p = 0; p < held[g].size(); ++p) {
          ASSERT_TRUE(held[g][p] == told[g][p] || held[g][p] == kNullPageId) << id;
        }
        const int64_t slots = std::ssize(told[g]) * c_.kv.groups[g].page_size;
        ASSERT_GE(slots, seq->num_computed_tokens()) << id;  // after the step's advance
      }
    }
  }

  StressCase c_;
  KVCacheManager m_;
  Scheduler s_;
  std::mt19937 rng_;
  std::vector<TokenId> prefixes_[4];
  std::set<std::string> live_;
  std::map<std::string, GroupPages> tables_;  // the model runner's page tables
  int32_t finished_ = 0, aborted_ = 0, refused_ = 0;
};

TEST_P(SchedulerStress, EveryRequestFinishesAndEveryPageIsFreeAtTheEnd) {
  const StressCase c = stress_cases()[GetParam()];
  SCOPED_TRACE(c.name);
  for (uint32_t seed : {1u, 2u}) {
    SCOPED_TRACE(seed);
    Driver d(c, seed);
    ASSERT_NO_FATAL_FAILURE(d.run(1500));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, SchedulerStress, ::testing::Range<size_t>(0, 7),
                         [](const auto& info) { return stress_cases()[info.param].name; });

}  // namespace
}  // namespace pagedkv
