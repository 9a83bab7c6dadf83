// Scheduler: vLLM v1's synchronous scheduling step (rules 34-46) over one KVCacheManager.
#include "pagedkv/scheduler/scheduler.h"

#include <algorithm>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

// The most tokens one request's pages can cover in an empty pool: the largest N <=
// max_model_len with sum over groups of cdiv(N, page_size) <= usable pages. That is what a
// whole prompt of N tokens holds right after its allocation (computed 0: no group has dropped
// a page yet), so N <= this is exactly the manager's rule-29 check; later allocations of the
// same request never hold more.
int32_t tokens_in_pool(const KVCacheConfig& c) {
  auto pages_for = [&](int64_t n) {
    int64_t pages = 0;
    for (const KVCacheGroupSpec& g : c.groups) pages += cdiv<int64_t>(n, g.page_size);
    return pages;
  };
  int64_t lo = 0, hi = c.max_model_len;  // pages_for(lo) fits; find the largest that does
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (pages_for(mid) <= c.num_usable_pages()) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return static_cast<int32_t>(lo);
}

SchedulerConfig checked(SchedulerConfig config, const KVCacheManager& manager) {
  config.validate();
  PAGEDKV_CHECK_ARG(config.max_model_len == manager.config().max_model_len,
                    "max_model_len {} differs from the KV-cache manager's {}", config.max_model_len,
                    manager.config().max_model_len);
  PAGEDKV_CHECK_STATE(manager.num_requests() == 0,
                      "the KV-cache manager already holds {} requests; the scheduler must be "
                      "its only client",
                      manager.num_requests());
  return config;
}

// Rule 43: only a request whose computed tokens reached num_tokens produces a token (a partial
// prefill chunk does not); one aborted since schedule() produces none.
bool produces_token(const Sequence& seq) {
  return seq.status() == SequenceStatus::kRunning && seq.num_computed_tokens() >= seq.num_tokens();
}

// The copy of set_id, out of line: it is the rare case, and inline it made set_id too large
// for the per-request loops to inline.
[[gnu::noinline]] void copy_id(std::string& dst, const std::string& id) { dst = id; }

// Writes a request id into a reused output string. The output usually lists the same requests
// in the same places step after step, so the id is most often there already.
inline void set_id(std::string& dst, const std::string& id) {
  if (!equal_ids(dst, id)) copy_id(dst, id);
}

// How many requests ahead the per-request loops prefetch a sequence's cache lines: far enough
// for the loads to arrive before the work reaches it, near enough that they are still there.
constexpr size_t kPrefetchAhead = 4;

bool any_pages(const GroupPages& pages) {
  return std::any_of(pages.begin(), pages.end(),
                     [](const std::vector<PageId>& g) { return !g.empty(); });
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config, KVCacheManager& manager)
    : config_(checked(std::move(config), manager)), manager_(&manager), waiting_(config_.policy) {
  // A request stops one token past what its pages can cover (rule 43's max_model_len check,
  // applied to the pool as well): with N tokens its next step needs N slots.
  tokens_in_pool_ = tokens_in_pool(manager.config());
  max_num_tokens_ =
      static_cast<int32_t>(std::min<int64_t>(config_.max_model_len, int64_t{tokens_in_pool_} + 1));
}

// ---- Requests ----

void Scheduler::check_new_request(const Request& request) const {
  const std::string& id = request.request_id();
  PAGEDKV_CHECK_ARG(requests_.find(id) == requests_.end(), "request id '{}' is already live", id);
  PAGEDKV_CHECK_STATE(!manager_->has_request(id), "the KV-cache manager already holds request '{}'",
                      id);
  const int32_t len = request.num_prompt_tokens();
  PAGEDKV_CHECK_ARG(len >= 1 && len < config_.max_model_len,
                    "request '{}': prompt length {} must be in [1, max_model_len = {})", id, len,
                    config_.max_model_len);
  const KVCacheConfig& kv = manager_->config();
  PAGEDKV_CHECK_ARG(!kv.enable_caching || request.options().hash_algorithm == kv.hash_algorithm,
                    "request '{}' hashes with {} but the cache uses {}", id,
                    hash_algorithm_name(request.options().hash_algorithm),
                    hash_algorithm_name(kv.hash_algorithm));
  // Rule 29: a prompt the pool can never hold is refused now rather than waiting forever.
  PAGEDKV_CHECK_CAPACITY(len <= tokens_in_pool_,
                         "request '{}': its {}-token prompt needs more pages than the pool's {} "
                         "usable pages (they hold {} tokens of one request)",
                         id, len, kv.num_usable_pages(), tokens_in_pool_);
}

void Scheduler::add_request(Request request, SamplingParams params,
                            std::optional<TokenId> eos_token_id, int32_t priority,
                            std::optional<double> arrival_time) {
  check_new_request(request);
  const double arrival = arrival_time.value_or(static_cast<double>(num_added_));
  auto seq = std::make_unique<Sequence>(std::move(request), std::move(params), eos_token_id,
                                        priority, arrival);
  Sequence& s = *seq;
  requests_.emplace(s.request_id(), std::move(seq));
  waiting_.push(s);
  ++num_added_;
}

bool Scheduler::abort_request(const std::string& request_id) {
  Sequence* seq = find_live(request_id);
  if (seq == nullptr) return false;
  if (seq->status() == SequenceStatus::kRunning) {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  } else {
    const bool queued = waiting_.remove(*seq);
    PAGEDKV_ASSERT(queued, "request '{}' is {} but not queued", request_id,
                   sequence_status_name(seq->status()));
  }
  seq->finish(FinishReason::kAbort);
  finish(*seq);
  return true;
}

Sequence* Scheduler::find_live(const std::string& request_id) const {
  auto it = requests_.find(request_id);
  return it == requests_.end() ? nullptr : it->second.get();
}

const Sequence* Scheduler::find_sequence(const std::string& request_id) const {
  return find_live(request_id);
}

std::vector<const Sequence*> Scheduler::running() const {
  return {running_.begin(), running_.end()};
}

// Rule 44: pages back at once (each list in reverse), reported in the next output. The
// sequence stays alive (retired) while the pending output may name it.
void Scheduler::finish(Sequence& seq) {
  manager_->free(seq.request());
  finished_ids_.push_back(seq.request_id());
  auto it = requests_.find(seq.request_id());
  retired_.push_back(std::move(it->second));
  requests_.erase(it);
}

// ---- schedule() ----

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  schedule(out);
  return out;
}

void Scheduler::schedule(SchedulerOutput& out) {
  begin_step();
  int32_t budget = config_.max_num_batched_tokens;
  schedule_running(budget);
  if (step_preempted_.empty()) schedule_waiting(budget);  // rule 37
  commit_step(out);
}

void Scheduler::begin_step() {
  PAGEDKV_CHECK_STATE(!awaiting_update_ || num_entries_ == 0,
                      "the output of step {} scheduled {} requests and awaits "
                      "update_from_output",
                      step_, num_entries_);
  retired_.clear();
  num_entries_ = 0;
  step_preempted_.clear();
  ++step_;
  awaiting_update_ = true;
}

// Rules 34-36.
void Scheduler::schedule_running(int32_t& budget) {
  const int32_t threshold = config_.long_prefill_token_threshold;
  size_t i = 0;
  while (i < running_.size() && budget > 0) {
    if (i + kPrefetchAhead < running_.size()) running_[i + kPrefetchAhead]->prefetch();
    Sequence& seq = *running_[i];
    int32_t n = seq.num_tokens() - seq.num_computed_tokens();
    if (threshold > 0 && n > threshold) n = threshold;
    n = std::min(n, budget);
    if (n <= 0) {  // nothing left to compute (only before its token arrives): skip it
      ++i;
      continue;
    }
    const AllocationRequest alloc{.num_new_tokens = n, .slot_hint = seq.kv_slot()};
    if (!manager_->allocate_slots_into(new_pages_, seq.request(), alloc) &&
        !preempt_until_allocated(seq, alloc, i, budget)) {
      break;  // it preempted itself
    }
    StepEntry& e = add_entry(seq, n, EntryKind::kRunning);
    // Most decode steps add no page. Pages are copied, not swapped, so that both the entry's
    // and the manager's output buffers keep their capacity from step to step.
    e.has_new_pages = any_pages(new_pages_);
    if (e.has_new_pages) e.new_pages = new_pages_;
    budget -= n;
    ++i;
  }
}

// After the allocation for the running request at running_[index] failed: preempts victims
// until it succeeds (true; pages in new_pages_) or the request itself was preempted (false).
// Keeps `index` on the request and gives the budget back for victims scheduled earlier.
bool Scheduler::preempt_until_allocated(Sequence& seq, const AllocationRequest& alloc,
                                        size_t& index, int32_t& budget) {
  do {
    const size_t v = victim_index();
    Sequence& victim = *running_[v];
    running_.erase(running_.begin() + static_cast<ptrdiff_t>(v));
    if (v < index) {
      --index;
      budget += unschedule(victim);
    }
    preempt(victim);
    if (&victim == &seq) return false;
  } while (!manager_->allocate_slots_into(new_pages_, seq.request(), alloc));
  return true;
}

// Rule 35: FCFS the last running request; PRIORITY the largest (priority, arrival_time), the
// first of equals in running order (as vLLM's max()).
size_t Scheduler::victim_index() const {
  if (config_.policy == SchedulingPolicy::kFcfs) return running_.size() - 1;
  size_t best = 0;
  for (size_t j = 1; j < running_.size(); ++j) {
    const Sequence& a = *running_[j];
    const Sequence& b = *running_[best];
    if (std::make_pair(a.priority(), a.arrival_time()) >
        std::make_pair(b.priority(), b.arrival_time())) {
      best = j;
    }
  }
  return best;
}

// A victim scheduled earlier in this step leaves it (its new pages go back with the rest of
// its pages when it is preempted). Entries keep their order; buffers are kept for reuse.
int32_t Scheduler::unschedule(const Sequence& seq) {
  auto begin = entries_.begin();
  auto end = begin + num_entries_;
  auto it = std::find_if(begin, end, [&](const StepEntry& e) { return e.seq == &seq; });
  if (it == end) return 0;
  const int32_t n = it->num_tokens;
  std::rotate(it, it + 1, end);
  --num_entries_;
  return n;
}

// Rule 36 (the caller has taken the victim out of running_).
void Scheduler::preempt(Sequence& victim) {
  manager_->free(victim.request());
  victim.preempt();
  waiting_.push_front(victim);
  step_preempted_.push_back(&victim);
  ++num_preemptions_;
}

// Rules 37-40.
void Scheduler::schedule_waiting(int32_t& budget) {
  const int32_t threshold = config_.long_prefill_token_threshold;
  while (!waiting_.empty() && budget > 0 &&
         running_.size() < static_cast<size_t>(config_.max_num_seqs)) {
    Sequence& seq = waiting_.head();
    manager_->find_computed_pages(seq.request(), hit_);  // computed is 0 (rule 38)
    const int32_t hit = hit_.num_computed_tokens;
    int32_t n = seq.num_tokens() - hit;
    if (threshold > 0 && n > threshold) n = threshold;
    if (!config_.enable_chunked_prefill && n > budget) break;
    n = std::min(n, budget);
    if (!allocate_admission(seq, n)) break;  // no skipping ahead, no preemption (rule 39)

    waiting_.pop_head();
    running_.push_back(&seq);
    const bool resumed = seq.status() == SequenceStatus::kPreempted;
    const std::string& id = seq.request_id();
    seq.admit(hit, manager_->get_page_ids(id), manager_->slot_of(id));
    if (manager_->config().enable_caching) {  // rule 46: admitted requests only
      prefix_cache_stats_.record(seq.num_tokens(), hit, seq.num_preemptions() > 0);
    }
    add_entry(seq, n, resumed ? EntryKind::kResumed : EntryKind::kNew);
    budget -= n;
  }
}

// Rule 39: (a) the whole current sequence and (b) the chunk must fit, counted as rule 18
// counts them (plan_allocation); only the chunk is allocated.
bool Scheduler::allocate_admission(Sequence& seq, int32_t num_tokens) {
  const Request& request = seq.request();
  const int32_t hit = hit_.num_computed_tokens;
  const int32_t rest = request.num_tokens() - hit;
  if (config_.reserve_full_prompt && num_tokens < rest) {
    manager_->plan_allocation(
        request,
        {.num_new_tokens = rest, .num_new_computed_tokens = hit, .new_computed_pages = &hit_.pages},
        whole_plan_);
    if (!whole_plan_.ok()) return false;
  }
  manager_->plan_allocation(request,
                            {.num_new_tokens = num_tokens,
                             .num_new_computed_tokens = hit,
                             .new_computed_pages = &hit_.pages},
                            chunk_plan_);
  if (!chunk_plan_.ok()) return false;
  manager_->apply(chunk_plan_, new_pages_);
  return true;
}

inline Scheduler::StepEntry& Scheduler::add_entry(Sequence& seq, int32_t num_tokens,
                                                  EntryKind kind) {
  if (static_cast<size_t>(num_entries_) == entries_.size()) entries_.emplace_back();
  StepEntry& e = entries_[static_cast<size_t>(num_entries_++)];
  e.seq = &seq;
  e.num_tokens = num_tokens;
  e.kind = kind;
  e.has_new_pages = false;
  return e;
}

// Rule 41: the output (token counts as before the step), then computed += n. A request is
// scheduled once per step, so each can advance as soon as its entry is written.
void Scheduler::commit_step(SchedulerOutput& out) {
  const size_t num = static_cast<size_t>(num_entries_);
  size_t num_new = 0;
  for (size_t i = 0; i < num; ++i) num_new += entries_[i].kind == EntryKind::kNew;
  out.step = step_;
  out.num_scheduled_tokens.resize(num);
  out.scheduled_new_reqs.resize(num_new);
  resize_cached(out.scheduled_cached_reqs, num - num_new);
  out.total_num_scheduled_tokens = 0;
  size_t next_new = 0, next_cached = 0;
  for (size_t i = 0; i < num; ++i) {
    if (i + kPrefetchAhead < num) entries_[i + kPrefetchAhead].seq->prefetch();
    StepEntry& e = entries_[i];
    set_id(out.num_scheduled_tokens[i].first, e.seq->request_id());
    out.num_scheduled_tokens[i].second = e.num_tokens;
    out.total_num_scheduled_tokens += e.num_tokens;
    if (e.kind == EntryKind::kNew) {
      write_new_request(*e.seq, out.scheduled_new_reqs[next_new++]);
    } else {
      write_cached_request(e, out.scheduled_cached_reqs, next_cached++);
    }
    e.seq->advance(e.num_tokens);
  }

  out.preempted_req_ids.resize(step_preempted_.size());
  for (size_t i = 0; i < step_preempted_.size(); ++i) {
    out.preempted_req_ids[i] = step_preempted_[i]->request_id();
  }
  out.finished_req_ids.swap(finished_ids_);
  finished_ids_.clear();
}

void Scheduler::resize_cached(CachedRequestData& cached, size_t size) {
  cached.request_ids.resize(size);
  cached.resumed.resize(size);
  cached.new_page_ids.resize(size);
  cached.num_computed_tokens.resize(size);
}

// A new request lists its prompt and all its pages (rule 40).
void Scheduler::write_new_request(const Sequence& seq, NewRequestData& d) {
  set_id(d.request_id, seq.request_id());
  const std::span<const TokenId> prompt = seq.request().prompt_token_ids();
  d.prompt_token_ids.assign(prompt.begin(), prompt.end());
  d.page_ids = seq.page_ids();
  d.num_computed_tokens = seq.num_computed_tokens();
}

// A resumed request lists all its pages, a running one the pages added in this step or none
// (rule 40); the running one's new pages join the pages the outputs have announced. Page lists
// of a reused output that become nullopt keep their buffers in spare_pages_: in steady decode
// only one request in page_size gets pages, and allocating for each of them costs more than
// the rest of its step.
inline void Scheduler::write_cached_request(StepEntry& e, CachedRequestData& cached, size_t index) {
  Sequence& seq = *e.seq;
  set_id(cached.request_ids[index], seq.request_id());
  cached.resumed[index] = e.kind == EntryKind::kResumed;
  cached.num_computed_tokens[index] = seq.num_computed_tokens();
  std::optional<GroupPages>& pages = cached.new_page_ids[index];
  if (e.kind == EntryKind::kRunning && !e.has_new_pages) {
    if (pages) spare_pages_.push_back(std::move(*pages));  // keep its buffers for later steps
    pages.reset();
    return;
  }
  if (!pages && !spare_pages_.empty()) {
    pages.emplace(std::move(spare_pages_.back()));
    spare_pages_.pop_back();
  }
  if (e.kind == EntryKind::kResumed) {
    pages = seq.page_ids();
  } else {
    seq.append_pages(e.new_pages);
    pages = e.new_pages;
  }
}

// ---- update_from_output() ----

std::vector<RequestOutput> Scheduler::update_from_output(
    const SchedulerOutput& out, std::span<const std::vector<TokenId>> sampled_token_ids) {
  std::vector<RequestOutput> results;
  update_from_output(out, sampled_token_ids, results);
  return results;
}

std::vector<RequestOutput> Scheduler::update_from_output(
    const SchedulerOutput& out,
    const std::unordered_map<std::string, std::vector<TokenId>>& sampled_token_ids) {
  std::vector<std::vector<TokenId>> ordered(out.num_scheduled_tokens.size());
  size_t matched = 0;
  for (size_t i = 0; i < ordered.size(); ++i) {
    auto it = sampled_token_ids.find(out.num_scheduled_tokens[i].first);
    if (it == sampled_token_ids.end()) continue;
    ordered[i] = it->second;
    ++matched;
  }
  if (matched != sampled_token_ids.size()) {
    std::unordered_set<std::string_view> scheduled;
    for (const auto& [id, n] : out.num_scheduled_tokens) scheduled.insert(id);
    for (const auto& [id, tokens] : sampled_token_ids) {
      PAGEDKV_CHECK_ARG(scheduled.count(id) != 0,
                        "sampled tokens given for request '{}', which step {} did not schedule", id,
                        out.step);
    }
  }
  return update_from_output(out, ordered);
}

void Scheduler::update_from_output(const SchedulerOutput& out,
                                   std::span<const std::vector<TokenId>> sampled_token_ids,
                                   std::vector<RequestOutput>& results) {
  check_sampled(out, sampled_token_ids);
  awaiting_update_ = false;
  size_t num_results = 0;
  bool any_finished = false;
  const size_t num = static_cast<size_t>(num_entries_);
  for (size_t i = 0; i < num; ++i) {
    if (i + kPrefetchAhead < num) entries_[i + kPrefetchAhead].seq->prefetch();
    Sequence& seq = *entries_[i].seq;
    if (!produces_token(seq)) continue;
    const TokenId token = sampled_token_ids[i].front();
    const std::optional<FinishReason> reason = seq.append_output_token(token, max_num_tokens_);
    if (num_results == results.size()) results.emplace_back();
    RequestOutput& r = results[num_results++];
    set_id(r.request_id, seq.request_id());
    if (r.new_token_ids.size() == 1) {  // a reused result: overwrite its token
      r.new_token_ids[0] = token;
    } else {
      r.new_token_ids.assign(1, token);
    }
    r.finished = reason.has_value();
    r.finish_reason = reason;
    r.stop_reason = seq.stop_reason();
    if (reason) {  // rule 44: freed at once, in output order
      any_finished = true;
      finish(seq);
    }
  }
  results.resize(num_results);
  if (any_finished) remove_finished_from_running();
  num_entries_ = 0;
}

void Scheduler::check_sampled(const SchedulerOutput& out,
                              std::span<const std::vector<TokenId>> sampled_token_ids) const {
  PAGEDKV_CHECK_STATE(awaiting_update_ && out.step == step_,
                      "the output of step {} is not awaiting update_from_output (latest step: "
                      "{}, {})",
                      out.step, step_, awaiting_update_ ? "pending" : "applied");
  PAGEDKV_CHECK_ARG(sampled_token_ids.size() == static_cast<size_t>(num_entries_) &&
                        out.num_scheduled_tokens.size() == static_cast<size_t>(num_entries_),
                    "step {} scheduled {} requests; got an output listing {} and sampled tokens "
                    "for {}",
                    step_, num_entries_, out.num_scheduled_tokens.size(), sampled_token_ids.size());
  for (size_t i = 0; i < static_cast<size_t>(num_entries_); ++i) {
    const Sequence& seq = *entries_[i].seq;
    PAGEDKV_CHECK_ARG(equal_ids(out.num_scheduled_tokens[i].first, seq.request_id()),
                      "output entry {} names '{}' but step {} scheduled '{}' there", i,
                      out.num_scheduled_tokens[i].first, step_, seq.request_id());
    if (!produces_token(seq)) continue;  // whatever was sampled for it is ignored
    const std::vector<TokenId>& tokens = sampled_token_ids[i];
    PAGEDKV_CHECK_ARG(tokens.size() == 1,
                      "request '{}' completed its tokens and must be given exactly 1 sampled "
                      "token, got {}",
                      seq.request_id(), tokens.size());
    PAGEDKV_CHECK_ARG(tokens[0] >= 0, "request '{}': sampled token id {} is negative",
                      seq.request_id(), tokens[0]);
  }
}

// Rule 44: the others keep their order.
void Scheduler::remove_finished_from_running() {
  std::erase_if(running_, [](const Sequence* s) { return s->is_finished(); });
}

// ---- Statistics and invariants ----

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_steps = step_;
  s.num_preemptions = num_preemptions_;
  s.num_running = num_running();
  s.num_waiting = num_waiting();
  s.kv_cache_usage = manager_->usage();
  s.prefix_cache = prefix_cache_stats_;
  return s;
}

void Scheduler::verify() const {
  PAGEDKV_ASSERT(running_.size() <= static_cast<size_t>(config_.max_num_seqs),
                 "{} running requests, max_num_seqs {}", running_.size(), config_.max_num_seqs);
  PAGEDKV_ASSERT(running_.size() + static_cast<size_t>(waiting_.size()) == requests_.size(),
                 "{} running + {} waiting requests, {} live", running_.size(), waiting_.size(),
                 requests_.size());
  waiting_.verify();
  for (const Sequence* seq : waiting_.in_order()) {
    PAGEDKV_ASSERT(find_live(seq->request_id()) == seq, "waiting request '{}' is not live",
                   seq->request_id());
    PAGEDKV_ASSERT(
        seq->status() == SequenceStatus::kWaiting || seq->status() == SequenceStatus::kPreempted,
        "request '{}' is waiting with status {}", seq->request_id(),
        sequence_status_name(seq->status()));
    PAGEDKV_ASSERT(!manager_->has_request(seq->request_id()), "waiting request '{}' holds pages",
                   seq->request_id());
    seq->verify();
  }
  std::unordered_set<const Sequence*> seen;
  for (const Sequence* seq : running_) {
    const std::string& id = seq->request_id();
    PAGEDKV_ASSERT(seen.insert(seq).second, "request '{}' is running twice", id);
    PAGEDKV_ASSERT(find_live(id) == seq, "running request '{}' is not live", id);
    PAGEDKV_ASSERT(seq->status() == SequenceStatus::kRunning,
                   "request '{}' is running with "
                   "status {}",
                   id, sequence_status_name(seq->status()));
    seq->verify();
    PAGEDKV_ASSERT(seq->kv_slot() == manager_->slot_of(id),
                   "running request '{}' keeps manager slot {}, it holds slot {}", id,
                   seq->kv_slot(), manager_->slot_of(id));
    for (GroupId g = 0; g < manager_->num_groups(); ++g) {
      const std::span<const PageId> held = manager_->request_pages(id, g);
      const std::vector<PageId>& told = seq->page_ids()[static_cast<size_t>(g)];
      PAGEDKV_ASSERT(held.size() == told.size(),
                     "request '{}' group {}: the manager holds {} pages, the outputs announced {}",
                     id, g, held.size(), told.size());
      for (size_t p = 0; p < held.size(); ++p) {
        PAGEDKV_ASSERT(held[p] == told[p] || held[p] == kNullPageId,
                       "request '{}' group {} page {}: the manager holds {}, the outputs "
                       "announced {}",
                       id, g, p, held[p], told[p]);
      }
    }
  }
  PAGEDKV_ASSERT(manager_->num_requests() == static_cast<int32_t>(running_.size()),
                 "the manager holds {} requests, {} are running", manager_->num_requests(),
                 running_.size());
  manager_->verify();
  prefix_cache_stats_.verify();
}

}  // namespace pagedkv
