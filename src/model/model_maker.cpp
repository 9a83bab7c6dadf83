#include "pagedkv/model/model_maker.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "pagedkv/common/errors.h"
#include "pagedkv/common/splitmix.h"
#include "pagedkv/model/safetensors.h"

namespace pagedkv {

namespace {

// How one tensor's elements are drawn: value = mean + stddev * N(0, 1).
struct Draw {
  double mean = 0;
  double stddev = 1;
};

struct PlannedTensor {
  TensorSpec spec;
  Draw draw;
};

// The tensors of rule 50 in file order, each with its distribution (rule 56).
std::vector<PlannedTensor> plan_tensors(const ModelConfig& c, DType dtype) {
  const int64_t v = c.vocab_size, h = c.hidden_size, i = c.intermediate_size;
  const int64_t q = c.q_size(), kv = c.kv_size();
  std::vector<PlannedTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, Draw draw) {
    out.push_back({{std::move(name), dtype, std::move(shape)}, draw});
  };
  auto proj = [](int64_t fan_in) { return Draw{0, 1 / std::sqrt(static_cast<double>(fan_in))}; };
  const Draw norm{1, 0.1};
  const Draw bias{0, 0.02};
  add("model.embed_tokens.weight", {v, h},
      c.tie_word_embeddings ? proj(h) : Draw{0, 1});  // tied: N(0, 1/hidden)
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm.weight", {h}, norm);
    add(p + "self_attn.q_proj.weight", {q, h}, proj(h));
    add(p + "self_attn.k_proj.weight", {kv, h}, proj(h));
    add(p + "self_attn.v_proj.weight", {kv, h}, proj(h));
    if (c.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q}, bias);
      add(p + "self_attn.k_proj.bias", {kv}, bias);
      add(p + "self_attn.v_proj.bias", {kv}, bias);
    }
    add(p + "self_attn.o_proj.weight", {h, q}, proj(q));
    add(p + "post_attention_layernorm.weight", {h}, norm);
    add(p + "mlp.gate_proj.weight", {i, h}, proj(h));
    add(p + "mlp.up_proj.weight", {i, h}, proj(h));
    add(p + "mlp.down_proj.weight", {h, i}, proj(i));
  }
  add("model.norm.weight", {h}, norm);
  if (!c.tie_word_embeddings) add("lm_head.weight", {v, h}, proj(h));
  return out;
}

// Fills `out` with tensor `tensor`'s elements. Each element depends only on (seed, tensor,
// index), so the static split across threads cannot change a byte.
void fill_tensor(uint64_t seed, uint64_t tensor, const Draw& draw, DType dtype,
                 std::span<std::byte> out) {
  const int64_t n = static_cast<int64_t>(out.size() / dtype_size(dtype));
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int64_t k = 0; k < n; ++k) {
    const auto index = static_cast<uint64_t>(k);
    const auto value =
        static_cast<float>(draw.mean + draw.stddev * model_maker_normal(seed, tensor, index));
    if (dtype == DType::kBFloat16) {
      const uint16_t b = float_to_bf16(value);
      bytes[2 * k] = static_cast<unsigned char>(b & 0xff);
      bytes[2 * k + 1] = static_cast<unsigned char>(b >> 8);
    } else {
      const auto u = std::bit_cast<uint32_t>(value);
      for (int j = 0; j < 4; ++j) bytes[4 * k + j] = static_cast<unsigned char>(u >> (8 * j));
    }
  }
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PAGEDKV_CHECK_ARG(out.good(), "cannot create '{}'", tmp);
    out << text;
    out.close();
    PAGEDKV_CHECK_ARG(!out.fail(), "cannot write '{}'", tmp);
  }
  PAGEDKV_CHECK_ARG(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '{}' to '{}'", tmp,
                    path);
}

ModelConfig tiny_llama() {
  ModelConfig c;
  c.architecture = std::string(kLlamaArchitecture);
  c.vocab_size = 384;
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.rope_scaling = {RopeScaling::Type::kLlama3, 8, 1, 4, 64};
  c.tie_word_embeddings = false;
  c.attention_bias = false;
  c.max_position_embeddings = 2048;
  c.bos_token_id = 256;
  c.eos_token_id = {257};
  return c;
}

ModelConfig tiny_qwen2() {
  ModelConfig c = tiny_llama();
  c.architecture = std::string(kQwen2Architecture);
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 1e6;
  c.rope_scaling = {};
  return c;
}

ModelConfig smollm_135m() {
  ModelConfig c = tiny_llama();
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 30;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  c.rope_scaling = {};
  c.tie_word_embeddings = true;
  return c;
}

ModelConfig llama_3_2_1b() {
  ModelConfig c = tiny_llama();
  c.vocab_size = 128256;
  c.hidden_size = 2048;
  c.intermediate_size = 8192;
  c.num_hidden_layers = 16;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  c.rope_theta = 500000;
  c.rope_scaling = {RopeScaling::Type::kLlama3, 32, 1, 4, 8192};
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 131072;
  return c;
}

}  // namespace

double model_maker_normal(uint64_t seed, uint64_t tensor, uint64_t index) {
  // A splitmix64 stream keyed by (seed, tensor), read at positions 2 * index + 1 and + 2.
  const uint64_t key = splitmix64_mix(splitmix64_mix(seed + kSplitmix64Gamma) ^
                                      (tensor * kSplitmix64Gamma + 0x632be59bd9b4e019ull));
  const uint64_t h1 = splitmix64_mix(key + (2 * index + 1) * kSplitmix64Gamma);
  const uint64_t h2 = splitmix64_mix(key + (2 * index + 2) * kSplitmix64Gamma);
  const double u1 = static_cast<double>((h1 >> 11) + 1) * 0x1p-53;  // (0, 1]: log is finite
  const double u2 = static_cast<double>(h2 >> 11) * 0x1p-53;        // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::vector<std::string> model_presets() {
  return {"tiny", "tiny-qwen2", "smollm-135m", "llama-3.2-1b"};
}

ModelConfig preset_config(std::string_view name) {
  if (name == "tiny") return tiny_llama();
  if (name == "tiny-qwen2") return tiny_qwen2();
  if (name == "smollm-135m") return smollm_135m();
  if (name == "llama-3.2-1b") return llama_3_2_1b();
  detail::fail_invalid_argument("unknown model preset '{}' (presets: {})", name,
                                fmt::join(model_presets(), ", "));
}

void make_model(const ModelConfig& config, uint64_t seed, DType dtype, const std::string& out_dir) {
  config.validate();
  PAGEDKV_CHECK_ARG(dtype == DType::kFloat32 || dtype == DType::kBFloat16,
                    "make_model writes float32 or bfloat16 weights, not {}", dtype_name(dtype));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  PAGEDKV_CHECK_ARG(!ec, "cannot create directory '{}': {}", out_dir, ec.message());

  ModelConfig written = config;
  written.torch_dtype = std::string(dtype_name(dtype));
  const std::vector<PlannedTensor> plan = plan_tensors(written, dtype);
  std::vector<TensorSpec> specs;
  specs.reserve(plan.size());
  for (const PlannedTensor& t : plan) specs.push_back(t.spec);
  write_safetensors(
      out_dir + "/model.safetensors", std::span<const TensorSpec>(specs),
      [&](size_t i, std::span<std::byte> out) { fill_tensor(seed, i, plan[i].draw, dtype, out); },
      {{"format", "pt"}});
  write_text_file(out_dir + "/config.json", written.to_json().dump(2) + "\n");
}

}  // namespace pagedkv
