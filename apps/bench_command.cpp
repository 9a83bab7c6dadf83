// `pagedkv bench`: an offline throughput run of the engine (pagedkv::run_engine_bench) on the
// built-in workload or a trace, as a table or JSON.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/replay/engine_bench.h"

namespace pagedkv::cli {

namespace {

constexpr const char* kBenchFooter =
    R"(Every request is queued at once and the engine steps until all have finished (greedy,
EOS ignored). Built-in workload: --num-requests prompts of --prompt-len tokens sharing their
first --shared-prefix-len tokens, each generating --output-len tokens. With --trace, the
trace's prompts (synthesised tokens folded into the vocabulary) and output lengths, clipped to
max_model_len; --num-requests limits how many are taken.

TTFT: first token - arrival (arrival = when the run queued it); TPOT: (last - first token) /
(outputs - 1). The step split is the share of step time in each engine phase.)";

std::string triple_ms(const LatencyPercentiles& p) {
  return fmt::format("{:.1f} / {:.1f} / {:.1f}", p.p50 * 1e3, p.p90 * 1e3, p.p99 * 1e3);
}

nlohmann::json percentiles_json(const LatencyPercentiles& p) {
  return {{"count", p.count}, {"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}};
}

void print_bench_json(const EngineConfig& c, const EngineBenchResult& r) {
  nlohmann::json j = {{"model", c.model},
                      {"kv_cache_dtype", dtype_name(c.kv_cache_dtype)},
                      {"deterministic", c.deterministic},
                      {"isa", isa_name(active_isa())},
                      {"num_requests", r.num_requests},
                      {"prompt_tokens", r.prompt_tokens},
                      {"output_tokens", r.output_tokens},
                      {"seconds", r.seconds},
                      {"output_tokens_per_second", r.output_tokens_per_second},
                      {"total_tokens_per_second", r.total_tokens_per_second},
                      {"ttft_seconds", percentiles_json(r.ttft)},
                      {"tpot_seconds", percentiles_json(r.tpot)},
                      {"prefix_hit_rate", r.prefix_hit_rate},
                      {"preemptions", r.preemptions},
                      {"steps", r.steps},
                      {"step_split",
                       {{"schedule", r.schedule_share},
                        {"build_inputs", r.build_share},
                        {"forward", r.forward_share},
                        {"sample", r.sample_share},
                        {"update", r.update_share}}},
                      {"free_pages_at_end", r.free_pages_at_end}};
  fmt::print("{}\n", j.dump(2));
}

void print_bench_table(const EngineConfig& c, const EngineBenchResult& r) {
  const std::vector<std::vector<std::string>> rows = {
      {"requests", grouped(r.num_requests)},
      {"prompt / output tokens", grouped(r.prompt_tokens) + " / " + grouped(r.output_tokens)},
      {"seconds", fmt::format("{:.2f}", r.seconds)},
      {"output tokens/s", fmt::format("{:.1f}", r.output_tokens_per_second)},
      {"total tokens/s", fmt::format("{:.1f}", r.total_tokens_per_second)},
      {"TTFT p50/p90/p99 (ms)", triple_ms(r.ttft)},
      {"TPOT p50/p90/p99 (ms)", triple_ms(r.tpot)},
      {"prefix hit rate", percent(r.prefix_hit_rate)},
      {"preemptions", grouped(r.preemptions)},
      {"steps", grouped(r.steps)},
      {"step time: schedule", percent(r.schedule_share)},
      {"step time: build inputs", percent(r.build_share)},
      {"step time: forward", percent(r.forward_share)},
      {"step time: sample", percent(r.sample_share)},
      {"step time: update", percent(r.update_share)},
      {"KV cache", fmt::format("{} pages x {} tokens, {}", grouped(r.free_pages_at_end + 1),
                               c.page_size, dtype_name(c.kv_cache_dtype))},
      {"mode", fmt::format("{} (isa {})", c.deterministic ? "deterministic" : "fast",
                           isa_name(active_isa()))}};
  print_table({"metric", "value"}, rows, /*left_align_first=*/true);
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchArgs& a) {
  CLI::App* cmd = app.add_subcommand("bench", "Offline throughput of the engine on a workload.");
  cmd->footer(kBenchFooter);
  add_engine_options(*cmd, a.engine);
  add_trace_options(*cmd, a.trace);
  cmd->add_option("--num-requests", a.num_requests,
                  "Requests (built-in workload; with --trace: at most this many, 0 = all)")
      ->capture_default_str();
  cmd->add_option("--prompt-len", a.prompt_len, "Built-in prompt length")->capture_default_str();
  cmd->add_option("--shared-prefix-len", a.shared_prefix_len, "Built-in shared prefix length")
      ->capture_default_str();
  cmd->add_option("--output-len", a.output_len,
                  "Output tokens (built-in; with --trace, where the trace has none)")
      ->capture_default_str();
  cmd->add_option("--seed", a.seed, "Built-in workload seed")->capture_default_str();
  cmd->add_flag("--json", a.json, "Print one JSON object");
  cmd->add_flag("--progress", a.progress, "Show a progress bar on stderr");
  return cmd;
}

int run_bench(const BenchArgs& a) {
  const EngineConfig config = engine_config(a.engine);
  LLMEngine engine(config);
  const int32_t vocab = engine.model_config().vocab_size;
  std::vector<BenchRequest> work;
  if (a.trace.builtin()) {
    BuiltinBenchOptions o;
    o.num_requests = a.num_requests;
    o.prompt_len = a.prompt_len;
    o.shared_prefix_len = a.shared_prefix_len;
    o.output_len = a.output_len;
    o.seed = a.seed;
    work = builtin_bench_workload(o, vocab, engine.max_model_len());
  } else {
    work = trace_bench_workload(load_trace_args(a.trace), vocab, engine.max_model_len(),
                                a.output_len, a.num_requests > 0 ? a.num_requests : -1);
  }
  std::unique_ptr<ProgressBar> bar;
  if (a.progress) bar = std::make_unique<ProgressBar>("requests");
  const EngineBenchResult r = run_engine_bench(engine, work, [&](int64_t done, int64_t total) {
    if (bar) bar->update(done, total);
  });
  bar.reset();
  if (a.json) {
    print_bench_json(config, r);
  } else {
    print_bench_table(config, r);
  }
  return 0;
}

}  // namespace pagedkv::cli
