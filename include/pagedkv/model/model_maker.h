// pagedkv/model/model_maker.h - deterministic random models for tests and benchmarks: a preset
// config (or any valid one) plus a seed give the same config.json and model.safetensors bytes
// on every machine, whatever the thread count.
//
// Example:
//   ModelConfig c = preset_config("tiny");                  // ~3.3M parameters
//   make_model(c, /*seed=*/0, DType::kFloat32, "/tmp/tiny"); // config.json + model.safetensors
//   ModelWeights w = ModelWeights::load("/tmp/tiny");
//
// Presets: "tiny" (Llama, untied head, llama3 RoPE scaling), "tiny-qwen2" (Qwen2: q/k/v
// biases, tied head), "smollm-135m" and "llama-3.2-1b" (the shapes of those models; random
// weights). All use bos 256, eos 257.
//
// Weights (rule 56): embeddings N(0, 1), or N(0, 1/hidden) with a tied head; projections
// N(0, 1/fan_in) with fan_in the `in` dimension; q/k/v biases N(0, 0.02^2) (small next to the
// projected activations, whose standard deviation is about 1); norm weights 1 + 0.1 N(0, 1).
// Each element is a pure function of (seed, tensor index in file order, element index):
// a splitmix64 hash of the three gives two uniform doubles, Box-Muller (std::log, std::sqrt,
// std::cos in double) gives a normal, which is scaled in double and rounded to float32 (then
// to bfloat16, ties to even, when dtype is kBFloat16).
// Errors: preset_config of an unknown name is InvalidArgument listing the presets; make_model
// throws InvalidArgument for an invalid config, a dtype other than f32 / bf16, or an output
// directory it cannot create or write. config.json is written last, so a directory with one
// holds a complete model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/common/dtype.h"
#include "pagedkv/model/model_config.h"

namespace pagedkv {

// The names preset_config accepts, in a fixed order.
std::vector<std::string> model_presets();
ModelConfig preset_config(std::string_view name);

// Writes `out_dir`/config.json (pretty-printed, keys sorted) and `out_dir`/model.safetensors
// (metadata {"format": "pt"}); creates out_dir if needed. torch_dtype in the written config is
// "float32" or "bfloat16" to match `dtype`.
void make_model(const ModelConfig& config, uint64_t seed, DType dtype, const std::string& out_dir);

// The normal deviate that make_model draws for element `index` of tensor `tensor` (before
// scaling): exposed for tests.
double model_maker_normal(uint64_t seed, uint64_t tensor, uint64_t index);

}  // namespace pagedkv
