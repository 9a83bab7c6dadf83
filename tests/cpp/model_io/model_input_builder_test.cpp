// ModelInputBuilder against a naive recomputation from the Scheduler's own state: a real
// Scheduler + KVCacheManager driven with random adds, aborts, chunked prefills, preemptions
// (tight pools), prefix-cache hits and random sampled tokens. After every step each field of
// the ModelInput is rebuilt from scheduler.find_sequence() (tokens, computed, pages) and the
// manager's pages, and verify() runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pagedkv/common/errors.h"
#include "pagedkv/model_io/model_input_builder.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {
namespace {

constexpr TokenId kEos = 2;

struct Case {
  const char* name;
  KVCacheConfig kv;
  SchedulerConfig sched;
  int32_t max_prompt;
};

KVCacheConfig kv_config(int32_t num_pages, std::vector<KVCacheGroupSpec> groups,
                        int32_t max_model_len) {
  KVCacheConfig c;
  c.num_pages = num_pages;
  c.max_model_len = max_model_len;
  c.groups = std::move(groups);
  return c;
}

SchedulerConfig sched_config(SchedulingPolicy policy, bool chunked, int32_t threshold,
                             int32_t max_model_len, int32_t budget) {
  SchedulerConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = chunked ? budget : std::max(budget, max_model_len);
  c.max_model_len = max_model_len;
  c.enable_chunked_prefill = chunked;
  c.long_prefill_token_threshold = threshold;
  c.policy = policy;
  return c;
}

std::vector<Case> cases() {
  using S = KVCacheGroupSpec;
  const auto kFcfs = SchedulingPolicy::kFcfs;
  const auto kPrio = SchedulingPolicy::kPriority;
  return {
      {"fcfs_tight", kv_config(25, {S::full_attention(4)}, 64),
       sched_config(kFcfs, true, 0, 64, 32), 48},
      {"priority_threshold", kv_config(25, {S::full_attention(4)}, 64),
       sched_config(kPrio, true, 5, 64, 32), 48},
      {"no_chunking", kv_config(16, {S::full_attention(8)}, 64),
       sched_config(kFcfs, false, 0, 64, 32), 40},
      {"page1", kv_config(81, {S::full_attention(1)}, 64), sched_config(kFcfs, true, 7, 64, 32),
       40},
      {"hybrid_sliding",
       kv_config(49, {S::full_attention(4), S::sliding_window_attention(4, 8)}, 64),
       sched_config(kPrio, true, 0, 64, 32), 40},
  };
}

class Driver {
 public:
  Driver(const Case& c, uint32_t seed)
      : m_(c.kv), s_(c.sched, m_), b_(builder_config(c)), rng_(seed), max_prompt_(c.max_prompt) {
    for (auto& prefix : prefixes_) {
      prefix.resize(static_cast<size_t>(uniform(4, 20)));
      for (TokenId& t : prefix) t = uniform(10, 1000);
    }
  }

  static ModelInputBuilderConfig builder_config(const Case& c) {
    ModelInputBuilderConfig b;
    b.max_num_reqs = c.sched.max_num_seqs;
    b.max_model_len = c.sched.max_model_len;
    b.max_num_batched_tokens = c.sched.max_num_batched_tokens;
    for (const KVCacheGroupSpec& g : c.kv.groups) b.page_sizes.push_back(g.page_size);
    return b;
  }

  void run(int32_t num_requests) {
    int32_t added = 0;
    int64_t steps = 0;
    while (added < num_requests || s_.has_unfinished_requests()) {
      ASSERT_LT(++steps, 100000) << "no progress";
      while (added < num_requests && s_.num_waiting() < 10 && uniform(0, 2) != 0) {
        add(fmt::format("r{}", added++));
      }
      if (uniform(0, 40) == 0) abort_random();
      ASSERT_NO_FATAL_FAILURE(step());
    }
    EXPECT_GT(preemptions_, 0) << "the case should preempt";
    EXPECT_GT(logits_rows_, 0);
    EXPECT_GT(s_.prefix_cache_stats().hits() + s_.prefix_cache_stats().resumed_hits(), 0)
        << "the case should hit the prefix cache";
  }

 private:
  int32_t uniform(int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng_);
  }

  void add(const std::string& id) {
    std::vector<TokenId> prompt;
    if (uniform(0, 1) == 0) {  // a shared prefix: prefix-cache hits
      const auto& p = prefixes_[static_cast<size_t>(uniform(0, 2))];
      prompt.assign(p.begin(), p.end());
    }
    const int32_t extra =
        uniform(1, std::max(1, max_prompt_ - static_cast<int32_t>(prompt.size())));
    for (int32_t i = 0; i < extra; ++i) prompt.push_back(uniform(10, 1000));
    SamplingParams params;
    params.max_tokens = uniform(1, 20);
    s_.add_request(Request(id, std::move(prompt)), params, kEos, uniform(0, 3));
  }

  void abort_random() {
    std::vector<const Sequence*> live = s_.running();
    for (const Sequence* w : s_.waiting()) live.push_back(w);
    if (live.empty()) return;
    s_.abort_request(
        live[static_cast<size_t>(uniform(0, static_cast<int32_t>(live.size()) - 1))]->request_id());
  }

  void step() {
    s_.schedule(out_);
    preemptions_ += static_cast<int64_t>(out_.preempted_req_ids.size());
    const ModelInput& in = b_.build(out_);
    b_.verify();
    ASSERT_NO_FATAL_FAILURE(check(in));
    std::vector<TokenId> sampled(static_cast<size_t>(in.num_logits()));
    for (TokenId& t : sampled) t = uniform(0, 30) == 0 ? kEos : uniform(10, 1000);
    logits_rows_ += in.num_logits();
    split_sampled_tokens(in, sampled, split_);
    b_.update_from_sampled(out_, split_);
    b_.verify();
    s_.update_from_output(out_, split_);
    // The builder's tokens follow the scheduler's for every request it still tracks.
    for (const auto& [id, n] : out_.num_scheduled_tokens) {
      const Sequence* seq = s_.find_sequence(id);
      if (seq == nullptr) continue;
      const std::span<const TokenId> mine = b_.tokens(id);
      const std::span<const TokenId> theirs = seq->request().all_token_ids();
      ASSERT_TRUE(std::equal(mine.begin(), mine.end(), theirs.begin(), theirs.end())) << id;
    }
  }

  // Naive recomputation of every field from the scheduler (after schedule(): computed already
  // includes this step's n).
  void check(const ModelInput& in) {
    const auto b = static_cast<int32_t>(out_.num_scheduled_tokens.size());
    ASSERT_EQ(in.num_reqs, b);
    ASSERT_EQ(in.num_tokens, out_.total_num_scheduled_tokens);
    ASSERT_EQ(in.query_start_loc.size(), static_cast<size_t>(b) + 1);
    ASSERT_EQ(in.query_start_loc[0], 0);
    ASSERT_EQ(in.num_groups(), m_.num_groups());
    int32_t t = 0;
    std::vector<int32_t> logits, logits_req;
    for (int32_t i = 0; i < b; ++i) {
      const auto& [id, n] = out_.num_scheduled_tokens[static_cast<size_t>(i)];
      const Sequence* seq = s_.find_sequence(id);
      ASSERT_NE(seq, nullptr) << id;
      ASSERT_EQ(in.request_ids[static_cast<size_t>(i)], id);
      const int32_t computed = seq->num_computed_tokens() - n;
      const std::span<const TokenId> tokens = seq->request().all_token_ids();
      ASSERT_EQ(in.seq_lens[static_cast<size_t>(i)], seq->num_computed_tokens()) << id;
      const GroupPages& pages = seq->page_ids();
      const GroupPages manager_pages = m_.get_page_ids(id);
      ASSERT_EQ(pages.size(), manager_pages.size());
      for (int32_t g = 0; g < in.num_groups(); ++g) {
        const std::vector<PageId>& p = pages[static_cast<size_t>(g)];
        const int32_t ps = m_.config().groups[static_cast<size_t>(g)].page_size;
        if (m_.config().groups[static_cast<size_t>(g)].sliding_window == 0) {
          ASSERT_EQ(p, manager_pages[static_cast<size_t>(g)]) << id;
        }
        const PageTableView& table = in.page_tables[static_cast<size_t>(g)];
        ASSERT_EQ(table.num_rows, b);
        for (int32_t c = 0; c < table.num_cols; ++c) {
          const PageId want =
              c < static_cast<int32_t>(p.size()) ? p[static_cast<size_t>(c)] : kPageTablePadding;
          ASSERT_EQ(table(i, c), want) << id << " group " << g << " column " << c;
        }
        for (int32_t k = 0; k < n; ++k) {
          const int32_t pos = computed + k;
          const int64_t slot = int64_t{p[static_cast<size_t>(pos / ps)]} * ps + pos % ps;
          ASSERT_EQ(in.slot_mappings[static_cast<size_t>(g)][static_cast<size_t>(t + k)], slot)
              << id << " group " << g << " position " << pos;
        }
      }
      for (int32_t k = 0; k < n; ++k) {
        ASSERT_EQ(in.token_ids[static_cast<size_t>(t + k)],
                  tokens[static_cast<size_t>(computed + k)]);
        ASSERT_EQ(in.positions[static_cast<size_t>(t + k)], computed + k);
      }
      t += n;
      ASSERT_EQ(in.query_start_loc[static_cast<size_t>(i) + 1], t);
      if (seq->num_computed_tokens() >= seq->num_tokens()) {
        logits.push_back(t - 1);
        logits_req.push_back(i);
      }
    }
    ASSERT_EQ(std::vector<int32_t>(in.logits_indices.begin(), in.logits_indices.end()), logits);
    ASSERT_EQ(std::vector<int32_t>(in.logits_request_index.begin(), in.logits_request_index.end()),
              logits_req);
    ASSERT_TRUE(std::equal(in.slot_mapping.begin(), in.slot_mapping.end(),
                           in.slot_mappings[0].begin(), in.slot_mappings[0].end()));
    // The attention view reads the same rows.
    if (b > 0) {
      const AttentionBatch ab = in.attention_batch(0);
      ASSERT_EQ(ab.pages.row_stride, in.page_tables[0].num_cols);
      ASSERT_EQ(ab.pages.page_ids.size(),
                static_cast<size_t>(b) * static_cast<size_t>(in.page_tables[0].num_cols));
    }
  }

  KVCacheManager m_;
  Scheduler s_;
  ModelInputBuilder b_;
  std::mt19937 rng_;
  int32_t max_prompt_;
  std::vector<TokenId> prefixes_[3];
  SchedulerOutput out_;
  std::vector<std::vector<TokenId>> split_;
  int64_t preemptions_ = 0;
  int64_t logits_rows_ = 0;
};

class ModelInputDifferential : public ::testing::TestWithParam<size_t> {};

TEST_P(ModelInputDifferential, EveryFieldMatchesANaiveRecomputationFromTheScheduler) {
  const Case c = cases()[GetParam()];
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(fmt::format("{} seed {}", c.name, seed));
    Driver d(c, seed);
    ASSERT_NO_FATAL_FAILURE(d.run(150));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ModelInputDifferential, ::testing::Range<size_t>(0, cases().size()),
                         [](const auto& info) { return std::string(cases()[info.param].name); });

}  // namespace
}  // namespace pagedkv
