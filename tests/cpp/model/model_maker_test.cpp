#include "pagedkv/model/model_maker.h"

#include <gtest/gtest.h>
#include <omp.h>
#include <openssl/evp.h>

#include <cmath>
#include <fstream>

#include "model/model_test_util.h"
#include "pagedkv/model/model_weights.h"

namespace pagedkv {
namespace {

using testing::expect_error;
using testing::read_bytes;
using testing::TempDir;

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr), 1);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

// SHA-256 of model.safetensors of make_model(preset_config("tiny"), 0, kFloat32): pins the
// generator, the tensor order and the writer. Changing any of them changes every test model.
constexpr const char* kTinySeed0Sha256 =
    "979ff2b9b3fb070fe13cb77af28ddf74fb9d2c018a0a5de96cef6eda6d4aad4e";

TEST(ModelMaker, TinySeedZeroMatchesTheGoldenHash) {
  TempDir dir;
  make_model(preset_config("tiny"), 0, DType::kFloat32, dir.path());
  const std::string bytes = read_bytes(dir.file("model.safetensors"));
  EXPECT_EQ(sha256_hex(bytes), kTinySeed0Sha256);
  EXPECT_GT(bytes.size(), size_t{3344640} * 4);  // the weights plus a header of a few KiB
  EXPECT_LT(bytes.size(), size_t{3344640} * 4 + 16384);
}

TEST(ModelMaker, SameSeedSameBytesWhateverTheThreadCount) {
  TempDir a, b, c;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  make_model(preset_config("tiny-qwen2"), 7, DType::kBFloat16, a.path());
  omp_set_num_threads(3);
  make_model(preset_config("tiny-qwen2"), 7, DType::kBFloat16, b.path());
  omp_set_num_threads(threads);
  make_model(preset_config("tiny-qwen2"), 8, DType::kBFloat16, c.path());
  EXPECT_EQ(read_bytes(a.file("model.safetensors")), read_bytes(b.file("model.safetensors")));
  EXPECT_EQ(read_bytes(a.file("config.json")), read_bytes(b.file("config.json")));
  EXPECT_NE(read_bytes(a.file("model.safetensors")), read_bytes(c.file("model.safetensors")));
}

TEST(ModelMaker, WritesALoadableModelWithTheGivenConfig) {
  TempDir dir;
  const ModelConfig c = preset_config("tiny");
  make_model(c, 1, DType::kBFloat16, dir.path() + "/nested/out");
  const ModelWeights w = ModelWeights::load(dir.path() + "/nested/out");
  ModelConfig want = c;
  want.torch_dtype = "bfloat16";
  EXPECT_EQ(w.config(), want);
  const std::string text = read_bytes(dir.path() + "/nested/out/config.json");
  EXPECT_LT(text.find("\"architectures\""), text.find("\"vocab_size\""));  // sorted keys
  EXPECT_NE(text.find("\n  \""), std::string::npos);                       // pretty
}

struct Moments {
  double mean = 0;
  double stddev = 0;
};

Moments moments(const float* p, int64_t n) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += p[i];
    s2 += double{p[i]} * p[i];
  }
  const double mean = s / static_cast<double>(n);
  return {mean, std::sqrt(s2 / static_cast<double>(n) - mean * mean)};
}

// Rule 56: weights are not flat, so logits have a standard deviation of about 1.
TEST(ModelMaker, WeightsFollowRule56) {
  TempDir llama, qwen;
  make_model(preset_config("tiny"), 0, DType::kFloat32, llama.path());
  make_model(preset_config("tiny-qwen2"), 0, DType::kFloat32, qwen.path());
  const ModelWeights l = ModelWeights::load(llama.path());
  const ModelWeights q = ModelWeights::load(qwen.path());
  const int64_t v = 384, h = 256, i = 768;
  auto near = [](Moments m, double mean, double stddev) {
    EXPECT_NEAR(m.mean, mean, 0.05 * stddev + 1e-3);
    EXPECT_NEAR(m.stddev, stddev, 0.05 * stddev);
  };
  near(moments(l.embed_tokens(), v * h), 0, 1);
  near(moments(q.embed_tokens(), v * h), 0, 1 / std::sqrt(256.0));  // tied
  near(moments(l.lm_head(), v * h), 0, 1 / std::sqrt(256.0));
  near(moments(l.layer(1).q_proj, h * h), 0, 1 / std::sqrt(256.0));
  near(moments(l.layer(1).down_proj, h * i), 0, 1 / std::sqrt(768.0));
  near(moments(l.layer(2).gate_proj, i * h), 0, 1 / std::sqrt(256.0));
  Moments norms = moments(l.layer(0).input_layernorm, h);
  EXPECT_NEAR(norms.mean, 1, 0.03);
  EXPECT_NEAR(norms.stddev, 0.1, 0.02);
  Moments bias = moments(q.layer(0).q_bias, h);
  EXPECT_NEAR(bias.stddev, 0.02, 0.005);
  // Different tensors are not copies of each other.
  EXPECT_NE(l.layer(0).q_proj[0], l.layer(1).q_proj[0]);
  EXPECT_NE(l.layer(0).gate_proj[0], l.layer(0).up_proj[0]);
}

TEST(ModelMaker, NormalGeneratorHasUnitMomentsAndDependsOnEveryInput) {
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int k = 0; k < n; ++k) {
    const double z = model_maker_normal(0, 5, static_cast<uint64_t>(k));
    s += z;
    s2 += z * z;
  }
  EXPECT_NEAR(s / n, 0, 0.01);
  EXPECT_NEAR(s2 / n, 1, 0.02);
  EXPECT_EQ(model_maker_normal(1, 2, 3), model_maker_normal(1, 2, 3));
  EXPECT_NE(model_maker_normal(1, 2, 3), model_maker_normal(0, 2, 3));
  EXPECT_NE(model_maker_normal(1, 2, 3), model_maker_normal(1, 3, 3));
  EXPECT_NE(model_maker_normal(1, 2, 3), model_maker_normal(1, 2, 4));
}

TEST(ModelMaker, BadPresetDtypeOrConfigIsInvalidArgument) {
  expect_error<InvalidArgument>([] { preset_config("gpt2"); },
                                {"'gpt2'", "tiny", "tiny-qwen2", "smollm-135m", "llama-3.2-1b"});
  TempDir dir;
  expect_error<InvalidArgument>(
      [&] { make_model(preset_config("tiny"), 0, DType::kFloat16, dir.path()); }, {"float16"});
  ModelConfig bad = preset_config("tiny");
  bad.head_dim = 63;
  expect_error<InvalidArgument>([&] { make_model(bad, 0, DType::kFloat32, dir.path()); },
                                {"head_dim"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("config.json")));
}

}  // namespace
}  // namespace pagedkv
