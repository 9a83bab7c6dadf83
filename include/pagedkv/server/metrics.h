// pagedkv/server/metrics.h - the server's Prometheus metrics: fixed-bucket histograms and a
// plain snapshot of the engine's gauges and counters, rendered in the Prometheus text format
// (names prefixed "pagedkv:", each labelled with model_name).
//
// Example:
//   ServerMetrics m;                               // the engine thread owns and updates it
//   m.time_to_first_token.observe(0.042);
//   m.num_requests_running = 3;
//   std::string text = render_prometheus(m, "tiny");
//   // # TYPE pagedkv:time_to_first_token_seconds histogram
//   // pagedkv:time_to_first_token_seconds_bucket{model_name="tiny",le="0.05"} 1 ...
//
// Invariants: a histogram's bucket counts are cumulative in the rendering (each "le" bucket
// counts the observations <= its bound, "+Inf" equals _count); bounds are strictly increasing.
// Errors: Histogram's constructor throws InvalidArgument for bounds that are empty or not
// strictly increasing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pagedkv {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);

  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // counts()[i]: observations in (bounds[i-1], bounds[i]]; the last one: above every bound.
  const std::vector<int64_t>& counts() const { return counts_; }
  int64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // [bounds + 1]
  int64_t count_ = 0;
  double sum_ = 0.0;
};

// Latency bounds in seconds, shared by the three request histograms' families.
std::vector<double> ttft_buckets();
std::vector<double> inter_token_buckets();
std::vector<double> e2e_buckets();

struct ServerMetrics {
  // Gauges (the engine's state after its last step).
  int64_t num_requests_running = 0;
  int64_t num_requests_waiting = 0;
  double kv_cache_usage = 0.0;  // fraction of KV pages in use, 0..1
  // Counters since the server started.
  int64_t prefix_cache_queries = 0;  // prompt tokens looked up
  int64_t prefix_cache_hits = 0;
  int64_t num_preemptions = 0;
  int64_t generation_tokens = 0;
  int64_t prompt_tokens = 0;
  int64_t requests_finished = 0;
  Histogram time_to_first_token{ttft_buckets()};
  Histogram inter_token_latency{inter_token_buckets()};
  Histogram e2e_request_latency{e2e_buckets()};
};

// The Prometheus text exposition (version 0.0.4) of `m`.
std::string render_prometheus(const ServerMetrics& m, std::string_view model_name);

}  // namespace pagedkv
