// EngineLoop on a generated tiny model: every request ends with one terminal event, pages come
// back, and a client never sees an event before the metrics snapshot that counts it.
#include "pagedkv/server/engine_loop.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "model/model_test_util.h"
#include "pagedkv/model/model_maker.h"

namespace pagedkv {
namespace {

using namespace std::chrono_literals;

// An engine over a freshly generated tiny model; the model directory is removed afterwards.
EngineConfig tiny_config(const testing::TempDir& dir) {
  make_model(preset_config("tiny"), /*seed=*/3, DType::kFloat32, dir.path());
  EngineConfig c;
  c.model = dir.path();
  c.num_pages = 256;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 256;
  c.max_model_len = 512;
  return c;
}

struct TinyEngine {
  testing::TempDir dir;
  LLMEngine engine{tiny_config(dir)};
};

EngineJob job_of(const std::string& id, int32_t prompt_len, int32_t max_tokens) {
  EngineJob job;
  job.id = id;
  for (int32_t i = 0; i < prompt_len; ++i) job.prompt_token_ids.push_back((i * 13 + 7) % 200);
  job.params.max_tokens = max_tokens;
  job.params.temperature = 0.0f;
  job.params.ignore_eos = true;
  return job;
}

// Reads `stream` to its end; after every event checks that the published metrics already
// count what the event reports (`base`: the metrics before the request was submitted, with
// nothing else in flight). Returns the terminal event.
StreamEvent read_checking_metrics(EngineLoop& loop, RequestStream& stream,
                                  const ServerMetrics& base, int32_t prompt_len) {
  StreamEvent last;
  StreamEvent ev;
  while (stream.next(ev, 5000ms) == RequestStream::kEvent) {
    const ServerMetrics m = loop.metrics();
    EXPECT_FALSE(ev.error.has_value()) << ev.error->message;
    EXPECT_EQ(m.prompt_tokens - base.prompt_tokens, prompt_len);
    EXPECT_GE(m.generation_tokens - base.generation_tokens, ev.completion_tokens);
    if (ev.finished) {
      EXPECT_EQ(m.requests_finished - base.requests_finished, 1);
    }
    last = ev;
  }
  return last;
}

TEST(EngineLoopTest, EventsFollowTheMetricsSnapshotThatCountsThem) {
  TinyEngine tiny;
  EngineLoop loop(tiny.engine, {.max_in_flight = 8});
  for (int round = 0; round < 20; ++round) {
    const ServerMetrics base = loop.metrics();
    std::shared_ptr<RequestStream> stream =
        loop.submit(job_of(fmt::format("r{}", round), 5 + round, 6));
    ASSERT_NE(stream, nullptr);
    const StreamEvent last = read_checking_metrics(loop, *stream, base, 5 + round);
    EXPECT_TRUE(last.finished);
    EXPECT_EQ(last.finish_reason, "length");
    EXPECT_EQ(last.completion_tokens, 6);
  }
  loop.stop();
  const ServerMetrics m = loop.metrics();
  EXPECT_EQ(m.requests_finished, 20);
  EXPECT_EQ(m.generation_tokens, 20 * 6);
  EXPECT_EQ(m.num_requests_running, 0);
  EXPECT_EQ(m.kv_cache_usage, 0.0);
  EXPECT_EQ(loop.in_flight(), 0);
}

TEST(EngineLoopTest, StopAbortsLiveRequestsWithOneTerminalEventEach) {
  TinyEngine tiny;
  EngineLoop loop(tiny.engine, {.max_in_flight = 8});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 4; ++i) {
    streams.push_back(loop.submit(job_of(fmt::format("s{}", i), 20, 400)));
    ASSERT_NE(streams.back(), nullptr);
  }
  loop.stop();
  EXPECT_EQ(loop.submit(job_of("late", 3, 2)), nullptr);  // stopped: refused
  for (const auto& stream : streams) {
    int terminal = 0;
    StreamEvent ev;
    while (stream->next(ev, 1000ms) == RequestStream::kEvent) {
      if (ev.finished) {
        ++terminal;
        EXPECT_TRUE(ev.finish_reason == "abort" || ev.finish_reason == "length")
            << ev.finish_reason;
      }
    }
    EXPECT_EQ(terminal, 1);
  }
  EXPECT_EQ(loop.in_flight(), 0);
  EXPECT_EQ(loop.metrics().kv_cache_usage, 0.0);
}

}  // namespace
}  // namespace pagedkv
