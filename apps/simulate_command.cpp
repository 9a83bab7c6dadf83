// `pagedkv simulate`: one model-free serving run (pagedkv::simulate) per capacity, as a table
// (one column per capacity) or JSON.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "pagedkv/replay/simulate.h"

namespace pagedkv::cli {

namespace {

constexpr const char* kSimulateFooter =
    R"(Requests arrive at their trace timestamps and are served by the Scheduler (rules 34-46)
over a KVCacheManager; no model runs. Each step's duration comes from a linear cost model:
  step_ms + prefill_ms_per_1k_tokens * prefill tokens / 1000
          + decode_ms_per_request * decoding requests + kv_ms_per_1k_tokens * KV tokens / 1000
(KV tokens: the context of every scheduled request after the step). The defaults are
estimates for a Llama-3-8B-class model in bf16 on one H100, not measurements.
Each request generates its trace output length (--default-output-tokens where the trace
has none) of synthesised tokens; EOS is ignored.

Rows / JSON fields (docs/simulate.md; latencies in seconds, TPOT in ms in the table):
  steps              model steps (that scheduled tokens); simulated_seconds: the final clock
  prefix hit rate    cached prefix / tokens of fresh admissions (the scheduler's statistics)
  recomputed tokens  tokens computed again after a preemption
  queue              first admission - arrival;  ttft: first token - arrival
  tpot               (last token - first token) / (outputs - 1);  e2e: last token - arrival
  rejected           prompts >= max_model_len or larger than the pool; truncated: stopped
                     before their output length (max_model_len or the pool's limit)
  peak KV usage      most pages held / usable pages, after any step's scheduling

Default --num-pages: 65536,262144,1048576 with --trace; 1024,4096,16384,65536 for the
built-in workload. --max-model-len defaults to the longest prompt + output of the trace.)";

std::string triple(const LatencyPercentiles& p, double scale) {
  return fmt::format("{:.3f} / {:.3f} / {:.3f}", p.p50 * scale, p.p90 * scale, p.p99 * scale);
}

// Metrics down, capacities across: one column per run.
void print_simulate_table(const std::vector<SimulateResult>& results) {
  using Cell = std::string (*)(const SimulateResult&);
  const std::vector<std::pair<std::string, Cell>> metrics = {
      {"capacity (tokens)",
       [](const SimulateResult& r) {
         return grouped(static_cast<int64_t>(r.num_pages - 1) * r.page_size);
       }},
      {"finished", [](const SimulateResult& r) { return grouped(r.finished); }},
      {"rejected", [](const SimulateResult& r) { return grouped(r.rejected); }},
      {"truncated", [](const SimulateResult& r) { return grouped(r.truncated); }},
      {"steps", [](const SimulateResult& r) { return grouped(r.steps); }},
      {"simulated seconds",
       [](const SimulateResult& r) { return fmt::format("{:.1f}", r.simulated_seconds); }},
      {"prefix hit rate", [](const SimulateResult& r) { return percent(r.prefix_hit_rate()); }},
      {"preemptions", [](const SimulateResult& r) { return grouped(r.preemptions); }},
      {"recomputed tokens", [](const SimulateResult& r) { return grouped(r.recomputed_tokens); }},
      {"queue p50/p90/p99 (s)", [](const SimulateResult& r) { return triple(r.queue, 1.0); }},
      {"TTFT p50/p90/p99 (s)", [](const SimulateResult& r) { return triple(r.ttft, 1.0); }},
      {"TPOT p50/p90/p99 (ms)", [](const SimulateResult& r) { return triple(r.tpot, 1e3); }},
      {"e2e p50/p90/p99 (s)", [](const SimulateResult& r) { return triple(r.e2e, 1.0); }},
      {"peak KV usage", [](const SimulateResult& r) { return percent(r.peak_kv_usage); }},
      {"peak running / waiting",
       [](const SimulateResult& r) {
         return fmt::format("{} / {}", grouped(r.peak_running), grouped(r.peak_waiting));
       }},
      {"wall seconds", [](const SimulateResult& r) { return fmt::format("{:.3f}", r.seconds); }},
  };
  std::vector<std::string> head = {"num_pages"};
  for (const auto& r : results) head.push_back(grouped(r.num_pages));
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, cell] : metrics) {
    rows.push_back({name});
    for (const auto& r : results) rows.back().push_back(cell(r));
  }
  print_table(head, rows, /*left_align_first=*/true);
}

void print_simulate_summary(const Trace& trace, const SimulateArgs& a, const SimulateOptions& o) {
  const auto size = static_cast<int64_t>(trace.requests.size());
  const int64_t count = a.limit < 0 ? size : std::min<int64_t>(a.limit, size);
  int64_t prompt = 0, output = 0;
  for (int64_t i = 0; i < count; ++i) {
    const TraceRequest& r = trace.requests[static_cast<size_t>(i)];
    prompt += r.input_length;
    output += r.output_length > 0 ? r.output_length : o.default_output_tokens;
  }
  fmt::print("trace: {}{}: {} requests over {:.1f} s, {} prompt + {} output tokens\n", trace.source,
             a.trace.builtin() ? " (built in)" : "", grouped(count),
             count == 0 ? 0.0 : trace.requests[static_cast<size_t>(count - 1)].timestamp,
             grouped(prompt), grouped(output));
  fmt::print(
      "scheduler: page size {}, max_num_seqs {}, max_num_batched_tokens {}, "
      "max_model_len {}, {}, hash {}\n",
      o.page_size, o.max_num_seqs, o.max_num_batched_tokens,
      grouped(simulate_max_model_len(trace, o)), scheduling_policy_name(o.policy), a.trace.hash);
  fmt::print(
      "cost model: {} ms per step + {} ms per 1k prefill tokens + {} ms per decoding "
      "request + {} ms per 1k KV tokens\n\n",
      o.cost.step_ms, o.cost.prefill_ms_per_1k_tokens, o.cost.decode_ms_per_request,
      o.cost.kv_ms_per_1k_tokens);
}

// Validated before the trace loads, so a bad option fails fast.
SimulateOptions simulate_options(const SimulateArgs& a, int32_t num_pages) {
  SimulateOptions o;
  o.num_pages = num_pages;
  o.page_size = a.page_size;
  o.max_num_seqs = a.max_num_seqs;
  o.max_num_batched_tokens = a.max_num_batched_tokens;
  o.max_model_len = a.max_model_len;
  o.policy = parse_scheduling_policy(a.policy);
  o.default_output_tokens = a.default_output_tokens;
  o.hash_algorithm = parse_hash_algorithm(a.trace.hash);
  o.max_requests = a.limit;
  o.cost = {.step_ms = a.step_ms,
            .prefill_ms_per_1k_tokens = a.prefill_ms_per_1k_tokens,
            .decode_ms_per_request = a.decode_ms_per_request,
            .kv_ms_per_1k_tokens = a.kv_ms_per_1k_tokens};
  o.validate();
  return o;
}

// Checked by CostModel::validate, which names the coefficient.
void add_cost_options(CLI::App& cmd, SimulateArgs& args) {
  const CostModel defaults;
  args.step_ms = defaults.step_ms;
  args.prefill_ms_per_1k_tokens = defaults.prefill_ms_per_1k_tokens;
  args.decode_ms_per_request = defaults.decode_ms_per_request;
  args.kv_ms_per_1k_tokens = defaults.kv_ms_per_1k_tokens;
  cmd.add_option("--step-ms", args.step_ms, "Cost model: ms per step.")->capture_default_str();
  cmd.add_option("--prefill-ms-per-1k-tokens", args.prefill_ms_per_1k_tokens,
                 "Cost model: ms per 1,000 prefill tokens (recomputation included).")
      ->capture_default_str();
  cmd.add_option("--decode-ms-per-request", args.decode_ms_per_request,
                 "Cost model: ms per decoding request.")
      ->capture_default_str();
  cmd.add_option("--kv-ms-per-1k-tokens", args.kv_ms_per_1k_tokens,
                 "Cost model: ms per 1,000 KV tokens attended (context after the step).")
      ->capture_default_str();
}

}  // namespace

CLI::App* add_simulate_command(CLI::App& app, SimulateArgs& args) {
  CLI::App* cmd =
      app.add_subcommand("simulate",
                         "Serve a request trace with the scheduler and a cost model instead of a "
                         "model; report latencies, preemptions and hit rates per capacity.");
  add_trace_options(*cmd, args.trace);
  cmd->add_option("--num-pages", args.num_pages,
                  "Pool size(s), null page included; a comma list sweeps capacities.")
      ->delimiter(',')
      ->check(CLI::Range(2, 2147483647));
  cmd->add_option("--page-size", args.page_size, "Tokens per page.")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-num-seqs", args.max_num_seqs, "Running requests at most.")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-num-batched-tokens", args.max_num_batched_tokens,
                  "Tokens scheduled per step at most (>= --max-num-seqs).")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-model-len", args.max_model_len,
                  "Tokens per request at most (default: the trace's longest prompt + output).")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--policy", args.policy, "Scheduling policy: fcfs | priority.")
      ->capture_default_str()
      ->check(CLI::IsMember({"fcfs", "priority"}));
  cmd->add_option("--default-output-tokens", args.default_output_tokens,
                  "Output length of requests whose trace gives none (0).")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  add_cost_options(*cmd, args);
  cmd->add_flag("--json", args.json,
                "One JSON object per capacity per line on stdout instead of the table.");
  cmd->add_option("--limit", args.limit, "Simulate only the first N requests.")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--progress", args.progress,
                "Show the progress bar even when stderr is not a terminal.");
  cmd->add_flag("-q,--quiet", args.quiet, "No progress bar and no summary lines.");
  cmd->footer(kSimulateFooter);
  return cmd;
}

int run_simulate(const SimulateArgs& a) {
  std::vector<int32_t> capacities = a.num_pages;
  if (capacities.empty()) {
    capacities = a.trace.builtin() ? std::vector<int32_t>{1024, 4096, 16384, 65536}
                                   : std::vector<int32_t>{65536, 262144, 1048576};
  }
  SimulateOptions options = simulate_options(a, capacities.front());
  const Trace trace = load_trace_args(a.trace);
  if (!a.json && !a.quiet) print_simulate_summary(trace, a, options);
  const bool show_progress = !a.quiet && (a.progress || ::isatty(STDERR_FILENO));
  std::vector<SimulateResult> results;
  for (int32_t num_pages : capacities) {
    options.num_pages = num_pages;
    ProgressBar bar(fmt::format("num_pages {}", grouped(num_pages)));
    if (show_progress) {
      options.progress = [&bar](int64_t done, int64_t total) { bar.update(done, total); };
    }
    SimulateResult r = simulate(trace, options);
    options.progress = nullptr;
    if (a.json) {
      fmt::print("{}\n", simulate_result_json(r));
      std::fflush(stdout);
    }
    results.push_back(std::move(r));
  }
  if (!a.json) print_simulate_table(results);
  return 0;
}

}  // namespace pagedkv::cli
