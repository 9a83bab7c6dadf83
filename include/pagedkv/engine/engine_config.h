// pagedkv/engine/engine_config.h - what an LLMEngine is built from: the model directory, the KV
// cache (dtype, size by page count or byte budget, page size), the scheduler limits, and the
// numeric mode.
//
// Example:
//   pagedkv::EngineConfig config;
//   config.model = "/tmp/tiny";              // written by `pagedkv make-model --preset tiny`
//   config.num_pages = 256;                  // or config.kv_cache_bytes = 64 << 20
//   config.kv_cache_dtype = pagedkv::DType::kBFloat16;
//   pagedkv::LLMEngine engine(config);
//
// Invariants (validate()): page_size, max_num_seqs, max_num_batched_tokens > 0; at most one of
// num_pages (>= 2) and kv_cache_bytes (> 0); max_model_len unset or > 0; num_threads >= 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "pagedkv/common/dtype.h"
#include "pagedkv/scheduler/scheduler_config.h"

namespace pagedkv {

struct EngineConfig {
  std::string model;  // a model directory (rule 50)
  DType kv_cache_dtype = DType::kFloat32;
  // KV pool size: a page count (the null page included), or a byte budget divided by the bytes
  // one page takes over all layers; neither: kDefaultKvCacheBytes.
  std::optional<int64_t> num_pages;
  std::optional<int64_t> kv_cache_bytes;
  int32_t page_size = 16;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  // Tokens per request; unset: min(max_position_embeddings, kDefaultMaxModelLen).
  std::optional<int32_t> max_model_len;
  bool enable_prefix_caching = true;
  bool enable_chunked_prefill = true;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  // Batch-invariant matmuls (rule 49 bitwise); off: the BLAS library's matmuls.
  bool deterministic = true;
  // OpenMP threads for the forward pass; 0 leaves the process setting alone.
  int32_t num_threads = 0;

  static constexpr int64_t kDefaultKvCacheBytes = int64_t{1} << 30;
  static constexpr int32_t kDefaultMaxModelLen = 4096;

  // Throws InvalidArgument naming the first bad field and its limit.
  void validate() const;
};

}  // namespace pagedkv
