// apps/engine_options.h - the engine options the model-running commands share (EngineArgs),
// their CLI11 registration and the EngineConfig they make.
//
// Example:
//   EngineArgs args;
//   add_engine_options(*cmd, args);      // --model, --num-pages, --kv-cache-bytes, ...
//   app.parse(argc, argv);
//   LLMEngine engine(engine_config(args));
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "pagedkv/engine/engine_config.h"

namespace pagedkv::cli {

struct EngineArgs {
  std::string model;
  int64_t num_pages = 0;       // 0: from kv_cache_bytes or the default budget
  int64_t kv_cache_bytes = 0;  // 0: unset
  int32_t page_size = 16;
  std::string kv_cache_dtype = "f32";
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  int32_t max_model_len = 0;  // 0: from the model
  bool deterministic = true;
};

void add_engine_options(CLI::App& cmd, EngineArgs& args);
// Throws InvalidArgument (EngineConfig::validate) for a bad combination.
EngineConfig engine_config(const EngineArgs& args);

}  // namespace pagedkv::cli
