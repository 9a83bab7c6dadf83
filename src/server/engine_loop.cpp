#include "pagedkv/server/engine_loop.h"

#include <fmt/format.h>

#include <cstdio>
#include <span>
#include <utility>

#include "pagedkv/common/errors.h"
#include "pagedkv/scheduler/sequence.h"

namespace pagedkv {

using Clock = std::chrono::steady_clock;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void merge(StreamEvent& into, StreamEvent&& ev) {
  into.accepted = into.accepted || ev.accepted;
  into.text += ev.text;
  into.token_ids.insert(into.token_ids.end(), ev.token_ids.begin(), ev.token_ids.end());
  for (LogprobEntry& e : ev.logprobs) into.logprobs.push_back(std::move(e));
  into.finished = ev.finished;
  into.finish_reason = std::move(ev.finish_reason);
  into.prompt_tokens = ev.prompt_tokens;
  into.completion_tokens = ev.completion_tokens;
  into.error = std::move(ev.error);
}

}  // namespace

// ---- RequestStream ----

RequestStream::Status RequestStream::next(StreamEvent& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (terminal_taken_) return kClosed;
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return kTimeout;
  out = std::move(events_.front());
  events_.pop_front();
  while (!events_.empty()) {
    merge(out, std::move(events_.front()));
    events_.pop_front();
  }
  if (out.finished || out.error) terminal_taken_ = true;
  return kEvent;
}

void RequestStream::push(StreamEvent ev) {
  {
    std::lock_guard lock(mu_);
    if (terminal_pushed_) return;
    terminal_pushed_ = ev.finished || ev.error.has_value();
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

// ---- EngineLoop ----

struct EngineLoop::Live {
  Live(const Tokenizer& tok, EngineJob& job, std::shared_ptr<RequestStream> s)
      : stream(std::move(s)),
        text(tok, std::move(job.stop), job.params.logprobs.has_value()),
        prompt_tokens(static_cast<int32_t>(job.prompt_token_ids.size())) {}
  std::shared_ptr<RequestStream> stream;
  CompletionText text;
  int32_t prompt_tokens;
  Clock::time_point arrival = Clock::now();
  Clock::time_point last_token;
};

EngineLoop::EngineLoop(LLMEngine& engine, EngineLoopOptions options)
    : engine_(engine), options_(options) {
  PAGEDKV_CHECK_ARG(options_.max_in_flight > 0, "max_in_flight must be > 0, got {}",
                    options_.max_in_flight);
  thread_ = std::thread([this] { run(); });
}

EngineLoop::~EngineLoop() { stop(); }

std::shared_ptr<RequestStream> EngineLoop::submit(EngineJob job) {
  auto stream = std::make_shared<RequestStream>();
  {
    std::lock_guard lock(inbox_mu_);
    if (stopping_ || !healthy_.load()) return nullptr;
    if (in_flight_.load() >= options_.max_in_flight) return nullptr;
    ++in_flight_;
    pending_streams_.emplace(job.id, stream);
    inbox_adds_.push_back(std::move(job));
  }
  inbox_cv_.notify_one();
  return stream;
}

void EngineLoop::abort(const std::string& id) {
  {
    std::lock_guard lock(inbox_mu_);
    inbox_aborts_.push_back(id);
  }
  inbox_cv_.notify_one();
}

void EngineLoop::stop() {
  {
    std::lock_guard lock(inbox_mu_);
    stopping_ = true;
  }
  inbox_cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

ServerMetrics EngineLoop::metrics() const {
  std::lock_guard lock(metrics_mu_);
  return published_;
}

void EngineLoop::run() {
  std::vector<EngineJob> adds;
  std::vector<std::string> aborts;
  bool stopping = false;
  while (!stopping) {
    {
      std::unique_lock lock(inbox_mu_);
      inbox_cv_.wait(lock, [&] {
        return stopping_ || !inbox_adds_.empty() || !inbox_aborts_.empty() ||
               engine_.has_unfinished_requests();
      });
      adds.swap(inbox_adds_);
      aborts.swap(inbox_aborts_);
      stopping = stopping_;
    }
    drain(adds, aborts);
    publish();
    if (stopping) break;
    if (!engine_.has_unfinished_requests()) continue;
    try {
      for (const GenerationOutput& out : engine_.step()) handle(out);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pagedkv serve: engine step failed: %s\n", e.what());
      ApiError err;
      err.status = 500;
      err.type = "internal_server_error";
      err.message = fmt::format("the engine failed: {}", e.what());
      healthy_ = false;
      fail_all(err);
      publish();
      return;
    }
    publish();
  }
  // Shutting down: every request still here ends as aborted, its pages freed.
  std::vector<std::string> ids;
  for (const auto& [id, live] : live_) ids.push_back(id);
  for (const std::string& id : ids) {
    engine_.abort_request(id);
    StreamEvent ev;
    ev.finished = true;
    ev.finish_reason = "abort";
    finish(id, std::move(ev));
  }
  publish();
}

void EngineLoop::drain(std::vector<EngineJob>& adds, std::vector<std::string>& aborts) {
  for (EngineJob& job : adds) add(job);
  adds.clear();
  for (const std::string& id : aborts) {
    if (!live_.contains(id)) continue;  // finished (or failed) already
    engine_.abort_request(id);
    StreamEvent ev;
    ev.finished = true;
    ev.finish_reason = "abort";
    finish(id, std::move(ev));
  }
  aborts.clear();
}

void EngineLoop::add(EngineJob& job) {
  std::shared_ptr<RequestStream> stream;
  {
    std::lock_guard lock(inbox_mu_);
    auto it = pending_streams_.find(job.id);
    PAGEDKV_ASSERT(it != pending_streams_.end(), "no stream for request '{}'", job.id);
    stream = std::move(it->second);
    pending_streams_.erase(it);
  }
  auto live = std::make_unique<Live>(engine_.tokenizer(), job, stream);
  const auto num_prompt = static_cast<int64_t>(job.prompt_token_ids.size());
  try {
    engine_.add_request(job.id, std::move(job.prompt_token_ids), job.params, job.priority,
                        job.cache_salt);
  } catch (const Error& e) {
    // InvalidArgument or CapacityError: the engine changed nothing; the client gets a 400.
    ApiError err = ApiError::invalid("prompt", e.what());
    --in_flight_;
    StreamEvent ev;
    ev.error = std::move(err);
    post(stream, std::move(ev));
    return;
  }
  building_.prompt_tokens += num_prompt;
  StreamEvent ev;
  ev.accepted = true;
  ev.prompt_tokens = live->prompt_tokens;
  post(stream, std::move(ev));
  live_.emplace(job.id, std::move(live));
}

void EngineLoop::finish(const std::string& id, StreamEvent ev) {
  auto it = live_.find(id);
  PAGEDKV_ASSERT(it != live_.end(), "finishing unknown request '{}'", id);
  Live& live = *it->second;
  ev.prompt_tokens = live.prompt_tokens;
  ev.completion_tokens = live.text.num_tokens();
  building_.e2e_request_latency.observe(seconds_between(live.arrival, Clock::now()));
  ++building_.requests_finished;
  post(live.stream, std::move(ev));
  live_.erase(it);
  --in_flight_;
}

void EngineLoop::handle(const GenerationOutput& out) {
  auto it = live_.find(out.request_id);
  if (it == live_.end()) return;
  Live& live = *it->second;
  const Clock::time_point t = Clock::now();
  const size_t n = out.new_token_ids.size();
  if (n == 0) return;
  if (live.text.num_tokens() == 0) {
    building_.time_to_first_token.observe(seconds_between(live.arrival, t));
  } else {
    const double gap = seconds_between(live.last_token, t) / static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) building_.inter_token_latency.observe(gap);
  }
  live.last_token = t;
  building_.generation_tokens += static_cast<int64_t>(n);

  std::span<const std::vector<TokenLogprob>> logprobs;
  if (out.logprobs.size() >= n) {
    logprobs = std::span(out.logprobs).subspan(out.logprobs.size() - n);
  }
  const bool engine_stop = out.finished && out.finish_reason == FinishReason::kStop;
  CompletionText::Delta d = live.text.push(out.new_token_ids, logprobs, out.finished, engine_stop);

  StreamEvent ev;
  ev.text = std::move(d.text);
  ev.token_ids = out.new_token_ids;
  ev.logprobs = std::move(d.logprobs);
  ev.prompt_tokens = live.prompt_tokens;
  ev.completion_tokens = live.text.num_tokens();
  if (d.stopped || out.finished) {
    if (d.stopped && !out.finished) engine_.abort_request(out.request_id);
    ev.finished = true;
    ev.finish_reason = d.stopped ? "stop" : std::string(finish_reason_name(*out.finish_reason));
    finish(out.request_id, std::move(ev));
    return;
  }
  post(live.stream, std::move(ev));
}

void EngineLoop::fail_all(const ApiError& error) {
  std::vector<std::string> ids;
  for (const auto& [id, live] : live_) ids.push_back(id);
  for (const std::string& id : ids) {
    StreamEvent ev;
    ev.error = error;
    finish(id, std::move(ev));
  }
  std::lock_guard lock(inbox_mu_);
  for (auto& [id, stream] : pending_streams_) {
    StreamEvent ev;
    ev.error = error;
    post(stream, std::move(ev));
    --in_flight_;
  }
  pending_streams_.clear();
  inbox_adds_.clear();
}

void EngineLoop::post(const std::shared_ptr<RequestStream>& stream, StreamEvent ev) {
  outbox_.emplace_back(stream, std::move(ev));
}

void EngineLoop::publish() {
  snapshot();
  for (auto& [stream, ev] : outbox_) stream->push(std::move(ev));
  outbox_.clear();
}

void EngineLoop::snapshot() {
  const EngineStats s = engine_.stats();
  building_.num_requests_running = s.num_running;
  building_.num_requests_waiting = s.num_waiting;
  building_.kv_cache_usage = s.kv_cache_usage;
  building_.prefix_cache_queries = s.prefix_cache_queries;
  building_.prefix_cache_hits = s.prefix_cache_hits;
  building_.num_preemptions = s.num_preemptions;
  std::lock_guard lock(metrics_mu_);
  published_ = building_;
}

}  // namespace pagedkv
