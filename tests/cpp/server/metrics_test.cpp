#include "pagedkv/server/metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(Histogram, BucketsAreLessOrEqualAndCountTheRest) {
  Histogram h({0.1, 1.0});
  h.observe(0.1);  // on the bound: in the first bucket
  h.observe(0.5);
  h.observe(5.0);  // above every bound
  EXPECT_EQ(h.counts(), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(h.count(), 3);
  EXPECT_DOUBLE_EQ(h.sum(), 5.6);
}

TEST(Histogram, RejectsBoundsThatDoNotIncrease) {
  EXPECT_THROW(Histogram({}), InvalidArgument);
  EXPECT_THROW(Histogram({1.0, 1.0}), InvalidArgument);
  EXPECT_THROW(Histogram({2.0, 1.0}), InvalidArgument);
}

TEST(RenderPrometheus, GaugesAndCountersCarryTheModelLabel) {
  ServerMetrics m;
  m.num_requests_running = 3;
  m.num_requests_waiting = 2;
  m.kv_cache_usage = 0.25;
  m.prefix_cache_queries = 100;
  m.prefix_cache_hits = 40;
  m.num_preemptions = 1;
  m.prompt_tokens = 120;
  m.generation_tokens = 77;
  const std::string t = render_prometheus(m, "tiny");
  EXPECT_TRUE(has_line(t, "# TYPE pagedkv:num_requests_running gauge"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:num_requests_running{model_name="tiny"} 3)"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:num_requests_waiting{model_name="tiny"} 2)"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:kv_cache_usage_perc{model_name="tiny"} 0.25)"));
  EXPECT_TRUE(has_line(t, "# TYPE pagedkv:prefix_cache_queries_total counter"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:prefix_cache_queries_total{model_name="tiny"} 100)"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:prefix_cache_hits_total{model_name="tiny"} 40)"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:num_preemptions_total{model_name="tiny"} 1)"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:prompt_tokens_total{model_name="tiny"} 120)"));
  EXPECT_TRUE(has_line(t, R"(pagedkv:generation_tokens_total{model_name="tiny"} 77)"));
}

TEST(RenderPrometheus, HistogramBucketsAreCumulativeAndInfEqualsCount) {
  ServerMetrics m;
  m.time_to_first_token.observe(0.003);  // le 0.005
  m.time_to_first_token.observe(0.03);   // le 0.04
  m.time_to_first_token.observe(500.0);  // +Inf only
  const std::string t = render_prometheus(m, "m");
  const std::string b = "pagedkv:time_to_first_token_seconds_bucket{model_name=\"m\",le=";
  EXPECT_TRUE(has_line(t, "# TYPE pagedkv:time_to_first_token_seconds histogram"));
  EXPECT_TRUE(has_line(t, b + "\"0.001\"} 0"));
  EXPECT_TRUE(has_line(t, b + "\"0.005\"} 1"));
  EXPECT_TRUE(has_line(t, b + "\"0.02\"} 1"));
  EXPECT_TRUE(has_line(t, b + "\"0.04\"} 2"));
  EXPECT_TRUE(has_line(t, b + "\"80\"} 2"));
  EXPECT_TRUE(has_line(t, b + "\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(t, "pagedkv:time_to_first_token_seconds_count{model_name=\"m\"} 3"));
  EXPECT_TRUE(has_line(t, "pagedkv:time_to_first_token_seconds_sum{model_name=\"m\"} 500.033"));
  EXPECT_TRUE(has_line(t, "# TYPE pagedkv:inter_token_latency_seconds histogram"));
  EXPECT_TRUE(has_line(t, "pagedkv:e2e_request_latency_seconds_count{model_name=\"m\"} 0"));
}

TEST(RenderPrometheus, LabelValuesAreEscaped) {
  const std::string t = render_prometheus(ServerMetrics{}, "a\"b\\c");
  EXPECT_NE(t.find(R"(model_name="a\"b\\c")"), std::string::npos);
}

}  // namespace
}  // namespace pagedkv
