#include "pagedkv/engine/llm_engine.h"

#include <omp.h>

#include <algorithm>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Adds the seconds since `t0` to `acc` and restarts `t0`.
void lap(std::chrono::steady_clock::time_point& t0, double& acc) {
  const auto t1 = std::chrono::steady_clock::now();
  acc += std::chrono::duration<double>(t1 - t0).count();
  t0 = t1;
}

std::vector<TokenLogprob> logprob_entry(const SampledToken& s) {
  std::vector<TokenLogprob> entry = s.top;
  const bool listed = std::any_of(entry.begin(), entry.end(),
                                  [&](const TokenLogprob& t) { return t.token == s.token; });
  if (!listed) entry.push_back({s.token, s.logprob});
  return entry;
}

}  // namespace

struct LLMEngine::Live {
  std::vector<TokenId> prompt;
  std::vector<TokenId> outputs;
  std::vector<std::vector<TokenLogprob>> logprobs;
  SamplingParams params;
  uint64_t key = 0;
  RequestMetrics metrics;
};

void EngineConfig::validate() const {
  PAGEDKV_CHECK_ARG(!model.empty(), "model (a model directory) must be set");
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  PAGEDKV_CHECK_ARG(max_num_seqs > 0, "max_num_seqs must be > 0, got {}", max_num_seqs);
  PAGEDKV_CHECK_ARG(max_num_batched_tokens > 0, "max_num_batched_tokens must be > 0, got {}",
                    max_num_batched_tokens);
  PAGEDKV_CHECK_ARG(!(num_pages && kv_cache_bytes),
                    "set at most one of num_pages ({}) and kv_cache_bytes ({})", *num_pages,
                    *kv_cache_bytes);
  PAGEDKV_CHECK_ARG(!num_pages || *num_pages >= 2, "num_pages must be >= 2, got {}",
                    num_pages.value_or(0));
  PAGEDKV_CHECK_ARG(!kv_cache_bytes || *kv_cache_bytes > 0, "kv_cache_bytes must be > 0, got {}",
                    kv_cache_bytes.value_or(0));
  PAGEDKV_CHECK_ARG(!max_model_len || *max_model_len > 0, "max_model_len must be > 0, got {}",
                    max_model_len.value_or(0));
  PAGEDKV_CHECK_ARG(num_threads >= 0, "num_threads must be >= 0, got {}", num_threads);
}

LLMEngine::LLMEngine(EngineConfig config)
    : config_(std::move(config)), start_(std::chrono::steady_clock::now()) {
  config_.validate();
  if (config_.num_threads > 0) omp_set_num_threads(config_.num_threads);
  weights_ = std::make_unique<ModelWeights>(ModelWeights::load(config_.model));
  const ModelConfig& mc = weights_->config();
  model_ = std::make_unique<LlamaModel>(
      *weights_, config_.deterministic ? MatmulMode::kDeterministic : MatmulMode::kFast);
  std::optional<TokenId> bos, eos;
  if (mc.bos_token_id >= 0) bos = static_cast<TokenId>(mc.bos_token_id);
  if (!mc.eos_token_id.empty()) eos = static_cast<TokenId>(mc.eos_token_id.front());
  tokenizer_ = load_tokenizer(config_.model, mc.vocab_size, bos, eos);

  max_model_len_ = config_.max_model_len.value_or(static_cast<int32_t>(
      std::min<int64_t>(mc.max_position_embeddings, EngineConfig::kDefaultMaxModelLen)));
  if (config_.num_pages) {
    num_pages_ = *config_.num_pages;
  } else {
    const int64_t budget = config_.kv_cache_bytes.value_or(EngineConfig::kDefaultKvCacheBytes);
    const int64_t per_page = model_->kv_bytes_per_page(config_.page_size, config_.kv_cache_dtype);
    num_pages_ = budget / per_page;
    if (num_pages_ < 2) {
      throw CapacityError(fmt::format(
          "kv_cache_bytes {} holds {} pages of {} bytes (page_size {}, {} layers); need >= 2",
          budget, num_pages_, per_page, config_.page_size, mc.num_hidden_layers));
    }
  }
  PAGEDKV_CHECK_ARG(num_pages_ <= INT32_MAX, "num_pages {} exceeds {}", num_pages_, INT32_MAX);
  cache_ = std::make_unique<PagedKVCache>(model_->kv_cache_metadata(
      num_pages_, config_.page_size, config_.kv_cache_dtype, max_model_len_));
  manager_ = std::make_unique<KVCacheManager>(static_cast<int32_t>(num_pages_), config_.page_size,
                                              max_model_len_, config_.enable_prefix_caching);
  SchedulerConfig sc;
  sc.max_num_seqs = config_.max_num_seqs;
  sc.max_num_batched_tokens = config_.max_num_batched_tokens;
  sc.max_model_len = max_model_len_;
  sc.enable_chunked_prefill = config_.enable_chunked_prefill;
  sc.policy = config_.policy;
  scheduler_ = std::make_unique<Scheduler>(sc, *manager_);
  ModelInputBuilderConfig bc;
  bc.max_num_reqs = config_.max_num_seqs;
  bc.max_model_len = max_model_len_;
  bc.max_num_batched_tokens = config_.max_num_batched_tokens;
  bc.page_sizes = {config_.page_size};
  builder_ = std::make_unique<ModelInputBuilder>(bc);
}

LLMEngine::~LLMEngine() = default;

int64_t LLMEngine::num_free_pages() const { return manager_->page_pool().get_num_free_pages(); }

double LLMEngine::now() const { return seconds_since(start_); }

void LLMEngine::check_new_request(const std::string& id, std::span<const TokenId> prompt,
                                  const SamplingParams& params) const {
  PAGEDKV_CHECK_ARG(!live_.contains(id), "request id '{}' is already live", id);
  const int32_t vocab = model_->vocab_size();
  for (size_t i = 0; i < prompt.size(); ++i) {
    PAGEDKV_CHECK_ARG(prompt[i] >= 0 && prompt[i] < vocab,
                      "request '{}': prompt token {} at index {} is outside [0, vocab_size {})", id,
                      prompt[i], i, vocab);
  }
  for (TokenId t : params.stop_token_ids) {
    PAGEDKV_CHECK_ARG(t >= 0 && t < vocab,
                      "request '{}': stop token {} is outside [0, vocab_size {})", id, t, vocab);
  }
}

void LLMEngine::add_request(const std::string& request_id, std::vector<TokenId> prompt,
                            const SamplingParams& params, int32_t priority,
                            const std::string& cache_salt) {
  check_new_request(request_id, prompt, params);
  auto live = std::make_unique<Live>();
  live->prompt = prompt;
  live->params = params;
  live->key = request_sampling_key(request_id, params.seed);
  live->metrics.arrival_time = now();
  live->outputs.reserve(static_cast<size_t>(std::max(params.max_tokens, 0)));
  std::optional<TokenId> eos = tokenizer_->eos_token_id();
  // The scheduler validates the rest (params, lengths, capacity) and changes nothing on error.
  RequestOptions options;
  options.cache_salt = cache_salt;
  scheduler_->add_request(Request(request_id, std::move(prompt), std::move(options)), params, eos,
                          priority);
  live_.emplace(request_id, std::move(live));
}

void LLMEngine::add_request_text(const std::string& request_id, std::string_view prompt,
                                 const SamplingParams& params, int32_t priority,
                                 const std::string& cache_salt) {
  add_request(request_id, tokenizer_->encode(prompt), params, priority, cache_salt);
}

bool LLMEngine::abort_request(const std::string& request_id) {
  if (!scheduler_->abort_request(request_id)) return false;
  live_.erase(request_id);
  return true;
}

void LLMEngine::sample_rows(const ModelInput& input) {
  const size_t rows = input.logits_indices.size();
  contexts_.resize(rows);
  sampled_.resize(rows);
  sampled_ids_.resize(rows);
  for (size_t i = 0; i < rows; ++i) {
    const std::string& id = input.request_ids[static_cast<size_t>(input.logits_request_index[i])];
    const Live& live = *live_.at(id);
    SamplingContext& c = contexts_[i];
    c.params = &live.params;
    c.request_key = live.key;
    c.output_index = static_cast<int32_t>(live.outputs.size());
    c.num_output_tokens = c.output_index;
    c.eos_token_id = tokenizer_->eos_token_id();
  }
  sampler_.sample_batch(logits_.data(), static_cast<int32_t>(rows), model_->vocab_size(), contexts_,
                        sampled_);
  for (size_t i = 0; i < rows; ++i) sampled_ids_[i] = sampled_[i].token;
}

std::vector<GenerationOutput> LLMEngine::step() {
  std::vector<GenerationOutput> outputs;
  auto t0 = std::chrono::steady_clock::now();
  scheduler_->schedule(schedule_out_);
  lap(t0, totals_.schedule_seconds);
  ++totals_.num_steps;
  for (const NewRequestData& n : schedule_out_.scheduled_new_reqs) {
    auto it = live_.find(n.request_id);
    if (it != live_.end()) it->second->metrics.num_cached_prompt_tokens = n.num_computed_tokens;
  }
  if (schedule_out_.total_num_scheduled_tokens == 0) {
    // Nothing to run (everything waits, or only finished ids to report).
    builder_->build(schedule_out_);
    split_.clear();
    scheduler_->update_from_output(schedule_out_, split_, results_);
    builder_->update_from_sampled(schedule_out_, split_);
    return outputs;
  }
  const ModelInput& input = builder_->build(schedule_out_);
  lap(t0, totals_.build_seconds);

  ForwardBatch batch{input.token_ids, input.positions, input.attention_batch(0), input.slot_mapping,
                     input.logits_indices};
  logits_.resize(input.logits_indices.size() * static_cast<size_t>(model_->vocab_size()));
  model_->forward(batch, *cache_, logits_);
  lap(t0, totals_.forward_seconds);

  sample_rows(input);
  split_sampled_tokens(input, sampled_ids_, split_);
  lap(t0, totals_.sample_seconds);

  scheduler_->update_from_output(schedule_out_, split_, results_);
  builder_->update_from_sampled(schedule_out_, split_);
  totals_.num_computed_tokens += schedule_out_.total_num_scheduled_tokens;
  apply_results(input, outputs);
  lap(t0, totals_.update_seconds);
  return outputs;
}

void LLMEngine::apply_results(const ModelInput& input, std::vector<GenerationOutput>& outputs) {
  // The sampled row of each batch entry (results_ name requests, in batch order).
  const double t = now();
  size_t row = 0;
  for (const RequestOutput& r : results_) {
    while (row < input.logits_indices.size() &&
           input.request_ids[static_cast<size_t>(input.logits_request_index[row])] !=
               r.request_id) {
      ++row;
    }
    PAGEDKV_ASSERT(row < input.logits_indices.size(), "no sampled row for request '{}'",
                   r.request_id);
    auto it = live_.find(r.request_id);
    if (it == live_.end()) continue;  // aborted meanwhile
    Live& live = *it->second;
    const SampledToken& s = sampled_[row];
    live.outputs.push_back(s.token);
    if (live.params.logprobs) live.logprobs.push_back(logprob_entry(s));
    if (live.metrics.first_token_time < 0) live.metrics.first_token_time = t;
    live.metrics.last_token_time = t;
    ++totals_.num_generated_tokens;

    GenerationOutput& out = outputs.emplace_back();
    out.request_id = r.request_id;
    out.new_token_ids = r.new_token_ids;
    out.finished = r.finished;
    out.finish_reason = r.finish_reason;
    out.stop_reason = r.stop_reason;
    out.metrics = live.metrics;
    if (r.finished) {
      out.prompt_token_ids = std::move(live.prompt);
      out.output_token_ids = std::move(live.outputs);
      out.logprobs = std::move(live.logprobs);
      live_.erase(it);
    } else {
      out.prompt_token_ids = live.prompt;
      out.output_token_ids = live.outputs;
      out.logprobs = live.logprobs;
    }
  }
}

std::vector<GenerationOutput> LLMEngine::generate(const std::vector<std::vector<TokenId>>& prompts,
                                                  const SamplingParams& params) {
  std::vector<SamplingParams> all(prompts.size(), params);
  return generate(prompts, all);
}

std::vector<GenerationOutput> LLMEngine::generate(const std::vector<std::vector<TokenId>>& prompts,
                                                  std::span<const SamplingParams> params) {
  PAGEDKV_CHECK_ARG(params.size() == prompts.size(), "{} sampling params for {} prompts",
                    params.size(), prompts.size());
  const std::string prefix = fmt::format("generate-{}-", generate_calls_++);
  std::vector<std::string> ids;
  ids.reserve(prompts.size());
  try {
    for (size_t i = 0; i < prompts.size(); ++i) {
      ids.push_back(prefix + std::to_string(i));
      add_request(ids.back(), prompts[i], params[i]);
    }
  } catch (...) {
    for (size_t i = 0; i + 1 < ids.size(); ++i) abort_request(ids[i]);
    throw;
  }
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < ids.size(); ++i) index.emplace(ids[i], i);
  std::vector<GenerationOutput> results(prompts.size());
  size_t done = 0;
  while (done < prompts.size()) {
    for (GenerationOutput& out : step()) {
      auto it = index.find(out.request_id);
      if (it == index.end() || !out.finished) continue;
      results[it->second] = std::move(out);
      ++done;
    }
  }
  return results;
}

EngineStats LLMEngine::stats() const {
  EngineStats s = totals_;
  const SchedulerStats ss = scheduler_->stats();
  s.num_preemptions = ss.num_preemptions;
  s.num_running = ss.num_running;
  s.num_waiting = ss.num_waiting;
  s.kv_cache_usage = ss.kv_cache_usage;
  s.prefix_cache_queries = ss.prefix_cache.queries();
  s.prefix_cache_hits = ss.prefix_cache.hits();
  return s;
}

void LLMEngine::verify() const {
  scheduler_->verify();
  builder_->verify();
  cache_->verify();
  PAGEDKV_ASSERT(static_cast<int64_t>(live_.size()) ==
                     int64_t{scheduler_->num_running()} + scheduler_->num_waiting(),
                 "the engine tracks {} requests, the scheduler {} running + {} waiting",
                 live_.size(), scheduler_->num_running(), scheduler_->num_waiting());
  if (!scheduler_->has_unfinished_requests()) {
    const int64_t free_pages = num_free_pages();
    PAGEDKV_ASSERT(free_pages == num_pages_ - 1,
                   "idle engine: {} free pages, expected every page but the null page ({})",
                   free_pages, num_pages_ - 1);
  }
}

}  // namespace pagedkv
