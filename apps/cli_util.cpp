#include "cli_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "pagedkv/replay/default_workload.h"

namespace pagedkv::cli {

void add_trace_options(CLI::App& cmd, TraceArgs& args) {
  cmd.add_option("--trace", args.traces,
                 "Trace file (repeatable; a kv-cache-tester directory loads its *.json "
                 "sessions). Omitted: the built-in workload.");
  cmd.add_option("--format", args.format,
                 "Trace format (default from the path: a directory or .json -> "
                 "kv-cache-tester, else mooncake).")
      ->check(CLI::IsMember({"mooncake", "kv-cache-tester"}));
  cmd.add_option("--hash", args.hash, "Page hash: xxh3_128 (default) | sha256.")
      ->check(CLI::IsMember({"xxh3_128", "sha256"}));
}

Trace load_trace_args(const TraceArgs& args) {
  if (args.builtin()) return default_workload();
  const TraceFormat format = args.format.empty() ? trace_format_from_path(args.traces[0])
                                                 : parse_trace_format(args.format);
  return load_traces(args.traces, format);
}

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

void print_table(const std::vector<std::string>& head,
                 const std::vector<std::vector<std::string>>& rows, bool left_align_first) {
  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      const bool left = c == 0 && left_align_first;
      out += left ? fmt::format("{}{:<{}}", c ? "  " : "", cells[c], width[c])
                  : fmt::format("{}{:>{}}", c ? "  " : "", cells[c], width[c]);
    }
    fmt::print("{}\n", out);
  };
  line(head);
  for (const auto& row : rows) line(row);
}

void ProgressBar::update(int64_t done, int64_t total) {
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

void ProgressBar::clear() {
  if (drawn_) fmt::print(stderr, "\r{}\r", std::string(80 + label_.size(), ' '));
}

}  // namespace pagedkv::cli
