#include "pagedkv/model/model_weights.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "model/model_test_util.h"
#include "pagedkv/model/model_maker.h"

namespace pagedkv {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;
using testing::TempDir;

// A tensor with its own bytes, for rewriting model files.
struct OwnedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

std::vector<OwnedTensor> read_all(const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<OwnedTensor> out;
  for (const TensorView& t : f.tensors()) {
    out.push_back({t.name, t.dtype, t.shape, {t.data.begin(), t.data.end()}});
  }
  return out;
}

void write_all(const std::string& path, const std::vector<OwnedTensor>& tensors) {
  std::vector<TensorToWrite> w;
  for (const OwnedTensor& t : tensors) w.push_back({t.name, t.dtype, t.shape, t.bytes});
  write_safetensors(path, w);
}

std::vector<float> as_floats(const OwnedTensor& t) {
  std::vector<float> v(t.bytes.size() / 4);
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

// Rewrites `dir`/model.safetensors through `edit`.
void rewrite(const std::string& dir, const std::function<void(std::vector<OwnedTensor>&)>& edit) {
  const std::string path = dir + "/model.safetensors";
  std::vector<OwnedTensor> t = read_all(path);
  edit(t);
  write_all(path, t);
}

OwnedTensor* find(std::vector<OwnedTensor>& ts, const std::string& name) {
  for (OwnedTensor& t : ts) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

class ModelWeightsTest : public ::testing::Test {
 protected:
  void make(const std::string& preset, DType dtype = DType::kFloat32) {
    make_model(preset_config(preset), 3, dtype, dir_.path());
  }
  std::string model_file() const { return dir_.file("model.safetensors"); }
  TempDir dir_;
};

TEST_F(ModelWeightsTest, LoadsEveryTensorOfALlamaModel) {
  make("tiny");
  const std::vector<OwnedTensor> file = read_all(model_file());
  const ModelWeights w = ModelWeights::load(dir_.path());
  const ModelConfig& c = w.config();
  EXPECT_EQ(c, [] {
    ModelConfig p = preset_config("tiny");
    p.torch_dtype = "float32";
    return p;
  }());
  EXPECT_EQ(w.num_parameters(), 3344640);
  EXPECT_EQ(w.converted_bytes(), 0);  // F32 is used in place
  auto check = [&](const std::string& name, const float* p) {
    std::vector<OwnedTensor> copy = file;
    const OwnedTensor* t = find(copy, name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_NE(p, nullptr) << name;
    const std::vector<float> want = as_floats(*t);
    EXPECT_EQ(std::memcmp(p, want.data(), want.size() * 4), 0) << name;
  };
  check("model.embed_tokens.weight", w.embed_tokens());
  check("model.norm.weight", w.norm());
  check("lm_head.weight", w.lm_head());
  EXPECT_NE(w.lm_head(), w.embed_tokens());
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const LayerWeights& lw = w.layer(l);
    check(p + "input_layernorm.weight", lw.input_layernorm);
    check(p + "self_attn.q_proj.weight", lw.q_proj);
    check(p + "self_attn.k_proj.weight", lw.k_proj);
    check(p + "self_attn.v_proj.weight", lw.v_proj);
    check(p + "self_attn.o_proj.weight", lw.o_proj);
    check(p + "post_attention_layernorm.weight", lw.post_attention_layernorm);
    check(p + "mlp.gate_proj.weight", lw.gate_proj);
    check(p + "mlp.up_proj.weight", lw.up_proj);
    check(p + "mlp.down_proj.weight", lw.down_proj);
    EXPECT_EQ(lw.q_bias, nullptr);
    EXPECT_EQ(lw.k_bias, nullptr);
    EXPECT_EQ(lw.v_bias, nullptr);
  }
  EXPECT_THROW(w.layer(4), OutOfRange);
  EXPECT_THROW(w.layer(-1), OutOfRange);
}

TEST_F(ModelWeightsTest, Qwen2HasBiasesAndATiedHead) {
  make("tiny-qwen2");
  const ModelWeights w = ModelWeights::load(dir_.path());
  EXPECT_EQ(w.lm_head(), w.embed_tokens());
  for (int l = 0; l < 4; ++l) {
    EXPECT_NE(w.layer(l).q_bias, nullptr);
    EXPECT_NE(w.layer(l).k_bias, nullptr);
    EXPECT_NE(w.layer(l).v_bias, nullptr);
  }
  std::vector<OwnedTensor> file = read_all(model_file());
  const std::vector<float> kb = as_floats(*find(file, "model.layers.2.self_attn.k_proj.bias"));
  ASSERT_EQ(kb.size(), 128u);
  EXPECT_EQ(std::memcmp(w.layer(2).k_bias, kb.data(), 128 * 4), 0);
}

TEST_F(ModelWeightsTest, PointersSurviveAMove) {
  make("tiny");
  ModelWeights a = ModelWeights::load(dir_.path());
  const float* q = a.layer(1).q_proj;
  const float first = q[0];
  ModelWeights b = std::move(a);
  EXPECT_EQ(b.layer(1).q_proj, q);
  EXPECT_EQ(b.layer(1).q_proj[0], first);
}

TEST_F(ModelWeightsTest, Bf16AndF16AreConvertedExactly) {
  make("tiny");
  const std::vector<OwnedTensor> f32 = read_all(model_file());
  // Known bit patterns first: 1.5 in BF16 (0x3fc0) and F16 (0x3e00), -2 in both, and an F16
  // subnormal (2^-24).
  rewrite(dir_.path(), [](std::vector<OwnedTensor>& ts) {
    auto set16 = [](OwnedTensor& t, DType dtype, std::vector<uint16_t> head) {
      const size_t n = t.bytes.size() / 4;
      std::vector<uint16_t> bits(n, 0);
      std::copy(head.begin(), head.end(), bits.begin());
      t.dtype = dtype;
      t.bytes.resize(n * 2);
      std::memcpy(t.bytes.data(), bits.data(), n * 2);
    };
    set16(*find(ts, "model.norm.weight"), DType::kBFloat16, {0x3fc0, 0xc000, 0x4049});
    set16(*find(ts, "model.layers.0.input_layernorm.weight"), DType::kFloat16,
          {0x3e00, 0xc000, 0x0001, 0x7bff});
  });
  {
    const ModelWeights w = ModelWeights::load(dir_.path());
    EXPECT_EQ(w.norm()[0], 1.5f);
    EXPECT_EQ(w.norm()[1], -2.0f);
    EXPECT_EQ(w.norm()[2], 3.140625f);
    EXPECT_EQ(w.layer(0).input_layernorm[0], 1.5f);
    EXPECT_EQ(w.layer(0).input_layernorm[1], -2.0f);
    EXPECT_EQ(w.layer(0).input_layernorm[2], 0x1p-24f);
    EXPECT_EQ(w.layer(0).input_layernorm[3], 65504.0f);
    EXPECT_EQ(w.converted_bytes(), 2 * 256 * 4);
  }
  // A whole BF16 model (as make_model writes it) loads as the rounded F32 one.
  make("tiny", DType::kBFloat16);
  const ModelWeights w = ModelWeights::load(dir_.path());
  EXPECT_EQ(w.converted_bytes(), w.num_parameters() * 4);
  std::vector<OwnedTensor> copy = f32;
  const std::vector<float> want = as_floats(*find(copy, "model.layers.3.mlp.down_proj.weight"));
  for (size_t k = 0; k < want.size(); ++k) {
    ASSERT_EQ(w.layer(3).down_proj[k], bf16_to_float(float_to_bf16(want[k]))) << k;
  }
}

TEST_F(ModelWeightsTest, MissingTensorIsNamedWithItsExpectedShape) {
  make("tiny");
  rewrite(dir_.path(), [](std::vector<OwnedTensor>& ts) {
    std::erase_if(
        ts, [](const OwnedTensor& t) { return t.name == "model.layers.2.mlp.up_proj.weight"; });
  });
  expect_error<FormatError>([&] { ModelWeights::load(dir_.path()); },
                            {"'model.layers.2.mlp.up_proj.weight'", "missing", "[768, 256]"});
}

TEST_F(ModelWeightsTest, WrongShapeForTheConfigNamesBothShapes) {
  make("tiny");
  rewrite(dir_.path(), [](std::vector<OwnedTensor>& ts) {
    find(ts, "model.layers.0.self_attn.q_proj.weight")->shape = {512, 128};  // same bytes
  });
  expect_error<FormatError>(
      [&] { ModelWeights::load(dir_.path()); },
      {"'model.layers.0.self_attn.q_proj.weight'", "[512, 128]", "[256, 256]"});
}

TEST_F(ModelWeightsTest, UntiedHeadMustBePresent) {
  make("tiny");
  rewrite(dir_.path(), [](std::vector<OwnedTensor>& ts) {
    std::erase_if(ts, [](const OwnedTensor& t) { return t.name == "lm_head.weight"; });
  });
  expect_error<FormatError>([&] { ModelWeights::load(dir_.path()); },
                            {"'lm_head.weight'", "tie_word_embeddings"});
}

TEST_F(ModelWeightsTest, TiedHeadIgnoresAStoredLmHeadAndExtraTensors) {
  make("tiny-qwen2");
  rewrite(dir_.path(), [](std::vector<OwnedTensor>& ts) {
    OwnedTensor head = *find(ts, "model.embed_tokens.weight");
    head.name = "lm_head.weight";
    std::fill(head.bytes.begin(), head.bytes.end(), std::byte{0});
    ts.push_back(head);
    ts.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq",
                  DType::kFloat32,
                  {32},
                  std::vector<std::byte>(128)});
  });
  const ModelWeights w = ModelWeights::load(dir_.path());
  EXPECT_EQ(w.lm_head(), w.embed_tokens());
  EXPECT_NE(w.lm_head()[0], 0.0f);
}

TEST_F(ModelWeightsTest, ShardedModelLoadsLikeTheSingleFile) {
  make("tiny");
  const ModelWeights single = ModelWeights::load(dir_.path());
  std::vector<OwnedTensor> all = read_all(model_file());
  const size_t half = all.size() / 2;
  nlohmann::json map = nlohmann::json::object();
  std::vector<OwnedTensor> a(all.begin(), all.begin() + static_cast<ptrdiff_t>(half));
  std::vector<OwnedTensor> b(all.begin() + static_cast<ptrdiff_t>(half), all.end());
  const std::string sharded = dir_.file("sharded");
  fs::create_directories(sharded);
  fs::copy_file(dir_.file("config.json"), sharded + "/config.json");
  write_all(sharded + "/model-00001-of-00002.safetensors", a);
  write_all(sharded + "/model-00002-of-00002.safetensors", b);
  for (const OwnedTensor& t : a) map[t.name] = "model-00001-of-00002.safetensors";
  for (const OwnedTensor& t : b) map[t.name] = "model-00002-of-00002.safetensors";
  std::ofstream(sharded + "/model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump();

  const ModelWeights w = ModelWeights::load(sharded);
  const int64_t v = w.config().vocab_size, h = w.config().hidden_size;
  EXPECT_EQ(std::memcmp(w.embed_tokens(), single.embed_tokens(), v * h * 4), 0);
  EXPECT_EQ(std::memcmp(w.lm_head(), single.lm_head(), v * h * 4), 0);
  EXPECT_EQ(std::memcmp(w.norm(), single.norm(), h * 4), 0);
  EXPECT_EQ(std::memcmp(w.layer(3).down_proj, single.layer(3).down_proj,
                        h * w.config().intermediate_size * 4),
            0);

  // The index must place each tensor in the shard that holds it.
  map["model.norm.weight"] = "model-00001-of-00002.safetensors";
  std::ofstream(sharded + "/model.safetensors.index.json")
      << nlohmann::json{{"weight_map", map}}.dump();
  expect_error<FormatError>([&] { ModelWeights::load(sharded); },
                            {"'model.norm.weight'", "model-00001-of-00002.safetensors"});
}

TEST_F(ModelWeightsTest, MissingFilesAndBadSafetensorsAreReported) {
  expect_error<InvalidArgument>([&] { ModelWeights::load(dir_.path()); }, {"config.json"});
  make("tiny");
  fs::remove(model_file());
  expect_error<InvalidArgument>([&] { ModelWeights::load(dir_.path()); }, {"model.safetensors"});
  testing::write_raw_safetensors(model_file(),
                                 R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8);
  expect_error<FormatError>([&] { ModelWeights::load(dir_.path()); }, {"'x'", "F64"});
}

}  // namespace
}  // namespace pagedkv
