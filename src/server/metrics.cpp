#include "pagedkv/server/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "pagedkv/common/errors.h"

namespace pagedkv {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  PAGEDKV_CHECK_ARG(!bounds_.empty(), "a histogram needs at least one bucket bound");
  for (size_t i = 1; i < bounds_.size(); ++i) {
    PAGEDKV_CHECK_ARG(bounds_[i - 1] < bounds_[i],
                      "histogram bounds must increase strictly: {} then {}", bounds_[i - 1],
                      bounds_[i]);
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double value) {
  // Prometheus buckets are "less than or equal": the first bound >= value.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++counts_[static_cast<size_t>(std::distance(bounds_.begin(), it))];
  ++count_;
  sum_ += value;
}

std::vector<double> ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
          0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
}

std::vector<double> inter_token_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
          0.15,  0.2,    0.3,   0.5,  0.75, 1.0,  2.5,  5.0,  10.0};
}

std::vector<double> e2e_buckets() {
  return {0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 300.0};
}

namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string escape_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void scalar(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::string_view labels, double value) {
  fmt::format_to(std::back_inserter(out), "# HELP pagedkv:{} {}\n# TYPE pagedkv:{} {}\n", name,
                 help, name, type);
  fmt::format_to(std::back_inserter(out), "pagedkv:{}{{{}}} {}\n", name, labels, value);
}

void histogram(std::string& out, std::string_view name, std::string_view help,
               std::string_view labels, const Histogram& h) {
  fmt::format_to(std::back_inserter(out), "# HELP pagedkv:{} {}\n# TYPE pagedkv:{} histogram\n",
                 name, help, name);
  int64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    fmt::format_to(std::back_inserter(out), "pagedkv:{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                   h.bounds()[i], cumulative);
  }
  fmt::format_to(std::back_inserter(out), "pagedkv:{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels,
                 h.count());
  fmt::format_to(std::back_inserter(out), "pagedkv:{}_sum{{{}}} {}\n", name, labels, h.sum());
  fmt::format_to(std::back_inserter(out), "pagedkv:{}_count{{{}}} {}\n", name, labels, h.count());
}

}  // namespace

std::string render_prometheus(const ServerMetrics& m, std::string_view model_name) {
  const std::string labels = fmt::format("model_name=\"{}\"", escape_label(model_name));
  std::string out;
  auto d = [](int64_t x) { return static_cast<double>(x); };
  scalar(out, "num_requests_running", "gauge", "Requests in the running batch.", labels,
         d(m.num_requests_running));
  scalar(out, "num_requests_waiting", "gauge", "Requests waiting to be scheduled.", labels,
         d(m.num_requests_waiting));
  scalar(out, "kv_cache_usage_perc", "gauge", "Fraction of KV-cache pages in use (1 = all).",
         labels, m.kv_cache_usage);
  scalar(out, "prefix_cache_queries_total", "counter",
         "Prompt tokens looked up in the prefix "
         "cache.",
         labels, d(m.prefix_cache_queries));
  scalar(out, "prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.",
         labels, d(m.prefix_cache_hits));
  scalar(out, "num_preemptions_total", "counter", "Requests preempted by the scheduler.", labels,
         d(m.num_preemptions));
  scalar(out, "prompt_tokens_total", "counter", "Prompt tokens of the admitted requests.", labels,
         d(m.prompt_tokens));
  scalar(out, "generation_tokens_total", "counter", "Tokens generated.", labels,
         d(m.generation_tokens));
  scalar(out, "request_success_total", "counter", "Requests finished.", labels,
         d(m.requests_finished));
  histogram(out, "time_to_first_token_seconds", "Seconds from arrival to the first token.", labels,
            m.time_to_first_token);
  histogram(out, "inter_token_latency_seconds", "Seconds between a request's successive tokens.",
            labels, m.inter_token_latency);
  histogram(out, "e2e_request_latency_seconds", "Seconds from arrival to the last token.", labels,
            m.e2e_request_latency);
  return out;
}

}  // namespace pagedkv
