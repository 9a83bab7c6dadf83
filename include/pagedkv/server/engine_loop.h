// pagedkv/server/engine_loop.h - the one thread that drives an LLMEngine for the HTTP server.
// HTTP threads submit requests and aborts to its inbox and read each request's results from
// its own RequestStream; the loop drains the inbox before every step, runs the step, turns the
// outputs into text deltas (stop strings included) and publishes a metrics snapshot.
//
// Example:
//   EngineLoop loop(engine, {.max_in_flight = 64 + 128});
//   EngineLoop::Submission s = loop.submit(std::move(job));   // job: id, prompt, params, ...
//   if (!s.stream) reply(503, ...);                           // over the in-flight limit
//   for (StreamEvent ev; s.stream->next(ev, 50ms) != RequestStream::kClosed;) { ... }
//   loop.abort(job_id);                                       // e.g. the client went away
//   loop.stop();                                              // aborts everything, joins
//
// Invariants:
//   - Only the loop's thread touches the engine (its constructor takes it over; the caller
//     must not use it until stop() returned).
//   - Each submitted request gets exactly one terminal event (finished or error) on its
//     stream, then the stream is closed; the in-flight count drops when that event is posted.
//   - A request is aborted in the engine (its pages freed) at the next drain after abort(),
//     after its stop string is found, or at stop().
//   - metrics() is a copy of the snapshot taken after the last drain or step; it never
//     touches the engine. Events reach the streams only after the snapshot that counts them
//     is published, so a client that has seen an event scrapes metrics at least that new.
// Errors: add_request's InvalidArgument / CapacityError come back as a 400 error event on the
// request's stream; an exception from step() fails every live request with a 500 and stops
// the loop (healthy() turns false).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pagedkv/engine/llm_engine.h"
#include "pagedkv/server/completion_request.h"
#include "pagedkv/server/completion_text.h"
#include "pagedkv/server/metrics.h"

namespace pagedkv {

// What the loop tells an HTTP thread about its request; consecutive events may be merged.
struct StreamEvent {
  bool accepted = false;  // the engine took the request (always the first event unless error)
  std::string text;       // new text (stop strings cut, never half a character)
  std::vector<TokenId> token_ids;      // new token ids
  std::vector<LogprobEntry> logprobs;  // one per new token when requested
  bool finished = false;
  std::string finish_reason;  // "stop", "length" or "abort" once finished
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;  // tokens generated so far
  std::optional<ApiError> error;  // terminal: the request failed
};

// One request's result channel: the loop pushes, one HTTP thread waits and takes.
class RequestStream {
 public:
  enum Status { kEvent, kTimeout, kClosed };

  // Waits up to `timeout` and takes every pending event merged into one. kClosed once the
  // terminal event was taken.
  Status next(StreamEvent& out, std::chrono::milliseconds timeout);

  void push(StreamEvent ev);  // the loop's side; a terminal event closes the stream

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  bool terminal_pushed_ = false;
  bool terminal_taken_ = false;
};

// A validated request as the loop receives it.
struct EngineJob {
  std::string id;
  std::vector<TokenId> prompt_token_ids;
  SamplingParams params;
  int32_t priority = 0;
  std::string cache_salt;
  std::vector<std::string> stop;
};

struct EngineLoopOptions {
  int64_t max_in_flight = 256;  // submitted and not finished; more: submit refuses
};

class EngineLoop {
 public:
  EngineLoop(LLMEngine& engine, EngineLoopOptions options);
  ~EngineLoop();  // stop()
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // nullptr when max_in_flight requests are already in flight or the loop has stopped.
  std::shared_ptr<RequestStream> submit(EngineJob job);
  void abort(const std::string& id);
  // Aborts every request (their streams end with finish_reason "abort") and joins the thread.
  void stop();

  ServerMetrics metrics() const;
  int64_t in_flight() const { return in_flight_.load(); }
  bool healthy() const { return healthy_.load(); }

 private:
  struct Live;
  void run();
  void drain(std::vector<EngineJob>& adds, std::vector<std::string>& aborts);
  void add(EngineJob& job);
  void finish(const std::string& id, StreamEvent ev);
  void handle(const GenerationOutput& out);
  void fail_all(const ApiError& error);
  void snapshot();
  // Queues an event for its stream; publish() snapshots the metrics, then delivers the queue.
  void post(const std::shared_ptr<RequestStream>& stream, StreamEvent ev);
  void publish();

  LLMEngine& engine_;
  EngineLoopOptions options_;

  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::vector<EngineJob> inbox_adds_;
  std::vector<std::string> inbox_aborts_;
  std::unordered_map<std::string, std::shared_ptr<RequestStream>> pending_streams_;
  bool stopping_ = false;

  std::unordered_map<std::string, std::unique_ptr<Live>> live_;                 // loop thread only
  ServerMetrics building_;                                                      // loop thread only
  std::vector<std::pair<std::shared_ptr<RequestStream>, StreamEvent>> outbox_;  // loop only
  mutable std::mutex metrics_mu_;
  ServerMetrics published_;

  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> healthy_{true};
  std::thread thread_;
};

}  // namespace pagedkv
