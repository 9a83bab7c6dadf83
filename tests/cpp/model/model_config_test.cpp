#include "pagedkv/model/model_config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "model/model_test_util.h"
#include "pagedkv/model/model_maker.h"

namespace pagedkv {
namespace {

using json = nlohmann::json;
using testing::expect_error;

// A Hugging Face style config.json as the hub ships it (SmolLM-like, trimmed).
json hf_llama() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 1000, "hidden_size": 128, "intermediate_size": 344,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    "tie_word_embeddings": true, "max_position_embeddings": 4096,
    "bos_token_id": 1, "eos_token_id": [2, 3], "torch_dtype": "bfloat16",
    "hidden_act": "silu", "use_cache": true})");
}

TEST(ModelConfig, ParsesHuggingFaceFieldsAndDefaults) {
  const ModelConfig c = ModelConfig::from_json(hf_llama());
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.head_dim, 32);  // absent: hidden / heads
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);  // Llama default
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.q_size(), 128);
  EXPECT_EQ(c.kv_size(), 64);
}

TEST(ModelConfig, Qwen2HasBiasesByDefaultAndOldRopeSpellingParses) {
  json j = hf_llama();
  j.erase("architectures");
  j["model_type"] = "qwen2";
  j.erase("num_key_value_heads");
  j["eos_token_id"] = 7;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  const ModelConfig c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.is_qwen2());
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.num_key_value_heads, 4);  // absent: num_attention_heads
  EXPECT_EQ(c.eos_token_id, (std::vector<int64_t>{7}));
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2);
}

TEST(ModelConfig, ToJsonRoundTripsEveryPreset) {
  for (const std::string& name : model_presets()) {
    const ModelConfig c = preset_config(name);
    EXPECT_EQ(ModelConfig::from_json(c.to_json()), c) << name;
    EXPECT_EQ(ModelConfig::from_json(json::parse(c.to_json().dump())), c) << name;
  }
  const ModelConfig hf = ModelConfig::from_json(hf_llama());
  EXPECT_EQ(ModelConfig::from_json(hf.to_json()), hf);
}

TEST(ModelConfig, ParameterCountMatchesTheTensorShapes) {
  // tiny: 2 * 384 * 256 (untied) + 4 * (256*256*2 + 128*256*2 + 3*256*768 + 2*256) + 256.
  EXPECT_EQ(preset_config("tiny").num_parameters(), 3344640);
  // tiny-qwen2: tied head, plus q/k/v biases (256 + 128 + 128 per layer).
  EXPECT_EQ(preset_config("tiny-qwen2").num_parameters(), 3344640 - 98304 + 4 * 512);
  EXPECT_EQ(preset_config("smollm-135m").num_parameters(), 134515008);
  EXPECT_EQ(preset_config("llama-3.2-1b").num_parameters(), 1235814400);
}

TEST(ModelConfig, LoadReadsConfigJsonFromTheDirectory) {
  testing::TempDir dir;
  std::ofstream(dir.file("config.json")) << hf_llama().dump(2);
  EXPECT_EQ(ModelConfig::load(dir.path()), ModelConfig::from_json(hf_llama()));
  std::ofstream(dir.file("config.json")) << "{ not json";
  expect_error<InvalidArgument>([&] { ModelConfig::load(dir.path()); }, {"config.json", "JSON"});
  expect_error<InvalidArgument>([&] { ModelConfig::load(dir.file("none")); }, {"cannot read"});
}

// Each case breaks one field; the error names it and the limit.
TEST(ModelConfig, ValidationNamesTheFieldAndTheLimit) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"missing vocab", [](json& j) { j.erase("vocab_size"); }, {"vocab_size", "missing"}},
      {"zero hidden",
       [](json& j) {
         j["hidden_size"] = 0;
         j["head_dim"] = 32;
       },
       {"hidden_size", "> 0", "0"}},
      {"kv heads",
       [](json& j) { j["num_key_value_heads"] = 3; },
       {"num_key_value_heads 3", "num_attention_heads 4"}},
      {"odd head_dim", [](json& j) { j["head_dim"] = 33; }, {"head_dim", "even", "33"}},
      {"heads do not divide hidden",
       [](json& j) { j["num_attention_heads"] = 3; },
       {"num_attention_heads 3", "hidden_size 128"}},
      {"eos",
       [](json& j) {
         j["eos_token_id"] = {2, 1000};
       },
       {"eos_token_id 1000", "1000"}},
      {"bos", [](json& j) { j["bos_token_id"] = 5000; }, {"bos_token_id 5000", "vocab_size 1000"}},
      {"rope type", [](json& j) { j["rope_scaling"]["rope_type"] = "yarn"; }, {"yarn"}},
      {"llama3 band",
       [](json& j) { j["rope_scaling"]["high_freq_factor"] = 0.5; },
       {"low_freq_factor", "high_freq_factor", "0.5"}},
      {"llama3 factor",
       [](json& j) { j["rope_scaling"]["factor"] = 0.5; },
       {"rope_scaling.factor", "0.5"}},
      {"eps", [](json& j) { j["rms_norm_eps"] = 0; }, {"rms_norm_eps"}},
      {"type", [](json& j) { j["num_hidden_layers"] = "2"; }, {"num_hidden_layers", "integer"}},
      {"arch", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; }, {"GPT2LMHeadModel"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    json j = hf_llama();
    c.edit(j);
    try {
      ModelConfig::from_json(j);
      ADD_FAILURE() << "accepted";
    } catch (const InvalidArgument& e) {
      for (const std::string& p : c.parts) {
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << p << " not in " << e.what();
      }
    }
  }
}

TEST(ModelConfig, ValidateChecksAConfigBuiltInCode) {
  ModelConfig c = preset_config("tiny");
  EXPECT_NO_THROW(c.validate());
  c.num_key_value_heads = 3;
  expect_error<InvalidArgument>([&] { c.validate(); }, {"num_key_value_heads 3"});
  c = preset_config("tiny");
  c.rope_scaling.original_max_position_embeddings = 0;
  expect_error<InvalidArgument>([&] { c.validate(); }, {"original_max_position_embeddings"});
}

}  // namespace
}  // namespace pagedkv
