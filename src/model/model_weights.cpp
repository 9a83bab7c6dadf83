#include "pagedkv/model/model_weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "pagedkv/common/dtype_convert.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

using json = nlohmann::json;
using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// The shard files named by model.safetensors.index.json, and which shard holds each tensor.
struct ShardIndex {
  std::vector<std::string> files;                 // in first-mention order
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file
};

ShardIndex read_index(const std::string& path) {
  std::ifstream in(path);
  PAGEDKV_CHECK_ARG(in.good(), "cannot read '{}'", path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    detail::fail_format_error("'{}' is not valid JSON: {}", path, e.what());
  }
  PAGEDKV_CHECK_FORMAT(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                       "'{}' has no \"weight_map\" object", path);
  ShardIndex index;
  std::set<std::string> seen;
  for (const auto& [name, file] : j["weight_map"].items()) {
    PAGEDKV_CHECK_FORMAT(file.is_string(),
                         "'{}': weight_map entry of tensor '{}' must be a file "
                         "name, got {}",
                         path, name, file.dump());
    const auto f = file.get<std::string>();
    PAGEDKV_CHECK_FORMAT(!f.empty() && f.find('/') == std::string::npos,
                         "'{}': tensor '{}' maps to '{}', not a file in the model directory", path,
                         name, f);
    if (seen.insert(f).second) index.files.push_back(f);
    index.weight_map.emplace(name, f);
  }
  return index;
}

}  // namespace

// Builds a ModelWeights step by step; the object is handed out only when every tensor is set.
class ModelWeightsLoader {
 public:
  explicit ModelWeightsLoader(std::string dir) : dir_(std::move(dir)) {}

  ModelWeights load() {
    w_.config_ = ModelConfig::load(dir_);
    open_files();
    const ModelConfig& c = w_.config_;
    const int64_t v = c.vocab_size, h = c.hidden_size, i = c.intermediate_size;
    const int64_t q = c.q_size(), kv = c.kv_size();
    w_.embed_tokens_ = get("model.embed_tokens.weight", {v, h});
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = fmt::format("model.layers.{}.", l);
      LayerWeights lw;
      lw.input_layernorm = get(p + "input_layernorm.weight", {h});
      lw.q_proj = get(p + "self_attn.q_proj.weight", {q, h});
      lw.k_proj = get(p + "self_attn.k_proj.weight", {kv, h});
      lw.v_proj = get(p + "self_attn.v_proj.weight", {kv, h});
      lw.o_proj = get(p + "self_attn.o_proj.weight", {h, q});
      if (c.attention_bias) {
        lw.q_bias = get(p + "self_attn.q_proj.bias", {q});
        lw.k_bias = get(p + "self_attn.k_proj.bias", {kv});
        lw.v_bias = get(p + "self_attn.v_proj.bias", {kv});
      }
      lw.post_attention_layernorm = get(p + "post_attention_layernorm.weight", {h});
      lw.gate_proj = get(p + "mlp.gate_proj.weight", {i, h});
      lw.up_proj = get(p + "mlp.up_proj.weight", {i, h});
      lw.down_proj = get(p + "mlp.down_proj.weight", {h, i});
      w_.layers_.push_back(lw);
    }
    w_.norm_ = get("model.norm.weight", {h});
    if (c.tie_word_embeddings) {
      w_.lm_head_ = w_.embed_tokens_;  // a stored lm_head.weight is ignored (rule 50)
    } else {
      PAGEDKV_CHECK_FORMAT(tensors_.count("lm_head.weight") != 0,
                           "model '{}': tensor 'lm_head.weight' (expected shape [{}, {}]) is "
                           "missing and tie_word_embeddings is false",
                           dir_, v, h);
      w_.lm_head_ = get("lm_head.weight", {v, h});
    }
    return std::move(w_);
  }

 private:
  void open_files() {
    namespace fs = std::filesystem;
    const std::string single = dir_ + "/model.safetensors";
    const std::string index_path = dir_ + "/model.safetensors.index.json";
    if (fs::exists(index_path) && !fs::exists(single)) {
      const ShardIndex index = read_index(index_path);
      for (const std::string& f : index.files) add_file(dir_ + "/" + f);
      for (const auto& [name, file] : index.weight_map) {
        auto it = tensors_.find(name);
        PAGEDKV_CHECK_FORMAT(it != tensors_.end() && it->second.second == dir_ + "/" + file,
                             "'{}' places tensor '{}' in '{}', which does not hold it", index_path,
                             name, file);
      }
    } else {
      PAGEDKV_CHECK_ARG(fs::exists(single),
                        "model directory '{}' has neither model.safetensors "
                        "nor model.safetensors.index.json",
                        dir_);
      add_file(single);
    }
  }

  void add_file(const std::string& path) {
    w_.files_.push_back(SafetensorsFile::open(path));
    const SafetensorsFile& f = w_.files_.back();
    for (const TensorView& t : f.tensors()) {
      auto [it, fresh] = tensors_.emplace(t.name, std::make_pair(&t, path));
      PAGEDKV_CHECK_FORMAT(fresh, "model '{}': tensor '{}' is stored twice, in '{}' and '{}'", dir_,
                           t.name, it->second.second, path);
    }
  }

  // The float32 data of tensor `name`, checked against `shape`.
  const float* get(const std::string& name, const Shape& shape) {
    auto it = tensors_.find(name);
    PAGEDKV_CHECK_FORMAT(it != tensors_.end(),
                         "model '{}': tensor '{}' (expected shape {}) is missing", dir_, name,
                         shape_str(shape));
    const TensorView& t = *it->second.first;
    PAGEDKV_CHECK_FORMAT(t.shape == shape,
                         "model '{}': tensor '{}' in '{}' has shape {}, but the config implies {}",
                         dir_, name, it->second.second, shape_str(t.shape), shape_str(shape));
    const auto* bytes = t.data.data();
    if (t.dtype == DType::kFloat32 && reinterpret_cast<uintptr_t>(bytes) % alignof(float) == 0) {
      return reinterpret_cast<const float*>(bytes);
    }
    return convert(t);
  }

  const float* convert(const TensorView& t) {
    const int64_t n = t.numel();
    auto buf = std::make_unique<float[]>(static_cast<size_t>(n));
    const std::byte* src = t.data.data();
    switch (t.dtype) {
      case DType::kFloat32:  // unaligned in the file
        std::memcpy(buf.get(), src, static_cast<size_t>(n) * sizeof(float));
        break;
      case DType::kBFloat16:
        for (int64_t k = 0; k < n; ++k) buf[k] = bf16_to_float(load_u16(src + 2 * k));
        break;
      case DType::kFloat16:
        for (int64_t k = 0; k < n; ++k) {
          buf[k] = detail::fp16_to_float_inline(load_u16(src + 2 * k));
        }
        break;
      default:
        PAGEDKV_ASSERT(false, "safetensors dtype {} slipped past open()", dtype_name(t.dtype));
    }
    w_.owned_.push_back(std::move(buf));
    w_.owned_sizes_.push_back(n);
    return w_.owned_.back().get();
  }

  static uint16_t load_u16(const std::byte* p) {
    return static_cast<uint16_t>(static_cast<uint16_t>(p[0]) | (static_cast<uint16_t>(p[1]) << 8));
  }

  std::string dir_;
  ModelWeights w_;
  // name -> (view inside w_.files_, file path); views stay put: SafetensorsFile moves keep them.
  std::map<std::string, std::pair<const TensorView*, std::string>> tensors_;
};

ModelWeights ModelWeights::load(const std::string& model_dir) {
  return ModelWeightsLoader(model_dir).load();
}

const LayerWeights& ModelWeights::layer(int i) const {
  PAGEDKV_CHECK_RANGE(i >= 0 && static_cast<size_t>(i) < layers_.size(),
                      "layer {} out of range [0, {})", i, layers_.size());
  return layers_[static_cast<size_t>(i)];
}

int64_t ModelWeights::converted_bytes() const {
  return std::accumulate(owned_sizes_.begin(), owned_sizes_.end(), int64_t{0}) *
         static_cast<int64_t>(sizeof(float));
}

}  // namespace pagedkv
