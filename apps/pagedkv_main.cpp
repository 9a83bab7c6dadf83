// pagedkv - command-line tool. A thin shell over the replay and model modules: parses
// arguments, runs the chosen command (apps/commands.h) and maps errors to exit codes.
//
//   pagedkv replay                                  built-in workload, a few capacities, table
//   pagedkv replay --trace conversation_trace.jsonl --num-pages 65536,262144,1048576 --json
//   pagedkv simulate --trace conversation_trace.jsonl --num-pages 262144 --policy priority
//   pagedkv make-model --preset tiny --seed 0 --dtype bf16 /tmp/tiny
//   pagedkv generate --model /tmp/tiny --prompt "Hello" --max-tokens 16
//   pagedkv bench --model /tmp/tiny --num-requests 64 --json
//   pagedkv serve --model /tmp/tiny --port 8000        OpenAI-compatible HTTP server
//   pagedkv version
//
// Exit codes: 0 success (and --help), 2 bad arguments or an unusable trace (one-line message
// on stderr), 1 an internal error.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "commands.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/errors.h"

#ifndef PAGEDKV_VERSION
#define PAGEDKV_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  using namespace pagedkv;
  CLI::App app{
      "pagedkv: KV-cache paging for LLM inference (page pool with prefix caching, "
      "KV-cache manager, paged attention).",
      "pagedkv"};
  app.require_subcommand(1);
  app.footer("Run `pagedkv <command> --help` for a command's options.");

  CLI::App* version = app.add_subcommand("version", "Print the version and the active SIMD ISA.");
  cli::ReplayArgs replay_args;
  CLI::App* replay = cli::add_replay_command(app, replay_args);
  cli::SimulateArgs simulate_args;
  CLI::App* simulate = cli::add_simulate_command(app, simulate_args);
  cli::MakeModelArgs make_model_args;
  CLI::App* make_model = cli::add_make_model_command(app, make_model_args);
  cli::GenerateArgs generate_args;
  CLI::App* generate = cli::add_generate_command(app, generate_args);
  cli::BenchArgs bench_args;
  CLI::App* bench = cli::add_bench_command(app, bench_args);
  cli::ServeArgs serve_args;
  CLI::App* serve = cli::add_serve_command(app, serve_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    fmt::print(stderr, "pagedkv: error: {} (run `pagedkv --help`)\n", e.what());
    return 2;
  }

  try {
    isa_cap_from_env();
    if (version->parsed()) {
      fmt::print("pagedkv {} (isa: {}, detected {})\n", PAGEDKV_VERSION, isa_name(active_isa()),
                 isa_name(detected_isa()));
      return 0;
    }
    if (replay->parsed()) return cli::run_replay(replay_args);
    if (simulate->parsed()) return cli::run_simulate(simulate_args);
    if (make_model->parsed()) return cli::run_make_model(make_model_args);
    if (generate->parsed()) return cli::run_generate(generate_args);
    if (bench->parsed()) return cli::run_bench(bench_args);
    if (serve->parsed()) return cli::run_serve(serve_args);
    return 2;  // unreachable: require_subcommand(1)
  } catch (const InternalError& e) {
    fmt::print(stderr, "pagedkv: internal error: {}\n", e.what());
    return 1;
  } catch (const Error& e) {
    fmt::print(stderr, "pagedkv: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "pagedkv: internal error: {}\n", e.what());
    return 1;
  }
}
