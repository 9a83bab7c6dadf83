// pagedkv/engine/llm_engine.h - a complete CPU inference engine: the Scheduler decides each
// step, model_io's ModelInputBuilder turns the decision into one ragged batch, the LlamaModel
// runs it over the paged KV cache, the Sampler picks each request's next token, and the results
// go back to the scheduler (vLLM's LLMEngine / EngineCore, synchronous).
//
// Example:
//   pagedkv::EngineConfig config;
//   config.model = "/tmp/tiny";                     // pagedkv make-model --preset tiny /tmp/tiny
//   config.num_pages = 512;
//   pagedkv::LLMEngine engine(config);
//   pagedkv::SamplingParams params;
//   params.max_tokens = 16;
//   params.temperature = 0.0f;                      // greedy
//   std::vector<pagedkv::GenerationOutput> outs =
//       engine.generate({{1, 2, 3}, {1, 2, 3, 4, 5}}, params);
//   // outs[i].output_token_ids: 16 tokens each (or fewer if EOS came first)
//
// One step (step()):
//   1. schedule    Scheduler::schedule() (chunked prefill, decode, preemption: rules 34-46)
//   2. build       ModelInputBuilder::build(): token ids, positions, page rows, slot mapping
//   3. forward     LlamaModel::forward(): logits at the rows that produce a token (rule 48)
//   4. sample      Sampler over those rows, keyed by (request, output index)
//   5. update      Scheduler::update_from_output() (stop checks, frees finished requests),
//                  ModelInputBuilder::update_from_sampled(), then the outputs.
// stats() times each phase.
//
// Invariants (verify()): the scheduler's and the input builder's invariants hold; every live
// request is known to the engine and the scheduler alike; with no unfinished request, every KV
// page but the null page is free (pages are conserved).
//
// Rule 49: with deterministic = true, a request's tokens and logprobs do not depend on its batch
// companions, on prefill chunking, on preemption, on prefix-cache hits or on the thread count.
// Not thread-safe: one thread drives the engine.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagedkv/engine/engine_config.h"
#include "pagedkv/engine/sampler.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/model/llama_model.h"
#include "pagedkv/model/model_weights.h"
#include "pagedkv/model/tokenizer.h"
#include "pagedkv/model_io/model_input_builder.h"
#include "pagedkv/scheduler/sampling_params.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {

// Per-request times in seconds since the engine started.
struct RequestMetrics {
  double arrival_time = 0.0;
  double first_token_time = -1.0;  // -1 until the first token
  double last_token_time = -1.0;
  int32_t num_cached_prompt_tokens = 0;  // its prefix-cache hit at admission
};

// One request's state as step() or generate() reports it (vLLM's RequestOutput).
struct GenerationOutput {
  std::string request_id;
  std::vector<TokenId> prompt_token_ids;
  std::vector<TokenId> output_token_ids;  // every token generated so far
  std::vector<TokenId> new_token_ids;     // those generated in this step
  // With params.logprobs = n: per generated token, the top-n {token, logprob} by logprob
  // (descending, ties by id), plus the sampled token when it is not among them.
  std::vector<std::vector<TokenLogprob>> logprobs;
  bool finished = false;
  std::optional<FinishReason> finish_reason;
  std::optional<TokenId> stop_reason;
  RequestMetrics metrics;
};

struct EngineStats {
  int64_t num_steps = 0;
  int64_t num_preemptions = 0;
  int64_t num_computed_tokens = 0;   // tokens run through the model (prefix hits excluded)
  int64_t num_generated_tokens = 0;  // tokens sampled
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  double kv_cache_usage = 0.0;
  int64_t prefix_cache_queries = 0;  // prompt tokens looked up (admitted requests)
  int64_t prefix_cache_hits = 0;     // of which found in the cache
  double prefix_hit_rate() const {
    return prefix_cache_queries == 0
               ? 0.0
               : static_cast<double>(prefix_cache_hits) / static_cast<double>(prefix_cache_queries);
  }
  // Seconds spent in each phase of step(), summed over all steps.
  double schedule_seconds = 0.0;
  double build_seconds = 0.0;
  double forward_seconds = 0.0;
  double sample_seconds = 0.0;
  double update_seconds = 0.0;
};

class LLMEngine {
 public:
  // Loads the model and tokenizer, sizes and maps the KV cache. Throws InvalidArgument (config),
  // FormatError (model files), CapacityError (memory).
  explicit LLMEngine(EngineConfig config);
  ~LLMEngine();
  LLMEngine(const LLMEngine&) = delete;
  LLMEngine& operator=(const LLMEngine&) = delete;

  const EngineConfig& config() const { return config_; }
  const ModelConfig& model_config() const { return model_->config(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t num_pages() const { return num_pages_; }
  int64_t num_free_pages() const;  // pages in the pool's free queue
  int32_t max_model_len() const { return max_model_len_; }

  // Queues a request. cache_salt separates tenants: requests with different salts never share
  // cached pages (rule 13). Throws (changing nothing) InvalidArgument for a live id, an empty
  // prompt, a token id outside the vocabulary, bad sampling params, a prompt of max_model_len
  // tokens or more; CapacityError for a prompt the pool can never hold.
  void add_request(const std::string& request_id, std::vector<TokenId> prompt_token_ids,
                   const SamplingParams& params, int32_t priority = 0,
                   const std::string& cache_salt = {});
  // Same, with the prompt encoded by the model's tokenizer.
  void add_request_text(const std::string& request_id, std::string_view prompt,
                        const SamplingParams& params, int32_t priority = 0,
                        const std::string& cache_salt = {});
  // Frees the request's pages at once; false for an unknown or finished id.
  bool abort_request(const std::string& request_id);
  bool has_unfinished_requests() const { return scheduler_->has_unfinished_requests(); }

  // One engine step; the requests that produced a token, in batch order.
  std::vector<GenerationOutput> step();
  // Runs the prompts to completion (ids "0", "1", ... prefixed to be unique) and returns their
  // outputs in prompt order. Requests already queued run alongside (their step outputs are
  // not returned).
  std::vector<GenerationOutput> generate(const std::vector<std::vector<TokenId>>& prompts,
                                         const SamplingParams& params);
  std::vector<GenerationOutput> generate(const std::vector<std::vector<TokenId>>& prompts,
                                         std::span<const SamplingParams> params);

  EngineStats stats() const;
  // Seconds since the engine was built (the clock of RequestMetrics).
  double now() const;
  void verify() const;

 private:
  struct Live;  // one live request
  void check_new_request(const std::string& id, std::span<const TokenId> prompt,
                         const SamplingParams& params) const;
  void sample_rows(const ModelInput& input);
  void apply_results(const ModelInput& input, std::vector<GenerationOutput>& outputs);

  EngineConfig config_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  int64_t num_pages_ = 0;
  int32_t max_model_len_ = 0;
  std::unique_ptr<PagedKVCache> cache_;
  std::unique_ptr<KVCacheManager> manager_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<ModelInputBuilder> builder_;
  Sampler sampler_;
  std::unordered_map<std::string, std::unique_ptr<Live>> live_;
  int64_t generate_calls_ = 0;
  std::chrono::steady_clock::time_point start_;
  EngineStats totals_;

  // Step buffers, reused.
  SchedulerOutput schedule_out_;
  std::vector<float> logits_;
  std::vector<SamplingContext> contexts_;
  std::vector<SampledToken> sampled_;
  std::vector<TokenId> sampled_ids_;
  std::vector<std::vector<TokenId>> split_;
  std::vector<RequestOutput> results_;
};

}  // namespace pagedkv
