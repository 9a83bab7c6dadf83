// apps/commands.h - the `pagedkv` subcommands. Each registers its options on the CLI11 app
// (filling an Args struct) and runs from that struct; all policy lives in the library.
//
// Example (what main does):
//   ReplayArgs args;
//   CLI::App* cmd = add_replay_command(app, args);
//   app.parse(argc, argv);
//   if (cmd->parsed()) return run_replay(args);
//
// run_* throw pagedkv errors for bad input (main maps them to exit code 2).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "cli_util.h"
#include "engine_options.h"

namespace pagedkv::cli {

struct ReplayArgs {
  TraceArgs trace;
  int32_t page_size = 16;
  std::vector<int32_t> num_pages;  // empty: the defaults of the footer
  bool json = false;
  int64_t limit = -1;
  bool progress = false;
  bool quiet = false;
};

struct SimulateArgs {
  TraceArgs trace;
  int32_t page_size = 16;
  std::vector<int32_t> num_pages;
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 8192;
  int32_t max_model_len = 0;  // 0: from the trace
  std::string policy = "fcfs";
  int32_t default_output_tokens = 256;
  double step_ms = 0, prefill_ms_per_1k_tokens = 0, decode_ms_per_request = 0,
         kv_ms_per_1k_tokens = 0;  // set from CostModel's defaults when registered
  bool json = false;
  int64_t limit = -1;
  bool progress = false;
  bool quiet = false;
};

struct MakeModelArgs {
  std::string preset = "tiny";
  uint64_t seed = 0;
  std::string dtype = "f32";
  std::string out_dir;
};

struct GenerateArgs {
  EngineArgs engine;
  std::string prompt;
  std::string prompt_ids;  // "1,2,3"
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  int64_t seed = -1;  // < 0: unset
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  int32_t logprobs = 0;
  bool json = false;
};

struct BenchArgs {
  EngineArgs engine;
  TraceArgs trace;
  int32_t num_requests = 64;
  int32_t prompt_len = 256;
  int32_t shared_prefix_len = 192;
  int32_t output_len = 64;
  uint64_t seed = 0;
  bool json = false;
  bool progress = false;
};

struct ServeArgs {
  EngineArgs engine;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string served_model_name;  // empty: the model directory's base name
  int64_t max_queued_requests = 128;
  int64_t max_body_bytes = int64_t{1} << 20;
};

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args);
int run_replay(const ReplayArgs& args);

CLI::App* add_simulate_command(CLI::App& app, SimulateArgs& args);
int run_simulate(const SimulateArgs& args);

CLI::App* add_make_model_command(CLI::App& app, MakeModelArgs& args);
int run_make_model(const MakeModelArgs& args);

CLI::App* add_generate_command(CLI::App& app, GenerateArgs& args);
int run_generate(const GenerateArgs& args);

CLI::App* add_bench_command(CLI::App& app, BenchArgs& args);
int run_bench(const BenchArgs& args);

CLI::App* add_serve_command(CLI::App& app, ServeArgs& args);
int run_serve(const ServeArgs& args);

}  // namespace pagedkv::cli
