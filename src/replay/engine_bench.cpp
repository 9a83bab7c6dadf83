#include "pagedkv/replay/engine_bench.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

// Token ids of the built-in workload: block keys of the trace generator, so the same seed gives
// the same prompts on every machine.
void fill_tokens(uint64_t key, int32_t count, int32_t vocab, TokenId* out) {
  synthesize_block(key, count, out);
  for (int32_t i = 0; i < count; ++i) out[i] %= vocab;
}

}  // namespace

std::vector<BenchRequest> builtin_bench_workload(const BuiltinBenchOptions& o, int32_t vocab_size,
                                                 int32_t max_model_len) {
  PAGEDKV_CHECK_ARG(o.num_requests > 0, "num_requests must be > 0, got {}", o.num_requests);
  PAGEDKV_CHECK_ARG(o.prompt_len > 0, "prompt_len must be > 0, got {}", o.prompt_len);
  PAGEDKV_CHECK_ARG(o.output_len > 0, "output_len must be > 0, got {}", o.output_len);
  PAGEDKV_CHECK_ARG(o.shared_prefix_len >= 0 && o.shared_prefix_len <= o.prompt_len,
                    "shared_prefix_len must be in [0, prompt_len {}], got {}", o.prompt_len,
                    o.shared_prefix_len);
  PAGEDKV_CHECK_ARG(int64_t{o.prompt_len} + o.output_len <= max_model_len,
                    "prompt_len {} + output_len {} exceeds max_model_len {}", o.prompt_len,
                    o.output_len, max_model_len);
  PAGEDKV_CHECK_ARG(vocab_size > 0, "vocab_size must be > 0, got {}", vocab_size);
  std::vector<BenchRequest> requests(static_cast<size_t>(o.num_requests));
  for (int32_t i = 0; i < o.num_requests; ++i) {
    BenchRequest& r = requests[static_cast<size_t>(i)];
    r.prompt.resize(static_cast<size_t>(o.prompt_len));
    fill_tokens(o.seed * 2654435761u, o.shared_prefix_len, vocab_size, r.prompt.data());
    fill_tokens(o.seed * 2654435761u + 1 + static_cast<uint64_t>(i),
                o.prompt_len - o.shared_prefix_len, vocab_size,
                r.prompt.data() + o.shared_prefix_len);
    r.max_tokens = o.output_len;
  }
  return requests;
}

std::vector<BenchRequest> trace_bench_workload(const Trace& trace, int32_t vocab_size,
                                               int32_t max_model_len, int32_t default_output_len,
                                               int64_t limit) {
  PAGEDKV_CHECK_ARG(max_model_len >= 2, "max_model_len must be >= 2, got {}", max_model_len);
  PAGEDKV_CHECK_ARG(default_output_len > 0, "default_output_len must be > 0, got {}",
                    default_output_len);
  const size_t n = limit < 0 ? trace.requests.size()
                             : std::min(trace.requests.size(), static_cast<size_t>(limit));
  std::vector<BenchRequest> requests(n);
  std::vector<TokenId> prompt;
  for (size_t i = 0; i < n; ++i) {
    const TraceRequest& t = trace.requests[i];
    synthesize_prompt(t, trace.block_size, prompt);
    const int32_t want_out = t.output_length > 0 ? t.output_length : default_output_len;
    // Keep at least one output token and the prompt's head (its shared prefix).
    const int32_t prompt_len =
        std::min<int32_t>(static_cast<int32_t>(prompt.size()), max_model_len - 1);
    BenchRequest& r = requests[i];
    r.prompt.assign(prompt.begin(), prompt.begin() + prompt_len);
    for (TokenId& tok : r.prompt) tok %= vocab_size;
    r.max_tokens = std::min(want_out, max_model_len - prompt_len);
  }
  return requests;
}

EngineBenchResult run_engine_bench(LLMEngine& engine, const std::vector<BenchRequest>& requests,
                                   const std::function<void(int64_t, int64_t)>& progress) {
  PAGEDKV_CHECK_STATE(!engine.has_unfinished_requests(),
                      "run_engine_bench needs an idle engine; it has unfinished requests");
  const EngineStats before = engine.stats();
  EngineBenchResult r;
  r.num_requests = static_cast<int64_t>(requests.size());
  const auto t0 = std::chrono::steady_clock::now();
  const std::string prefix = fmt::format("bench-{}-", before.num_steps);
  for (size_t i = 0; i < requests.size(); ++i) {
    SamplingParams p;
    p.max_tokens = requests[i].max_tokens;
    p.ignore_eos = true;
    p.temperature = 0.0f;
    engine.add_request(prefix + std::to_string(i), requests[i].prompt, p);
    r.prompt_tokens += static_cast<int64_t>(requests[i].prompt.size());
  }
  std::vector<double> ttft, tpot;
  int64_t finished = 0;
  while (engine.has_unfinished_requests()) {
    for (const GenerationOutput& out : engine.step()) {
      if (!out.finished) continue;
      ++finished;
      const RequestMetrics& m = out.metrics;
      const auto n = static_cast<int64_t>(out.output_token_ids.size());
      r.output_tokens += n;
      ttft.push_back(m.first_token_time - m.arrival_time);
      if (n > 1) tpot.push_back((m.last_token_time - m.first_token_time) / double(n - 1));
    }
    if (progress) progress(finished, r.num_requests);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const EngineStats s = engine.stats();
  r.output_tokens_per_second = r.output_tokens / std::max(r.seconds, 1e-9);
  r.total_tokens_per_second = (r.prompt_tokens + r.output_tokens) / std::max(r.seconds, 1e-9);
  r.ttft = latency_percentiles(ttft);
  r.tpot = latency_percentiles(tpot);
  const int64_t queries = s.prefix_cache_queries - before.prefix_cache_queries;
  r.prefix_hit_rate =
      queries == 0 ? 0.0 : double(s.prefix_cache_hits - before.prefix_cache_hits) / queries;
  r.preemptions = s.num_preemptions - before.num_preemptions;
  r.steps = s.num_steps - before.num_steps;
  const double phases[] = {
      s.schedule_seconds - before.schedule_seconds, s.build_seconds - before.build_seconds,
      s.forward_seconds - before.forward_seconds, s.sample_seconds - before.sample_seconds,
      s.update_seconds - before.update_seconds};
  double total = 0;
  for (double p : phases) total += p;
  total = std::max(total, 1e-12);
  r.schedule_share = phases[0] / total;
  r.build_share = phases[1] / total;
  r.forward_share = phases[2] / total;
  r.sample_share = phases[3] / total;
  r.update_share = phases[4] / total;
  r.free_pages_at_end = engine.num_free_pages();
  return r;
}

}  // namespace pagedkv
