// pagedkv/model/model_config.h - the Hugging Face config.json of a Llama or Qwen2 model
// (rule 50): sizes, RoPE, normalisation and token ids.
//
// Example:
//   ModelConfig c = ModelConfig::load("/models/tiny");   // reads /models/tiny/config.json
//   c.head_dim;                                          // 64 (hidden_size / heads if absent)
//   c.q_size();                                          // num_attention_heads * head_dim
//   nlohmann::json j = c.to_json();                      // from_json(j) gives c back
//
// Fields follow config.json; defaults are the Hugging Face ones where a field is absent
// (num_key_value_heads = num_attention_heads, head_dim = hidden_size / num_attention_heads,
// rms_norm_eps 1e-6, rope_theta 10000, tie_word_embeddings false, attention_bias false for
// Llama and true for Qwen2, max_position_embeddings 2048, torch_dtype "float32").
// The architecture comes from "architectures" (or "model_type": llama / qwen2).
// Invariants of a validated config: every size is positive; num_key_value_heads divides
// num_attention_heads; head_dim is even (RoPE rotates halves, rule 53); token ids are in
// [0, vocab_size); rope_scaling is none, linear (factor > 0) or llama3 (factor >= 1,
// 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0).
// Errors: from_json / load / validate throw InvalidArgument naming the field, its value and
// the limit (load also when config.json cannot be read or is not JSON).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace pagedkv {

// config.json's "rope_scaling" (rule 53).
struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1;
  double low_freq_factor = 1;                    // llama3 only
  double high_freq_factor = 4;                   // llama3 only
  int32_t original_max_position_embeddings = 0;  // llama3 only

  friend bool operator==(const RopeScaling&, const RopeScaling&) = default;
};

inline constexpr std::string_view kLlamaArchitecture = "LlamaForCausalLM";
inline constexpr std::string_view kQwen2Architecture = "Qwen2ForCausalLM";

struct ModelConfig {
  std::string architecture = std::string(kLlamaArchitecture);  // or kQwen2Architecture
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int32_t num_hidden_layers = 0;
  int32_t num_attention_heads = 0;
  int32_t num_key_value_heads = 0;
  int32_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (always on for Qwen2)
  int64_t max_position_embeddings = 2048;
  int64_t bos_token_id = -1;          // -1: none
  std::vector<int64_t> eos_token_id;  // config.json has an int or a list
  std::string torch_dtype = "float32";

  // Parses config.json's object and validates it.
  static ModelConfig from_json(const nlohmann::json& j);
  // from_json of `model_dir`/config.json.
  static ModelConfig load(const std::string& model_dir);
  // The config.json object (Hugging Face names; from_json(to_json()) == *this).
  nlohmann::json to_json() const;
  // Throws InvalidArgument naming the first field that breaks an invariant above.
  void validate() const;

  bool is_qwen2() const { return architecture == kQwen2Architecture; }
  int64_t q_size() const { return int64_t{num_attention_heads} * head_dim; }
  int64_t kv_size() const { return int64_t{num_key_value_heads} * head_dim; }
  // Number of weights of the tensors of rule 50 (lm_head counted only when untied).
  int64_t num_parameters() const;

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

}  // namespace pagedkv
