// apps/cli_util.h - what the `pagedkv` commands share: the trace options, number formatting,
// right-aligned tables on stdout and a progress bar on stderr.
//
// Example:
//   TraceArgs trace;
//   add_trace_options(*cmd, trace);            // --trace, --format, --hash
//   Trace t = load_trace_args(trace);          // the built-in workload when no --trace
//   print_table({"num_pages", "rate"}, {{grouped(65536), percent(0.0564)}});
//   //  num_pages     rate
//   //     65,536   5.64 %
//   ProgressBar bar("num_pages 65,536");
//   bar.update(done, total);        // redrawn at most every 100 ms; erased when destroyed
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "pagedkv/replay/trace.h"

namespace pagedkv::cli {

// Where a command gets its trace from, and how it hashes pages.
struct TraceArgs {
  std::vector<std::string> traces;  // empty: the built-in workload
  std::string format;               // empty: from the first path
  std::string hash = "xxh3_128";

  bool builtin() const { return traces.empty(); }
};

void add_trace_options(CLI::App& cmd, TraceArgs& args);
// The trace the options name (pagedkv errors on a bad file), or default_workload().
Trace load_trace_args(const TraceArgs& args);

// 1234567 -> "1,234,567".
std::string grouped(int64_t v);
// 0.0564 -> "5.64 %".
std::string percent(double rate);

// Columns right-aligned to their widest cell (the first one left-aligned when asked), two
// spaces apart; every row has head.size() cells.
void print_table(const std::vector<std::string>& head,
                 const std::vector<std::vector<std::string>>& rows, bool left_align_first = false);

// A one-line bar on stderr, redrawn at most every 100 ms (always at done == total).
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)) {}
  ~ProgressBar() { clear(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  void update(int64_t done, int64_t total);

 private:
  void clear();
  std::string label_;
  std::chrono::steady_clock::time_point last_{};
  bool drawn_ = false;
};

}  // namespace pagedkv::cli
