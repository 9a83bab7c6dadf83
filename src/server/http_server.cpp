#include "pagedkv/server/http_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <ctime>
#include <random>
#include <thread>
#include <utility>

#include "pagedkv/common/errors.h"
#include "pagedkv/server/completion_response.h"

namespace pagedkv {

using nlohmann::json;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);

void reply_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump_json(e.to_json()), "application/json");
}

ApiError overloaded(int64_t limit) {
  ApiError e;
  e.status = 503;
  e.type = "server_error";
  e.code = "overloaded";
  e.message = fmt::format("too many requests in flight (at most {}); retry later", limit);
  return e;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What one streaming response keeps between calls of its content provider.
struct StreamState {
  std::shared_ptr<RequestStream> stream;
  CompletionHeader header;
  CompletionRequest request;
  StreamEvent pending;  // the first event, taken before the response started
  bool has_pending = true;
  bool first_chunk = true;
  bool done = false;
};

// The SSE text for one merged event ("" when it carries nothing to send).
std::string render_event(StreamState& s, StreamEvent& ev) {
  std::string out;
  if (ev.error) {
    out += sse(ev.error->to_json());
    out += "data: [DONE]\n\n";
    return out;
  }
  if (!ev.text.empty() || !ev.token_ids.empty() || ev.finished) {
    CompletionChoice c;
    c.text = std::move(ev.text);
    c.with_logprobs = s.request.params.logprobs.has_value();
    c.logprobs = std::move(ev.logprobs);
    if (ev.finished) c.finish_reason = ev.finish_reason;
    if (s.request.return_token_ids) {
      c.token_ids = std::move(ev.token_ids);
      if (s.first_chunk) c.prompt_token_ids = s.request.prompt_token_ids;
    }
    s.first_chunk = false;
    out += sse(completion_chunk(s.header, c));
  }
  if (ev.finished) {
    if (s.request.include_usage) {
      out += sse(usage_chunk(s.header, usage_json(ev.prompt_tokens, ev.completion_tokens)));
    }
    out += "data: [DONE]\n\n";
  }
  return out;
}

}  // namespace

HttpServer::HttpServer(LLMEngine& engine, ServerOptions options)
    : engine_(engine), options_(std::move(options)) {
  PAGEDKV_CHECK_ARG(!options_.served_model_name.empty(), "served_model_name must be set");
  PAGEDKV_CHECK_ARG(options_.max_queued_requests >= 0, "max_queued_requests must be >= 0, got {}",
                    options_.max_queued_requests);
  PAGEDKV_CHECK_ARG(options_.max_body_bytes >= 1, "max_body_bytes must be >= 1, got {}",
                    options_.max_body_bytes);
  limits_.served_model_name = options_.served_model_name;
  limits_.max_model_len = engine.max_model_len();
  limits_.vocab_size = engine.model_config().vocab_size;
  limits_.tokenizer = &engine.tokenizer();
  const int64_t max_in_flight = engine.config().max_num_seqs + options_.max_queued_requests;
  loop_ = std::make_unique<EngineLoop>(engine, EngineLoopOptions{max_in_flight});
  // Random per process so ids differ across restarts; the counter keeps them unique within.
  next_id_ = static_cast<int64_t>(std::random_device{}() & 0xffffff) << 32;

  http_ = std::make_unique<httplib::Server>();
  // A streaming request holds its HTTP thread: size the pool for every request in flight plus
  // a few for /health and /metrics.
  const auto threads = static_cast<size_t>(std::min<int64_t>(max_in_flight + 8, 512));
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  http_->set_keep_alive_timeout(2);
  install_routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  const int port = options_.port == 0
                       ? http_->bind_to_any_port(options_.host)
                       : (http_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  PAGEDKV_CHECK_STATE(port > 0, "cannot listen on {}:{}", options_.host, options_.port);
  return port;
}

void HttpServer::run() {
  if (!stopped_.load()) http_->listen_after_bind();
}

void HttpServer::stop() {
  if (stopped_.exchange(true)) return;
  loop_->stop();  // every in-flight request ends with "abort"; new ones get 503
  // Let the streams write their "abort" chunk and [DONE] before the connections close
  // (httplib ends a chunked response without its last chunk once it stops).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (active_streams_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  http_->stop();  // run() returns once the handlers have ended
}

void HttpServer::install_routes() {
  http_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler already wrote its error object
    ApiError e;
    e.status = res.status;
    if (res.status == 413) {
      e.status = 400;
      e.param = "body";
      e.message = "the request body is larger than --max-body-bytes";
    } else if (res.status == 404) {
      e.type = "not_found_error";
      e.message = "no such route";
    } else {
      e.message = fmt::format("HTTP error {}", res.status);
    }
    reply_error(res, e);
  });

  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool ok = loop_->healthy() && !stopped_.load();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ok" : "unavailable", "text/plain");
  });

  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_prometheus(loop_->metrics(), options_.served_model_name),
                    "text/plain; version=0.0.4");
  });

  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json model = {{"id", options_.served_model_name},
                  {"object", "model"},
                  {"created", unix_now()},
                  {"owned_by", "pagedkv"},
                  {"root", engine_.config().model},
                  {"max_model_len", limits_.max_model_len}};
    res.set_content(dump_json({{"object", "list"}, {"data", json::array({model})}}),
                    "application/json");
  });

  http_->Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    if (static_cast<int64_t>(req.body.size()) > options_.max_body_bytes) {
      reply_error(res, ApiError::invalid("body",
                                         "the request body is larger than "
                                         "--max-body-bytes"));
      return;
    }
    ParsedCompletion parsed = parse_completion_request(req.body, limits_);
    if (parsed.error) {
      reply_error(res, *parsed.error);
      return;
    }
    CompletionRequest& r = *parsed.request;
    CompletionHeader header{fmt::format("cmpl-{:x}", next_id_++), unix_now(), r.model};
    EngineJob job{header.id, r.prompt_token_ids, r.params, r.priority, r.cache_salt, r.stop};
    std::shared_ptr<RequestStream> stream = loop_->submit(std::move(job));
    if (!stream) {
      reply_error(res, overloaded(loop_->in_flight()));
      return;
    }
    // The first event says whether the engine took the request (or why not).
    StreamEvent first;
    while (stream->next(first, kPoll) == RequestStream::kTimeout) {
    }
    if (first.error) {
      reply_error(res, *first.error);
      return;
    }

    if (r.stream) {
      auto state = std::make_shared<StreamState>();
      state->stream = std::move(stream);
      state->header = std::move(header);
      state->request = std::move(r);
      state->pending = std::move(first);
      EngineLoop* loop = loop_.get();
      std::atomic<int64_t>* active = &active_streams_;
      ++active_streams_;
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [state](size_t, httplib::DataSink& sink) {
            StreamEvent ev;
            if (state->has_pending) {
              ev = std::move(state->pending);
              state->has_pending = false;
            } else {
              const auto st = state->stream->next(ev, kPoll);
              if (st == RequestStream::kClosed) return false;
              if (st == RequestStream::kTimeout) return sink.is_writable();
            }
            const bool last = ev.finished || ev.error.has_value();
            const std::string out = render_event(*state, ev);
            if (!out.empty() && !sink.write(out.data(), out.size())) return false;
            if (last) {
              state->done = true;
              sink.done();
            }
            return true;
          },
          [state, loop, active](bool) {
            // The client went away (or the write failed) before the end: free its pages.
            if (!state->done) loop->abort(state->header.id);
            --*active;
          });
      return;
    }

    CompletionChoice choice;
    choice.with_logprobs = r.params.logprobs.has_value();
    std::vector<TokenId> token_ids;
    StreamEvent ev = std::move(first);
    for (;;) {
      choice.text += ev.text;
      token_ids.insert(token_ids.end(), ev.token_ids.begin(), ev.token_ids.end());
      for (LogprobEntry& e : ev.logprobs) choice.logprobs.push_back(std::move(e));
      if (ev.error) {
        reply_error(res, *ev.error);
        return;
      }
      if (ev.finished) break;
      ev = StreamEvent{};
      while (stream->next(ev, kPoll) == RequestStream::kTimeout) {
      }
    }
    choice.finish_reason = ev.finish_reason;
    if (r.return_token_ids) {
      choice.token_ids = std::move(token_ids);
      choice.prompt_token_ids = r.prompt_token_ids;
    }
    res.set_content(dump_json(completion_response(
                        header, choice, usage_json(ev.prompt_tokens, ev.completion_tokens))),
                    "application/json");
  });
}

}  // namespace pagedkv
