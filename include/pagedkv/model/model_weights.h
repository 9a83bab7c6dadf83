// pagedkv/model/model_weights.h - the weights of a Llama / Qwen2 model directory (rule 50),
// loaded as row-major float32 arrays.
//
// Example:
//   ModelWeights w = ModelWeights::load("/models/tiny");  // config.json + model.safetensors
//   const ModelConfig& c = w.config();
//   const float* wq = w.layer(0).q_proj;                   // [q_size, hidden]
//   const float* head = w.lm_head();                       // [vocab, hidden]
//
// A model directory holds config.json and either model.safetensors or
// model.safetensors.index.json ({"weight_map": {tensor name: shard file}}) with its shards.
// F32 tensors are used in place from the read-only file mappings (kept alive by this object);
// F16 / BF16 tensors (and F32 ones not 4-byte aligned in the file) are converted to float32
// buffers this object owns. Tensors outside the schema (e.g. rotary inv_freq) are ignored.
//
// Invariants: every pointer below is non-null (biases only with attention_bias) and points to
// exactly the shape the config implies; lm_head() == embed_tokens() when tie_word_embeddings
// (an lm_head.weight in the files is then ignored). Pointers stay valid while the object lives,
// moves included.
// Errors: load returns a complete object or throws: InvalidArgument for an unreadable
// directory or config (ModelConfig::load), FormatError naming the file and tensor for a bad
// safetensors file, a missing tensor (named with its expected shape), a tensor whose shape
// differs from the config (expected and actual shape), a missing lm_head.weight with an untied
// head, or an index that names a shard without the tensor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagedkv/model/model_config.h"
#include "pagedkv/model/safetensors.h"

namespace pagedkv {

// One decoder layer; all row-major float32, projections in the Hugging Face [out, in] layout
// (H = hidden, Q = q_size, K = kv_size, I = intermediate).
struct LayerWeights {
  const float* input_layernorm = nullptr;           // [H]
  const float* q_proj = nullptr;                    // [Q, H]
  const float* k_proj = nullptr;                    // [K, H]
  const float* v_proj = nullptr;                    // [K, H]
  const float* o_proj = nullptr;                    // [H, Q]
  const float* q_bias = nullptr;                    // [Q] (nullptr without attention_bias)
  const float* k_bias = nullptr;                    // [K] (nullptr without attention_bias)
  const float* v_bias = nullptr;                    // [K] (nullptr without attention_bias)
  const float* post_attention_layernorm = nullptr;  // [H]
  const float* gate_proj = nullptr;                 // [I, H]
  const float* up_proj = nullptr;                   // [I, H]
  const float* down_proj = nullptr;                 // [H, I]
};

class ModelWeights {
 public:
  static ModelWeights load(const std::string& model_dir);

  ModelWeights(ModelWeights&&) noexcept = default;
  ModelWeights& operator=(ModelWeights&&) noexcept = default;
  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;
  ~ModelWeights() = default;

  const ModelConfig& config() const { return config_; }
  const float* embed_tokens() const { return embed_tokens_; }  // [V, H]
  const LayerWeights& layer(int i) const;                      // OutOfRange outside [0, layers)
  const float* norm() const { return norm_; }                  // [H]
  const float* lm_head() const { return lm_head_; }            // [V, H]; == embed when tied
  // Weights of the schema tensors (lm_head only when untied): config().num_parameters().
  int64_t num_parameters() const { return config_.num_parameters(); }
  // Bytes of float32 buffers converted from F16 / BF16 (0 for an all-F32 model).
  int64_t converted_bytes() const;

 private:
  ModelWeights() = default;
  friend class ModelWeightsLoader;

  ModelConfig config_;
  std::vector<SafetensorsFile> files_;           // the mappings F32 pointers point into
  std::vector<std::unique_ptr<float[]>> owned_;  // converted tensors
  std::vector<int64_t> owned_sizes_;             // elements of each owned_ buffer
  const float* embed_tokens_ = nullptr;
  std::vector<LayerWeights> layers_;
  const float* norm_ = nullptr;
  const float* lm_head_ = nullptr;
};

}  // namespace pagedkv
