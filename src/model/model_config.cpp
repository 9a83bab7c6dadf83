#include "pagedkv/model/model_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

using json = nlohmann::json;

const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

int64_t get_int(const json& j, const char* name, std::optional<int64_t> fallback) {
  const json* v = field(j, name);
  if (v == nullptr) {
    PAGEDKV_CHECK_ARG(fallback.has_value(), "config.json: required field \"{}\" is missing", name);
    return *fallback;
  }
  PAGEDKV_CHECK_ARG(v->is_number_integer(), "config.json: \"{}\" must be an integer, got {}", name,
                    v->dump());
  return v->get<int64_t>();
}

int32_t get_int32(const json& j, const char* name, std::optional<int64_t> fallback) {
  const int64_t v = get_int(j, name, fallback);
  PAGEDKV_CHECK_ARG(
      v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
      "config.json: \"{}\" = {} does not fit in 32 bits", name, v);
  return static_cast<int32_t>(v);
}

double get_double(const json& j, const char* name, double fallback) {
  const json* v = field(j, name);
  if (v == nullptr) return fallback;
  PAGEDKV_CHECK_ARG(v->is_number(), "config.json: \"{}\" must be a number, got {}", name,
                    v->dump());
  return v->get<double>();
}

bool get_bool(const json& j, const char* name, bool fallback) {
  const json* v = field(j, name);
  if (v == nullptr) return fallback;
  PAGEDKV_CHECK_ARG(v->is_boolean(), "config.json: \"{}\" must be true or false, got {}", name,
                    v->dump());
  return v->get<bool>();
}

std::string architecture_of(const json& j) {
  if (const json* a = field(j, "architectures")) {
    PAGEDKV_CHECK_ARG(a->is_array() && a->size() == 1 && (*a)[0].is_string(),
                      "config.json: \"architectures\" must be a list of one name, got {}",
                      a->dump());
    return (*a)[0].get<std::string>();
  }
  const json* t = field(j, "model_type");
  PAGEDKV_CHECK_ARG(t != nullptr && t->is_string(),
                    "config.json: neither \"architectures\" nor \"model_type\" is given");
  if (*t == "llama") return std::string(kLlamaArchitecture);
  if (*t == "qwen2") return std::string(kQwen2Architecture);
  detail::fail_invalid_argument("config.json: model_type {} is not supported (llama, qwen2)",
                                t->dump());
}

RopeScaling rope_scaling_of(const json& j) {
  RopeScaling r;
  const json* s = field(j, "rope_scaling");
  if (s == nullptr) return r;
  PAGEDKV_CHECK_ARG(s->is_object(),
                    "config.json: \"rope_scaling\" must be an object or null, "
                    "got {}",
                    s->dump());
  const json* type = field(*s, "rope_type");
  if (type == nullptr) type = field(*s, "type");  // the older spelling
  PAGEDKV_CHECK_ARG(type != nullptr && type->is_string(),
                    "config.json: \"rope_scaling\" has no \"rope_type\": {}", s->dump());
  const auto name = type->get<std::string>();
  if (name == "default") return r;
  if (name == "linear") {
    r.type = RopeScaling::Type::kLinear;
  } else if (name == "llama3") {
    r.type = RopeScaling::Type::kLlama3;
    r.low_freq_factor = get_double(*s, "low_freq_factor", 1);
    r.high_freq_factor = get_double(*s, "high_freq_factor", 4);
    r.original_max_position_embeddings =
        get_int32(*s, "original_max_position_embeddings", std::nullopt);
  } else {
    detail::fail_invalid_argument(
        "config.json: rope_scaling type '{}' is not supported (default, linear, llama3)", name);
  }
  PAGEDKV_CHECK_ARG(field(*s, "factor") != nullptr,
                    "config.json: rope_scaling '{}' needs a \"factor\"", name);
  r.factor = get_double(*s, "factor", 1);
  return r;
}

std::vector<int64_t> eos_of(const json& j) {
  const json* e = field(j, "eos_token_id");
  if (e == nullptr) return {};
  if (e->is_number_integer()) return {e->get<int64_t>()};
  PAGEDKV_CHECK_ARG(e->is_array(),
                    "config.json: \"eos_token_id\" must be an integer or a list, "
                    "got {}",
                    e->dump());
  std::vector<int64_t> out;
  for (const json& v : *e) {
    PAGEDKV_CHECK_ARG(v.is_number_integer(),
                      "config.json: \"eos_token_id\" must hold integers, "
                      "got {}",
                      e->dump());
    out.push_back(v.get<int64_t>());
  }
  return out;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j) {
  PAGEDKV_CHECK_ARG(j.is_object(), "config.json must be a JSON object, got {}", j.type_name());
  ModelConfig c;
  c.architecture = architecture_of(j);
  PAGEDKV_CHECK_ARG(c.architecture == kLlamaArchitecture || c.architecture == kQwen2Architecture,
                    "config.json: architecture '{}' is not supported ({} or {})", c.architecture,
                    kLlamaArchitecture, kQwen2Architecture);
  c.vocab_size = get_int(j, "vocab_size", std::nullopt);
  c.hidden_size = get_int(j, "hidden_size", std::nullopt);
  c.intermediate_size = get_int(j, "intermediate_size", std::nullopt);
  c.num_hidden_layers = get_int32(j, "num_hidden_layers", std::nullopt);
  c.num_attention_heads = get_int32(j, "num_attention_heads", std::nullopt);
  c.num_key_value_heads = get_int32(j, "num_key_value_heads", c.num_attention_heads);
  PAGEDKV_CHECK_ARG(c.num_attention_heads > 0,
                    "config.json: num_attention_heads must be > 0, "
                    "got {}",
                    c.num_attention_heads);
  PAGEDKV_CHECK_ARG(field(j, "head_dim") != nullptr || c.hidden_size % c.num_attention_heads == 0,
                    "config.json: without \"head_dim\", num_attention_heads {} must divide "
                    "hidden_size {}",
                    c.num_attention_heads, c.hidden_size);
  c.head_dim = get_int32(j, "head_dim", c.hidden_size / c.num_attention_heads);
  c.rms_norm_eps = get_double(j, "rms_norm_eps", 1e-6);
  c.rope_theta = get_double(j, "rope_theta", 10000);
  c.rope_scaling = rope_scaling_of(j);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", false);
  c.attention_bias = get_bool(j, "attention_bias", c.is_qwen2());
  c.max_position_embeddings = get_int(j, "max_position_embeddings", 2048);
  c.bos_token_id = get_int(j, "bos_token_id", -1);
  c.eos_token_id = eos_of(j);
  if (const json* d = field(j, "torch_dtype")) {
    PAGEDKV_CHECK_ARG(d->is_string(), "config.json: \"torch_dtype\" must be a string, got {}",
                      d->dump());
    c.torch_dtype = d->get<std::string>();
  }
  c.validate();
  return c;
}

ModelConfig ModelConfig::load(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path);
  PAGEDKV_CHECK_ARG(in.good(), "cannot read '{}'", path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    detail::fail_invalid_argument("'{}' is not valid JSON: {}", path, e.what());
  }
  try {
    return from_json(j);
  } catch (const InvalidArgument& e) {
    detail::fail_invalid_argument("{}: {}", path, e.what());
  }
}

json ModelConfig::to_json() const {
  json j = json::object();
  j["architectures"] = json::array({architecture});
  j["model_type"] = is_qwen2() ? "qwen2" : "llama";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  switch (rope_scaling.type) {
    case RopeScaling::Type::kNone: j["rope_scaling"] = nullptr; break;
    case RopeScaling::Type::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_scaling.factor}};
      break;
    case RopeScaling::Type::kLlama3:
      j["rope_scaling"] = {
          {"rope_type", "llama3"},
          {"factor", rope_scaling.factor},
          {"low_freq_factor", rope_scaling.low_freq_factor},
          {"high_freq_factor", rope_scaling.high_freq_factor},
          {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
      break;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["attention_bias"] = attention_bias;
  j["max_position_embeddings"] = max_position_embeddings;
  j["bos_token_id"] = bos_token_id >= 0 ? json(bos_token_id) : json(nullptr);
  if (eos_token_id.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (eos_token_id.size() == 1) {
    j["eos_token_id"] = eos_token_id[0];
  } else {
    j["eos_token_id"] = eos_token_id;
  }
  j["torch_dtype"] = torch_dtype;
  return j;
}

void ModelConfig::validate() const {
  PAGEDKV_CHECK_ARG(architecture == kLlamaArchitecture || architecture == kQwen2Architecture,
                    "architecture '{}' is not supported ({} or {})", architecture,
                    kLlamaArchitecture, kQwen2Architecture);
  auto positive = [](const char* name, int64_t v) {
    PAGEDKV_CHECK_ARG(v > 0, "{} must be > 0, got {}", name, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("max_position_embeddings", max_position_embeddings);
  PAGEDKV_CHECK_ARG(num_attention_heads % num_key_value_heads == 0,
                    "num_key_value_heads {} must divide num_attention_heads {}",
                    num_key_value_heads, num_attention_heads);
  PAGEDKV_CHECK_ARG(head_dim % 2 == 0, "head_dim must be even (RoPE rotates halves), got {}",
                    head_dim);
  PAGEDKV_CHECK_ARG(rms_norm_eps > 0, "rms_norm_eps must be > 0, got {}", rms_norm_eps);
  PAGEDKV_CHECK_ARG(rope_theta > 0, "rope_theta must be > 0, got {}", rope_theta);
  PAGEDKV_CHECK_ARG(bos_token_id >= -1 && bos_token_id < vocab_size,
                    "bos_token_id {} out of range [0, vocab_size {})", bos_token_id, vocab_size);
  for (int64_t id : eos_token_id) {
    PAGEDKV_CHECK_ARG(id >= 0 && id < vocab_size, "eos_token_id {} out of range [0, vocab_size {})",
                      id, vocab_size);
  }
  const RopeScaling& r = rope_scaling;
  switch (r.type) {
    case RopeScaling::Type::kNone: break;
    case RopeScaling::Type::kLinear:
      PAGEDKV_CHECK_ARG(r.factor > 0, "rope_scaling.factor must be > 0, got {}", r.factor);
      break;
    case RopeScaling::Type::kLlama3:
      PAGEDKV_CHECK_ARG(r.factor >= 1, "rope_scaling.factor must be >= 1 for llama3, got {}",
                        r.factor);
      PAGEDKV_CHECK_ARG(r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor,
                        "rope_scaling needs 0 < low_freq_factor < high_freq_factor, got {} and {}",
                        r.low_freq_factor, r.high_freq_factor);
      PAGEDKV_CHECK_ARG(r.original_max_position_embeddings > 0,
                        "rope_scaling.original_max_position_embeddings must be > 0, got {}",
                        r.original_max_position_embeddings);
      break;
    default:
      detail::fail_invalid_argument("rope_scaling type {} is unknown", static_cast<int>(r.type));
  }
}

int64_t ModelConfig::num_parameters() const {
  const int64_t h = hidden_size;
  const int64_t attn = h * q_size() + 2 * h * kv_size() + q_size() * h +
                       (attention_bias ? q_size() + 2 * kv_size() : 0);
  const int64_t mlp = 3 * h * intermediate_size;
  const int64_t per_layer = attn + mlp + 2 * h;
  const int64_t embed = vocab_size * h;
  return embed + int64_t{num_hidden_layers} * per_layer + h + (tie_word_embeddings ? 0 : embed);
}

}  // namespace pagedkv
