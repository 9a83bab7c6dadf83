// apps/engine_options.h - the engine options `pagedkv generate`, `bench` (and `serve`) share:
// the model directory, the KV cache (pages or bytes, page size, dtype), the scheduler limits,
// the numeric mode and the thread count, turned into one pagedkv::EngineConfig.
//
// Example:
//   EngineArgs engine;
//   add_engine_options(*cmd, engine);          // --model, --num-pages, --kv-cache-dtype, ...
//   pagedkv::LLMEngine e(engine_config(engine));
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "pagedkv/engine/engine_config.h"

namespace pagedkv::cli {

struct EngineArgs {
  std::string model;
  int64_t num_pages = 0;       // 0: unset
  int64_t kv_cache_bytes = 0;  // 0: unset
  int32_t page_size = 16;
  std::string kv_cache_dtype = "float32";
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  int32_t max_model_len = 0;  // 0: the model's, capped
  bool deterministic = true;
  bool enable_prefix_caching = true;
  int32_t threads = 0;
};

void add_engine_options(CLI::App& cmd, EngineArgs& args);
// Throws InvalidArgument for a bad dtype name or both --num-pages and --kv-cache-bytes.
EngineConfig engine_config(const EngineArgs& args);

}  // namespace pagedkv::cli
