// `pagedkv replay`: one cache-only replay (pagedkv::replay) per capacity, as a table or JSON.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "pagedkv/replay/replay.h"

namespace pagedkv::cli {

namespace {

constexpr const char* kReplayFooter =
    R"(Each request, in trace order, is prefilled alone through a KVCacheManager and freed:
get_computed_pages -> allocate_slots -> free. Freed pages stay cached until reused (LRU).
Prompt tokens are synthesised from the trace's per-block hash ids (same id, same tokens).

Columns / JSON fields (n = prompt length, P = page size):
  tokens          sum of n over the replayed requests
  hit_tokens      sum of the cached prefix found per request; at most (n - 1) // P pages,
                  since the last prompt token is always recomputed
  token_hit_rate  hit_tokens / tokens
  page_hit_rate   hit pages / full prompt pages = (hit_tokens / P) / sum(n // P)
  ideal           the same rate with an unbounded cache (exact, from the hash-id chains);
                  ideal_unbounded_num_pages is a pool size that never reuses a page
  evictions       cached pages dropped because their page was reused
  rejected        prompts longer than the whole pool (cdiv(n, P) > num_pages - 1): not
                  served, counted in tokens with no hit
  seconds         wall time of the replay at that capacity

Default --num-pages: 65536,262144,1048576 with --trace; 1024,4096,16384,65536 for the
built-in workload (shared system prompts + multi-turn chats, 3,555 requests).)";

void print_replay_table(const std::vector<ReplayResult>& results) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : results) {
    rows.push_back(
        {grouped(r.num_pages), grouped(static_cast<int64_t>(r.num_pages - 1) * r.page_size),
         percent(r.token_hit_rate()), percent(r.ideal.token_hit_rate()), percent(r.page_hit_rate()),
         grouped(r.evictions), grouped(r.rejected), fmt::format("{:.3f}", r.seconds)});
  }
  print_table({"num_pages", "capacity (tokens)", "token hit rate", "ideal", "page hit rate",
               "evictions", "rejected", "seconds"},
              rows);
}

void print_replay_summary(const Trace& trace, const ReplayArgs& a, int64_t count) {
  const IdealStats ideal = ideal_hits(trace, a.page_size, a.limit);
  fmt::print("trace: {}{}: {} requests, {} prompt tokens; page size {}, hash {}\n", trace.source,
             a.trace.builtin() ? " (built in)" : "", grouped(count), grouped(ideal.tokens),
             a.page_size, a.trace.hash);
  fmt::print("unbounded cache: token hit rate {}, page hit rate {} (no eviction from {} pages)\n\n",
             percent(ideal.token_hit_rate()), percent(ideal.page_hit_rate()),
             grouped(ideal.unbounded_num_pages));
}

}  // namespace

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args) {
  CLI::App* cmd =
      app.add_subcommand("replay",
                         "Replay a request trace through the prefix cache and report hit rates per "
                         "capacity (no arguments: a built-in workload).");
  add_trace_options(*cmd, args.trace);
  cmd->add_option("--page-size", args.page_size, "Tokens per page (default 16).")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--num-pages", args.num_pages,
                  "Pool size(s), null page included; a comma list sweeps capacities.")
      ->delimiter(',')
      ->check(CLI::Range(2, 2147483647));
  cmd->add_flag("--json", args.json,
                "One JSON object per capacity per line on stdout instead of the table.");
  cmd->add_option("--limit", args.limit, "Replay only the first N requests.")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--progress", args.progress,
                "Show the progress bar even when stderr is not a terminal.");
  cmd->add_flag("-q,--quiet", args.quiet, "No progress bar and no summary lines.");
  cmd->footer(kReplayFooter);
  return cmd;
}

int run_replay(const ReplayArgs& a) {
  const Trace trace = load_trace_args(a.trace);
  std::vector<int32_t> capacities = a.num_pages;
  if (capacities.empty()) {
    capacities = a.trace.builtin() ? std::vector<int32_t>{1024, 4096, 16384, 65536}
                                   : std::vector<int32_t>{65536, 262144, 1048576};
  }
  ReplayOptions options;
  options.page_size = a.page_size;
  options.hash_algorithm = parse_hash_algorithm(a.trace.hash);
  options.max_requests = a.limit;
  const auto size = static_cast<int64_t>(trace.requests.size());
  const int64_t count = a.limit < 0 ? size : std::min<int64_t>(a.limit, size);
  if (!a.json && !a.quiet) print_replay_summary(trace, a, count);
  const bool show_progress = !a.quiet && (a.progress || ::isatty(STDERR_FILENO));
  std::vector<ReplayResult> results;
  for (int32_t num_pages : capacities) {
    options.num_pages = num_pages;
    ProgressBar bar(fmt::format("num_pages {}", grouped(num_pages)));
    if (show_progress) {
      options.progress = [&bar](int64_t done, int64_t total) { bar.update(done, total); };
    }
    ReplayResult r = replay(trace, options);
    options.progress = nullptr;
    if (a.json) {
      fmt::print("{}\n", replay_result_json(r));
      std::fflush(stdout);
    }
    results.push_back(std::move(r));
  }
  if (!a.json) print_replay_table(results);
  return 0;
}

}  // namespace pagedkv::cli
