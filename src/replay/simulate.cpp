#include "pagedkv/replay/simulate.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_config.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {

namespace {

// Outside the synthetic vocabulary, so no synthesised token is ever the EOS token (and
// ignore_eos is set anyway: the trace, not the sampler, decides each output length).
constexpr TokenId kSimulatedEos = kSyntheticVocabSize;
// Output-token keys are mixed with this tag so they do not follow a pattern of the request
// index that block keys (XXH3 values) could share.
constexpr uint64_t kOutputKeyTag = 0x6F75747075742D6Bull;

double ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

int64_t simulate_count(const Trace& trace, int64_t max_requests) {
  const auto size = static_cast<int64_t>(trace.requests.size());
  return max_requests < 0 ? size : std::min(size, max_requests);
}

int32_t output_length(const TraceRequest& r, int32_t default_output_tokens) {
  return r.output_length > 0 ? r.output_length : default_output_tokens;
}

// Request ids are "r" + the trace index, zero-padded so that the PRIORITY queue's tie-break on
// the id keeps trace order among equal timestamps.
int32_t id_width(int64_t count) {
  return static_cast<int32_t>(std::to_string(std::max<int64_t>(count - 1, 0)).size());
}

int64_t trace_index(const std::string& request_id) {
  int64_t index = -1;
  std::from_chars(request_id.data() + 1, request_id.data() + request_id.size(), index);
  PAGEDKV_ASSERT(index >= 0, "request id '{}' names no trace request", request_id);
  return index;
}

// What the simulation remembers of one trace request.
struct Tracked {
  double arrival = 0.0;
  double admitted = -1.0;     // start of the step that first admitted it
  double first_token = -1.0;  // end of the step that produced its first output
  double last_token = -1.0;
  int32_t prompt_tokens = 0;
  int32_t output_target = 0;  // output_length()
  int32_t outputs = 0;
  int32_t computed_high = 0;  // the most positions it ever had computed
};

// One scheduled request of the current step, in output order.
struct Scheduled {
  int64_t index = 0;         // trace index
  int32_t num_computed = 0;  // before the step
  int32_t num_tokens = 0;    // scheduled in the step
};

class Simulation {
 public:
  Simulation(const Trace& trace, const SimulateOptions& options, int32_t max_model_len);
  SimulateResult run();

 private:
  void add_arrivals();
  void add(int64_t index);
  void reject();
  bool step();  // false when the step scheduled nothing
  void collect_scheduled();
  StepWork account(double start);
  void sample_and_update(double now);
  void record_finished(const Tracked& t);
  void report_progress(bool force);
  SimulateResult result();

  const Trace& trace_;
  const SimulateOptions& options_;
  const int64_t count_;
  const int32_t id_width_;
  const int64_t progress_step_;
  KVCacheManager manager_;
  Scheduler scheduler_;
  RequestOptions request_options_;

  std::vector<Tracked> tracked_;
  double clock_ = 0.0;
  int64_t next_ = 0;  // the next trace request to arrive
  int64_t done_ = 0;  // finished or rejected
  int64_t reported_ = -1;
  SimulateResult r_;
  std::vector<double> queue_, ttft_, tpot_, e2e_;

  // Buffers reused across steps.
  SchedulerOutput out_;
  std::vector<Scheduled> scheduled_;
  std::vector<std::vector<TokenId>> sampled_;
  std::vector<RequestOutput> results_;
  std::vector<TokenId> prompt_;
};

KVCacheConfig cache_config(const SimulateOptions& o, int32_t max_model_len) {
  KVCacheConfig config = KVCacheConfig::single_group(o.num_pages, o.page_size, max_model_len);
  config.hash_algorithm = o.hash_algorithm;
  return config;
}

SchedulerConfig scheduler_config(const SimulateOptions& o, int32_t max_model_len) {
  SchedulerConfig config;
  config.max_num_seqs = o.max_num_seqs;
  config.max_num_batched_tokens = o.max_num_batched_tokens;
  config.max_model_len = max_model_len;
  config.policy = o.policy;
  return config;
}

Simulation::Simulation(const Trace& trace, const SimulateOptions& options, int32_t max_model_len)
    : trace_(trace),
      options_(options),
      count_(simulate_count(trace, options.max_requests)),
      id_width_(id_width(count_)),
      progress_step_(std::max<int64_t>(1, count_ / 200)),
      manager_(cache_config(options, max_model_len)),
      scheduler_(scheduler_config(options, max_model_len), manager_),
      tracked_(static_cast<size_t>(count_)) {
  request_options_.hash_algorithm = options.hash_algorithm;
  r_.num_pages = options.num_pages;
  r_.page_size = options.page_size;
  r_.max_num_seqs = options.max_num_seqs;
  r_.max_num_batched_tokens = options.max_num_batched_tokens;
  r_.max_model_len = max_model_len;
  r_.policy = options.policy;
  r_.cost = options.cost;
  r_.requests = count_;
}

SimulateResult Simulation::run() {
  int32_t empty_steps = 0;
  while (next_ < count_ || scheduler_.has_unfinished_requests()) {
    add_arrivals();
    if (!scheduler_.has_unfinished_requests()) {  // idle: jump to the next arrival
      if (next_ < count_) clock_ = std::max(clock_, trace_.requests[next_].timestamp);
      continue;
    }
    if (step()) {
      empty_steps = 0;
    } else {
      // Only a step whose running requests all preempted themselves schedules nothing; the
      // next one admits the head of `waiting` into the then empty pool.
      empty_steps += 1;
      PAGEDKV_ASSERT(empty_steps < 2,
                     "the simulation stalled at {} s: {} running, {} waiting, nothing scheduled",
                     clock_, scheduler_.num_running(), scheduler_.num_waiting());
    }
    report_progress(false);
  }
  report_progress(true);
  return result();
}

void Simulation::add_arrivals() {
  while (next_ < count_ && trace_.requests[static_cast<size_t>(next_)].timestamp <= clock_) {
    add(next_++);
  }
}

void Simulation::add(int64_t index) {
  const TraceRequest& tr = trace_.requests[static_cast<size_t>(index)];
  Tracked& t = tracked_[static_cast<size_t>(index)];
  t.arrival = tr.timestamp;
  t.prompt_tokens = tr.input_length;
  t.output_target = output_length(tr, options_.default_output_tokens);
  // Rule 45: a prompt must be shorter than max_model_len (add_request would refuse it).
  if (tr.input_length >= r_.max_model_len) return reject();
  synthesize_prompt(tr, trace_.block_size, prompt_);
  Request request(fmt::format("r{:0{}}", index, id_width_), std::move(prompt_), request_options_);
  prompt_ = {};
  SamplingParams params;
  params.max_tokens = t.output_target;
  params.ignore_eos = true;
  try {
    scheduler_.add_request(std::move(request), params, kSimulatedEos, /*priority=*/0, t.arrival);
  } catch (const CapacityError&) {  // rule 29: more pages than the pool has
    return reject();
  }
  r_.prompt_tokens += tr.input_length;
}

void Simulation::reject() {
  r_.rejected += 1;
  done_ += 1;
}

bool Simulation::step() {
  scheduler_.schedule(out_);
  r_.peak_kv_usage = std::max(r_.peak_kv_usage, manager_.usage());
  r_.peak_running = std::max(r_.peak_running, scheduler_.num_running());
  r_.peak_waiting = std::max(r_.peak_waiting, scheduler_.num_waiting());
  if (out_.total_num_scheduled_tokens == 0) {
    // Nothing to run, but update_from_output still closes the step.
    scheduler_.update_from_output(out_, std::span<const std::vector<TokenId>>(), results_);
    return false;
  }
  const double start = clock_;
  collect_scheduled();
  const StepWork work = account(start);
  clock_ += options_.cost.step_seconds(work);
  r_.steps += 1;
  r_.prefill_tokens += work.prefill_tokens;
  sample_and_update(clock_);
  if (options_.verify) scheduler_.verify();
  return true;
}

// The scheduled requests in output order with their computed tokens before the step: new and
// cached requests each keep output order, so output entry i is the next of one of the two.
void Simulation::collect_scheduled() {
  const auto& news = out_.scheduled_new_reqs;
  const auto& cached = out_.scheduled_cached_reqs;
  scheduled_.clear();
  size_t next_new = 0, next_cached = 0;
  for (const auto& [id, n] : out_.num_scheduled_tokens) {
    int32_t computed = 0;
    if (next_new < news.size() && news[next_new].request_id == id) {
      computed = news[next_new++].num_computed_tokens;
    } else {
      PAGEDKV_ASSERT(
          next_cached < cached.request_ids.size() && cached.request_ids[next_cached] == id,
          "scheduled request '{}' is in neither list of the output", id);
      computed = cached.num_computed_tokens[next_cached++];
    }
    scheduled_.push_back({.index = trace_index(id), .num_computed = computed, .num_tokens = n});
  }
}

// Prices the step and records first admissions and recomputed tokens.
StepWork Simulation::account(double start) {
  StepWork work;
  for (const Scheduled& s : scheduled_) {
    Tracked& t = tracked_[static_cast<size_t>(s.index)];
    if (t.admitted < 0.0) t.admitted = start;
    const int32_t end = s.num_computed + s.num_tokens;
    const bool decode = s.num_tokens == 1 && t.outputs > 0 && end == t.prompt_tokens + t.outputs;
    if (decode) {
      work.decode_requests += 1;
    } else {
      work.prefill_tokens += s.num_tokens;
    }
    work.kv_tokens += end;
    r_.recomputed_tokens += std::max(0, std::min(end, t.computed_high) - s.num_computed);
    t.computed_high = std::max(t.computed_high, end);
  }
  return work;
}

// Every request that completed its tokens gets its next synthesised token, dated `now`.
void Simulation::sample_and_update(double now) {
  sampled_.resize(scheduled_.size());
  for (size_t i = 0; i < scheduled_.size(); ++i) {
    const Scheduled& s = scheduled_[i];
    const Tracked& t = tracked_[static_cast<size_t>(s.index)];
    sampled_[i].clear();
    if (s.num_computed + s.num_tokens >= t.prompt_tokens + t.outputs) {
      sampled_[i].push_back(simulated_output_token(s.index, t.outputs));
    }
  }
  scheduler_.update_from_output(out_, sampled_, results_);
  for (const RequestOutput& out : results_) {
    Tracked& t = tracked_[static_cast<size_t>(trace_index(out.request_id))];
    t.outputs += 1;
    if (t.first_token < 0.0) t.first_token = now;
    t.last_token = now;
    r_.output_tokens += 1;
    if (out.finished) record_finished(t);
  }
}

void Simulation::record_finished(const Tracked& t) {
  r_.finished += 1;
  done_ += 1;
  if (t.outputs < t.output_target) r_.truncated += 1;
  queue_.push_back(t.admitted - t.arrival);
  ttft_.push_back(t.first_token - t.arrival);
  e2e_.push_back(t.last_token - t.arrival);
  if (t.outputs >= 2) {
    tpot_.push_back((t.last_token - t.first_token) / static_cast<double>(t.outputs - 1));
  }
}

void Simulation::report_progress(bool force) {
  if (!options_.progress) return;
  if (force || done_ - reported_ >= progress_step_) {
    options_.progress(done_, count_);
    reported_ = done_;
  }
}

SimulateResult Simulation::result() {
  const SchedulerStats stats = scheduler_.stats();
  r_.simulated_seconds = clock_;
  r_.preemptions = stats.num_preemptions;
  r_.prefix_query_tokens = stats.prefix_cache.queries();
  r_.prefix_hit_tokens = stats.prefix_cache.hits();
  r_.resumed_query_tokens = stats.prefix_cache.resumed_queries();
  r_.resumed_hit_tokens = stats.prefix_cache.resumed_hits();
  r_.free_pages_at_end = manager_.page_pool().get_num_free_pages();
  r_.queue = latency_percentiles(queue_);
  r_.ttft = latency_percentiles(ttft_);
  r_.tpot = latency_percentiles(tpot_);
  r_.e2e = latency_percentiles(e2e_);
  return r_;
}

double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace

double SimulateResult::prefix_hit_rate() const {
  return ratio(prefix_hit_tokens, prefix_query_tokens);
}
double SimulateResult::resumed_hit_rate() const {
  return ratio(resumed_hit_tokens, resumed_query_tokens);
}

void SimulateOptions::validate() const {
  PAGEDKV_CHECK_ARG(page_size >= 1, "page_size must be >= 1, got {}", page_size);
  PAGEDKV_CHECK_ARG(num_pages >= 2, "num_pages must be >= 2 (the null page + 1 usable), got {}",
                    num_pages);
  PAGEDKV_CHECK_ARG(max_num_seqs >= 1, "max_num_seqs must be >= 1, got {}", max_num_seqs);
  PAGEDKV_CHECK_ARG(max_num_batched_tokens >= max_num_seqs,
                    "max_num_batched_tokens ({}) must be >= max_num_seqs ({})",
                    max_num_batched_tokens, max_num_seqs);
  PAGEDKV_CHECK_ARG(max_model_len >= 0 && max_model_len <= KVCacheConfig::kMaxModelLen,
                    "max_model_len must be in [0, {}] (0 = from the trace), got {}",
                    KVCacheConfig::kMaxModelLen, max_model_len);
  PAGEDKV_CHECK_ARG(default_output_tokens >= 1, "default_output_tokens must be >= 1, got {}",
                    default_output_tokens);
  PAGEDKV_CHECK_ARG(max_requests >= -1, "max_requests must be >= -1 (-1 = all), got {}",
                    max_requests);
  cost.validate();
}

int32_t simulate_max_model_len(const Trace& trace, const SimulateOptions& options) {
  if (options.max_model_len > 0) return options.max_model_len;
  int64_t longest = 2;
  const int64_t count = simulate_count(trace, options.max_requests);
  for (int64_t i = 0; i < count; ++i) {
    const TraceRequest& r = trace.requests[static_cast<size_t>(i)];
    longest = std::max<int64_t>(
        longest, int64_t{r.input_length} + output_length(r, options.default_output_tokens));
  }
  return static_cast<int32_t>(std::min<int64_t>(longest, KVCacheConfig::kMaxModelLen));
}

TokenId simulated_output_token(int64_t request_index, int32_t position) {
  const uint64_t key = static_cast<uint64_t>(request_index) * 0x9E3779B97F4A7C15ull ^ kOutputKeyTag;
  return synthetic_token(key, position);
}

LatencyPercentiles latency_percentiles(std::vector<double>& samples) {
  LatencyPercentiles p;
  p.count = static_cast<int64_t>(samples.size());
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  p.p50 = percentile(samples, 0.50);
  p.p90 = percentile(samples, 0.90);
  p.p99 = percentile(samples, 0.99);
  return p;
}

SimulateResult simulate(const Trace& trace, const SimulateOptions& options) {
  options.validate();
  trace.validate();
  const auto start = std::chrono::steady_clock::now();
  Simulation simulation(trace, options, simulate_max_model_len(trace, options));
  SimulateResult r = simulation.run();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::string simulate_result_json(const SimulateResult& r) {
  nlohmann::ordered_json j;
  j["num_pages"] = r.num_pages;
  j["page_size"] = r.page_size;
  j["capacity_tokens"] = static_cast<int64_t>(r.num_pages - 1) * r.page_size;
  j["max_num_seqs"] = r.max_num_seqs;
  j["max_num_batched_tokens"] = r.max_num_batched_tokens;
  j["max_model_len"] = r.max_model_len;
  j["policy"] = std::string(scheduling_policy_name(r.policy));
  j["requests"] = r.requests;
  j["finished"] = r.finished;
  j["rejected"] = r.rejected;
  j["truncated"] = r.truncated;
  j["steps"] = r.steps;
  j["simulated_seconds"] = r.simulated_seconds;
  j["prompt_tokens"] = r.prompt_tokens;
  j["prefill_tokens"] = r.prefill_tokens;
  j["output_tokens"] = r.output_tokens;
  j["recomputed_tokens"] = r.recomputed_tokens;
  j["preemptions"] = r.preemptions;
  j["prefix_query_tokens"] = r.prefix_query_tokens;
  j["prefix_hit_tokens"] = r.prefix_hit_tokens;
  j["prefix_hit_rate"] = r.prefix_hit_rate();
  j["resumed_query_tokens"] = r.resumed_query_tokens;
  j["resumed_hit_tokens"] = r.resumed_hit_tokens;
  j["resumed_hit_rate"] = r.resumed_hit_rate();
  j["peak_kv_usage"] = r.peak_kv_usage;
  j["peak_running"] = r.peak_running;
  j["peak_waiting"] = r.peak_waiting;
  const std::pair<const char*, const LatencyPercentiles*> latencies[] = {
      {"queue", &r.queue}, {"ttft", &r.ttft}, {"tpot", &r.tpot}, {"e2e", &r.e2e}};
  for (const auto& [name, p] : latencies) {
    j[fmt::format("{}_p50", name)] = p->p50;
    j[fmt::format("{}_p90", name)] = p->p90;
    j[fmt::format("{}_p99", name)] = p->p99;
  }
  j["cost_step_ms"] = r.cost.step_ms;
  j["cost_prefill_ms_per_1k_tokens"] = r.cost.prefill_ms_per_1k_tokens;
  j["cost_decode_ms_per_request"] = r.cost.decode_ms_per_request;
  j["cost_kv_ms_per_1k_tokens"] = r.cost.kv_ms_per_1k_tokens;
  j["seconds"] = r.seconds;
  return j.dump();
}

}  // namespace pagedkv
