// Helpers shared by the scheduler tests: prompts with chosen tokens, a model-step stand-in
// that samples a token for every request that produces one, and a snapshot of everything a
// Scheduler and its manager expose, to prove that a failed call changed nothing.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv::scheduler_testing {

// Tokens [base, base + n): prompts built from the same base share every full page.
inline std::vector<TokenId> tokens(int32_t n, int32_t base = 1000) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = base + i;
  return t;
}

inline SamplingParams max_tokens(int32_t n, int32_t min_tokens = 0) {
  SamplingParams p;
  p.max_tokens = n;
  p.min_tokens = min_tokens;
  return p;
}

inline SchedulerConfig config(int32_t max_num_seqs, int32_t budget, int32_t max_model_len,
                              SchedulingPolicy policy = SchedulingPolicy::kFcfs) {
  SchedulerConfig c;
  c.max_num_seqs = max_num_seqs;
  c.max_num_batched_tokens = budget;
  c.max_model_len = max_model_len;
  c.policy = policy;
  return c;
}

// The model step's sampled tokens for `out`, in output order: `token(id)` for every request
// that produces one (computed after the step >= num_tokens), none for partial prefills.
inline std::vector<std::vector<TokenId>> sample(
    const Scheduler& s, const SchedulerOutput& out,
    const std::function<TokenId(const std::string&)>& token) {
  std::vector<std::vector<TokenId>> sampled(out.num_scheduled_tokens.size());
  for (size_t i = 0; i < sampled.size(); ++i) {
    const std::string& id = out.num_scheduled_tokens[i].first;
    const Sequence* seq = s.find_sequence(id);
    if (seq != nullptr && seq->num_computed_tokens() >= seq->num_tokens()) {
      sampled[i] = {token(id)};
    }
  }
  return sampled;
}

// The id -> (tokens scheduled) map of an output, for compact assertions.
inline std::vector<std::pair<std::string, int32_t>> scheduled(const SchedulerOutput& out) {
  return out.num_scheduled_tokens;
}

inline std::vector<std::string> ids(const std::vector<const Sequence*>& seqs) {
  std::vector<std::string> out;
  for (const Sequence* s : seqs) out.push_back(s->request_id());
  return out;
}

// Everything observable about a scheduler and its manager.
struct SchedulerSnapshot {
  std::vector<std::string> running, waiting;
  std::map<std::string, std::tuple<int, int32_t, int32_t, int32_t>> sequences;
  std::vector<PageId> free_pages;
  std::vector<int32_t> ref_counts;
  std::map<std::string, GroupPages> tables;
  std::vector<int64_t> stats;
  bool operator==(const SchedulerSnapshot&) const = default;
};

inline SchedulerSnapshot snapshot(const Scheduler& s, const KVCacheManager& m) {
  SchedulerSnapshot snap;
  snap.running = ids(s.running());
  snap.waiting = ids(s.waiting());
  for (const auto* list : {&snap.running, &snap.waiting}) {
    for (const std::string& id : *list) {
      const Sequence* seq = s.find_sequence(id);
      snap.sequences[id] = {static_cast<int>(seq->status()), seq->num_tokens(),
                            seq->num_computed_tokens(), seq->num_preemptions()};
      snap.tables[id] = m.get_page_ids(id);
    }
  }
  const PagePool& pool = m.page_pool();
  snap.free_pages = pool.get_all_free_pages();
  for (PageId p = 0; p < pool.num_pages(); ++p) snap.ref_counts.push_back(pool.ref_count(p));
  const SchedulerStats st = s.stats();
  snap.stats = {st.num_steps, st.num_preemptions, st.prefix_cache.requests(),
                st.prefix_cache.queries(), st.prefix_cache.hits()};
  return snap;
}

}  // namespace pagedkv::scheduler_testing
