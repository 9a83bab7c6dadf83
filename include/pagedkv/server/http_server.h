// pagedkv/server/http_server.h - pagedkv's OpenAI-compatible HTTP server (cpp-httplib): the
// routes over an EngineLoop. HTTP threads parse and validate, submit to the loop and stream
// what its RequestStream gives back; they never touch the engine.
//
// Example:
//   LLMEngine engine(config);
//   HttpServer server(engine, {.host = "127.0.0.1", .port = 8000, .served_model_name = "tiny"});
//   int port = server.bind();    // port 0 picks a free one
//   server.run();                // blocks until stop() (e.g. from a signal-handling thread)
//
// Routes:
//   POST /v1/completions  completions, non-streaming or server-sent events (completion_request.h)
//   GET  /v1/models       the served model
//   GET  /health          200 while the engine loop runs, 503 after it failed or stopped
//   GET  /metrics         Prometheus text (metrics.h), from the loop's last snapshot
//
// Status codes: 400 with an OpenAI error object for a bad request (the field named in
// "param"), including a body over max_body_bytes and a prompt the KV pool can never hold;
// 503 at once when max_queued_requests requests already wait beyond the max_num_seqs that can
// run; 500 when the engine failed.
// A streaming client that disconnects has its request aborted (pages freed within a step).
// stop(): refuses new requests (503), aborts in-flight ones (their streams end with "abort" and
// [DONE], given up to 5 s to be written), closes the listener and makes run() return; safe to
// call from any thread, more than once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "pagedkv/engine/llm_engine.h"
#include "pagedkv/server/engine_loop.h"

namespace httplib {
class Server;
}

namespace pagedkv {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string served_model_name;  // must be set
  int64_t max_queued_requests = 128;
  int64_t max_body_bytes = int64_t{1} << 20;
};

class HttpServer {
 public:
  // Takes the engine over (the loop thread starts here). Throws InvalidArgument for an empty
  // served_model_name, max_queued_requests < 0 or max_body_bytes < 1.
  HttpServer(LLMEngine& engine, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port and returns the port. Throws StateError when it cannot bind.
  int bind();
  // Serves until stop(); bind() first.
  void run();
  void stop();

 private:
  void install_routes();

  LLMEngine& engine_;
  ServerOptions options_;
  CompletionLimits limits_;
  std::unique_ptr<EngineLoop> loop_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<int64_t> next_id_{0};
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> active_streams_{0};  // streaming responses not yet released
};

}  // namespace pagedkv
