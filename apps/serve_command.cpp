// `pagedkv serve`: the OpenAI-compatible HTTP server (pagedkv::HttpServer) over an LLMEngine.
// SIGTERM / SIGINT stop accepting, abort the requests in flight and exit 0.
#include <fmt/format.h>
#include <pthread.h>

#include <csignal>
#include <filesystem>
#include <thread>

#include "commands.h"
#include "pagedkv/engine/llm_engine.h"
#include "pagedkv/server/http_server.h"

namespace pagedkv::cli {

namespace {

std::string default_served_name(const std::string& model_dir) {
  std::filesystem::path p(model_dir);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "dir/" -> "dir"
  return p.filename().string();
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeArgs& args) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model over HTTP (OpenAI /v1/completions, /v1/models, /health, /metrics).");
  add_engine_options(*cmd, args.engine);
  cmd->add_option("--host", args.host, "Address to listen on (default 127.0.0.1).");
  cmd->add_option("--port", args.port, "Port to listen on; 0 picks a free one (default 8000).")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--served-model-name", args.served_model_name,
                  "The model name clients send (default: the model directory's base name).");
  cmd->add_option("--max-queued-requests", args.max_queued_requests,
                  "Requests that may wait beyond --max-num-seqs; more get 503 (default 128).")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-body-bytes", args.max_body_bytes,
                  "Largest request body accepted; larger ones get 400 (default 1 MiB).")
      ->check(CLI::PositiveNumber);
  return cmd;
}

int run_serve(const ServeArgs& a) {
  // Signals are taken by one thread (sigwait), so block them before any other thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that went away must not kill the server

  LLMEngine engine(engine_config(a.engine));
  ServerOptions options;
  options.host = a.host;
  options.port = a.port;
  options.served_model_name =
      a.served_model_name.empty() ? default_served_name(a.engine.model) : a.served_model_name;
  options.max_queued_requests = a.max_queued_requests;
  options.max_body_bytes = a.max_body_bytes;
  HttpServer server(engine, options);
  const int port = server.bind();
  fmt::print(
      "pagedkv serve: model '{}' ({}), max_model_len {}, {} KV pages; listening on "
      "http://{}:{}\n",
      options.served_model_name, a.engine.model, engine.max_model_len(), engine.num_pages(), a.host,
      port);
  std::fflush(stdout);

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    server.stop();
  });
  server.run();
  server.stop();
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter when run() ended alone
  waiter.join();
  fmt::print("pagedkv serve: stopped\n");
  return 0;
}

}  // namespace pagedkv::cli
