// pagedkv - command-line tool. A thin shell over pagedkv::replay: parses arguments, loads the
// trace (or builds the default workload), runs one replay per capacity and prints the results.
//
//   pagedkv replay                                  built-in workload, a few capacities, table
//   pagedkv replay --trace conversation_trace.jsonl --num-pages 65536,262144,1048576 --json
//   pagedkv version
//
// Exit codes: 0 success (and --help), 2 bad arguments or an unusable trace (one-line message
// on stderr), 1 an internal error.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/replay/default_workload.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/replay/replay.h"
#include "pagedkv/replay/trace.h"

#ifndef PAGEDKV_VERSION
#define PAGEDKV_VERSION "unknown"
#endif

namespace {

using namespace pagedkv;

constexpr const char* kReplayFooter = R"(Each request, in trace order, is prefilled alone through a KVCacheManager and freed:
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

std::string grouped(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string percent(double rate) { return fmt::format("{:.2f} %", 100.0 * rate); }

// A one-line bar on stderr, redrawn at most every 100 ms.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)) {}
  ~ProgressBar() { clear(); }
  void update(int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    constexpr int kWidth = 30;
    const double frac = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
    const int filled = static_cast<int>(frac * kWidth);
    fmt::print(stderr, "\r{} [{}{}] {:3.0f}% {}/{} requests", label_, std::string(filled, '#'),
               std::string(kWidth - filled, '.'), 100.0 * frac, grouped(done), grouped(total));
    std::fflush(stderr);
    drawn_ = true;
  }

 private:
  void clear() {
    if (drawn_) fmt::print(stderr, "\r{}\r", std::string(80 + label_.size(), ' '));
  }
  std::string label_;
  std::chrono::steady_clock::time_point last_{};
  bool drawn_ = false;
};

struct ReplayArgs {
  std::vector<std::string> traces;
  std::string format;
  int32_t page_size = 16;
  std::vector<int32_t> num_pages;
  std::string hash = "xxh3_128";
  bool json = false;
  int64_t limit = -1;
  bool progress = false;
  bool quiet = false;
};

void print_table(const std::vector<ReplayResult>& results) {
  const std::vector<std::string> head = {"num_pages", "capacity (tokens)", "token hit rate",
                                         "ideal",     "page hit rate",     "evictions",
                                         "rejected",  "seconds"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : results) {
    rows.push_back({grouped(r.num_pages), grouped(static_cast<int64_t>(r.num_pages - 1) * r.page_size),
                    percent(r.token_hit_rate()), percent(r.ideal.token_hit_rate()),
                    percent(r.page_hit_rate()), grouped(r.evictions), grouped(r.rejected),
                    fmt::format("{:.3f}", r.seconds)});
  }
  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) out += fmt::format("{}{:>{}}", c ? "  " : "", cells[c], width[c]);
    fmt::print("{}\n", out);
  };
  line(head);
  for (const auto& row : rows) line(row);
}

int run_replay(const ReplayArgs& a) {
  const bool builtin = a.traces.empty();
  Trace trace;
  if (builtin) {
    trace = default_workload();
  } else {
    const TraceFormat format =
        a.format.empty() ? trace_format_from_path(a.traces[0]) : parse_trace_format(a.format);
    trace = load_traces(a.traces, format);
  }
  std::vector<int32_t> capacities = a.num_pages;
  if (capacities.empty()) {
    capacities = builtin ? std::vector<int32_t>{1024, 4096, 16384, 65536}
                         : std::vector<int32_t>{65536, 262144, 1048576};
  }
  ReplayOptions options;
  options.page_size = a.page_size;
  options.hash_algorithm = parse_hash_algorithm(a.hash);
  options.max_requests = a.limit;
  const int64_t count = a.limit < 0 ? static_cast<int64_t>(trace.requests.size())
                                    : std::min<int64_t>(a.limit, static_cast<int64_t>(trace.requests.size()));
  if (!a.json && !a.quiet) {
    const IdealStats ideal = ideal_hits(trace, a.page_size, a.limit);
    fmt::print("trace: {}{}: {} requests, {} prompt tokens; page size {}, hash {}\n", trace.source,
               builtin ? " (built in)" : "", grouped(count), grouped(ideal.tokens), a.page_size,
               a.hash);
    fmt::print("unbounded cache: token hit rate {}, page hit rate {} (no eviction from {} pages)\n\n",
               percent(ideal.token_hit_rate()), percent(ideal.page_hit_rate()),
               grouped(ideal.unbounded_num_pages));
  }
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
  if (!a.json) print_table(results);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pagedkv: KV-cache paging for LLM inference (page pool with prefix caching, "
               "KV-cache manager, paged attention).",
               "pagedkv"};
  app.require_subcommand(1);
  app.footer("Run `pagedkv <command> --help` for a command's options.");

  CLI::App* version = app.add_subcommand("version", "Print the version and the active SIMD ISA.");

  ReplayArgs args;
  CLI::App* replay_cmd = app.add_subcommand(
      "replay", "Replay a request trace through the prefix cache and report hit rates per "
                "capacity (no arguments: a built-in workload).");
  replay_cmd->add_option("--trace", args.traces,
                         "Trace file (repeatable; a kv-cache-tester directory loads its *.json "
                         "sessions). Omitted: the built-in workload.");
  replay_cmd->add_option("--format", args.format,
                         "Trace format (default from the path: a directory or .json -> "
                         "kv-cache-tester, else mooncake).")
      ->check(CLI::IsMember({"mooncake", "kv-cache-tester"}));
  replay_cmd->add_option("--page-size", args.page_size, "Tokens per page (default 16).")
      ->check(CLI::Range(1, 1 << 20));
  replay_cmd->add_option("--num-pages", args.num_pages,
                         "Pool size(s), null page included; a comma list sweeps capacities.")
      ->delimiter(',')
      ->check(CLI::Range(2, 2147483647));
  replay_cmd->add_option("--hash", args.hash, "Page hash: xxh3_128 (default) | sha256.")
      ->check(CLI::IsMember({"xxh3_128", "sha256"}));
  replay_cmd->add_flag("--json", args.json,
                       "One JSON object per capacity per line on stdout instead of the table.");
  replay_cmd->add_option("--limit", args.limit, "Replay only the first N requests.")
      ->check(CLI::PositiveNumber);
  replay_cmd->add_flag("--progress", args.progress,
                       "Show the progress bar even when stderr is not a terminal.");
  replay_cmd->add_flag("-q,--quiet", args.quiet, "No progress bar and no summary lines.");
  replay_cmd->footer(kReplayFooter);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    fmt::print(stderr, "pagedkv: error: {} (run `pagedkv --help`)\n", e.what());
    return 2;
  }

  try {
    isa_cap_from_env();
    if (version->parsed()) {
      fmt::print("pagedkv {} (isa: {}, detected {})\n", PAGEDKV_VERSION, isa_name(active_isa()),
                 isa_name(detected_isa()));
      return 0;
    }
    return run_replay(args);
  } catch (const InternalError& e) {
    fmt::print(stderr, "pagedkv: internal error: {}\n", e.what());
    return 1;
  } catch (const Error& e) {
    fmt::print(stderr, "pagedkv: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "pagedkv: internal error: {}\n", e.what());
    return 1;
  }
}
