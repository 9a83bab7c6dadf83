#include "engine_options.h"

namespace pagedkv::cli {

void add_engine_options(CLI::App& cmd, EngineArgs& a) {
  cmd.add_option("--model", a.model, "Model directory (config.json + model.safetensors).")
      ->required();
  auto* pages = cmd.add_option("--num-pages", a.num_pages, "KV pages (the null page included).");
  cmd.add_option("--kv-cache-bytes", a.kv_cache_bytes, "KV cache byte budget (default 1 GiB).")
      ->excludes(pages);
  cmd.add_option("--page-size", a.page_size, "Tokens per KV page (default 16).");
  cmd.add_option("--kv-cache-dtype", a.kv_cache_dtype, "KV cache dtype: f32 or bf16.")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd.add_option("--max-num-seqs", a.max_num_seqs, "Requests per step at most (default 64).");
  cmd.add_option("--max-num-batched-tokens", a.max_num_batched_tokens,
                 "Tokens per step at most (default 2048).");
  cmd.add_option("--max-model-len", a.max_model_len, "Tokens per request at most.");
  cmd.add_flag("--deterministic,!--no-deterministic", a.deterministic,
               "Batch-invariant matmuls (default on).");
}

EngineConfig engine_config(const EngineArgs& a) {
  EngineConfig c;
  c.model = a.model;
  if (a.num_pages > 0) c.num_pages = a.num_pages;
  if (a.kv_cache_bytes > 0) c.kv_cache_bytes = a.kv_cache_bytes;
  c.page_size = a.page_size;
  c.kv_cache_dtype = a.kv_cache_dtype == "bf16" ? DType::kBFloat16 : DType::kFloat32;
  c.max_num_seqs = a.max_num_seqs;
  c.max_num_batched_tokens = a.max_num_batched_tokens;
  if (a.max_model_len > 0) c.max_model_len = a.max_model_len;
  c.deterministic = a.deterministic;
  c.validate();
  return c;
}

}  // namespace pagedkv::cli
