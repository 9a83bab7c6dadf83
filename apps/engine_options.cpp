#include "engine_options.h"

#include "pagedkv/common/dtype.h"
#include "pagedkv/common/errors.h"

namespace pagedkv::cli {

void add_engine_options(CLI::App& cmd, EngineArgs& a) {
  cmd.add_option("--model", a.model, "Model directory (config.json + model.safetensors)")
      ->required();
  auto* pages = cmd.add_option("--num-pages", a.num_pages, "KV pool pages, the null page included");
  cmd.add_option("--kv-cache-bytes", a.kv_cache_bytes,
                 "KV pool size as a byte budget (default 1 GiB when neither is given)")
      ->excludes(pages);
  cmd.add_option("--page-size", a.page_size, "Tokens per KV page")->capture_default_str();
  cmd.add_option("--kv-cache-dtype", a.kv_cache_dtype,
                 "KV cache dtype: float32, bfloat16, float16, int8, fp8_e4m3")
      ->capture_default_str();
  cmd.add_option("--max-num-seqs", a.max_num_seqs, "Running requests at most")
      ->capture_default_str();
  cmd.add_option("--max-num-batched-tokens", a.max_num_batched_tokens, "Tokens per step at most")
      ->capture_default_str();
  cmd.add_option("--max-model-len", a.max_model_len,
                 "Tokens per request (default: the model's, at most 4096)");
  cmd.add_flag("--deterministic,!--no-deterministic", a.deterministic,
               "Batch-invariant matmuls (bitwise reproducible; default) or the BLAS library's");
  cmd.add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", a.enable_prefix_caching,
               "Reuse KV pages across requests sharing a prompt prefix (default on)");
  cmd.add_option("--threads", a.threads, "OpenMP threads (0: the process default)");
}

EngineConfig engine_config(const EngineArgs& a) {
  EngineConfig c;
  c.model = a.model;
  if (a.num_pages != 0) c.num_pages = a.num_pages;
  if (a.kv_cache_bytes != 0) c.kv_cache_bytes = a.kv_cache_bytes;
  c.page_size = a.page_size;
  c.kv_cache_dtype = parse_dtype(a.kv_cache_dtype);
  c.max_num_seqs = a.max_num_seqs;
  c.max_num_batched_tokens = a.max_num_batched_tokens;
  if (a.max_model_len != 0) c.max_model_len = a.max_model_len;
  c.deterministic = a.deterministic;
  c.enable_prefix_caching = a.enable_prefix_caching;
  c.num_threads = a.threads;
  c.validate();
  return c;
}

}  // namespace pagedkv::cli
