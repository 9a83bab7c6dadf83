// LlamaModel over the paged cache: in the deterministic mode a position's logits are bitwise the
// same whatever the prefill chunking and whatever the order of the pages; errors are typed.
#include "pagedkv/model/llama_model.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "model_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/model/model_maker.h"
#include "pagedkv/model/token_scorer.h"

namespace pagedkv {
namespace {

struct Fixture {
  testing::TempDir dir;
  ModelWeights weights;
  explicit Fixture(const std::string& preset)
      : weights((make_model(preset_config(preset), 11, DType::kFloat32, dir.path()),
                 ModelWeights::load(dir.path()))) {}
};

std::vector<TokenId> tokens(int32_t n) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (i * 53 + 7) % 300;
  return t;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class LlamaModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaModelTest, ChunkingAndPageOrderDoNotChangeLogitsBitwise) {
  Fixture f(GetParam());
  LlamaModel model(f.weights, MatmulMode::kDeterministic);
  const std::vector<TokenId> t = tokens(90);
  const std::vector<float> whole = score_tokens(model, t, {.page_size = 16});
  float spread = 0;
  for (float v : whole) spread = std::max(spread, std::abs(v));
  EXPECT_GT(spread, 1.0f);  // rule 56: not flat
  for (int32_t chunk : {1, 2, 7, 16, 33}) {
    for (uint64_t order : {0u, 5u}) {
      const std::vector<float> got =
          score_tokens(model, t, {.page_size = 16, .chunk_size = chunk, .page_order_seed = order});
      EXPECT_TRUE(bitwise_equal(whole, got)) << "chunk " << chunk << " order " << order;
    }
  }
  // Another page size: the same logits too.
  EXPECT_TRUE(bitwise_equal(whole, score_tokens(model, t, {.page_size = 4, .chunk_size = 9})));
}

TEST_P(LlamaModelTest, FastModeAgreesWithDeterministicWithinRounding) {
  Fixture f(GetParam());
  LlamaModel det(f.weights, MatmulMode::kDeterministic);
  LlamaModel fast(f.weights, MatmulMode::kFast);
  const std::vector<TokenId> t = tokens(40);
  const std::vector<float> a = score_tokens(det, t, {});
  const std::vector<float> b = score_tokens(fast, t, {.chunk_size = 13});
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
}

INSTANTIATE_TEST_SUITE_P(Presets, LlamaModelTest, ::testing::Values("tiny", "tiny-qwen2"));

TEST(LlamaModel, BadBatchesThrowBeforeWriting) {
  Fixture f("tiny");
  LlamaModel model(f.weights, MatmulMode::kDeterministic);
  PagedKVCache cache(model.kv_cache_metadata(8, 16, DType::kFloat32, 64));
  const std::vector<int32_t> ids = {1, 2, 999}, pos = {0, 1, 2}, qsl = {0, 3}, lens = {3},
                             pages = {1}, rows = {2};
  const std::vector<int64_t> slots = {16, 17, 18};
  std::vector<float> logits(384);
  ForwardBatch b{ids, pos, {qsl, lens, PageTableRef::dense(pages, 1)}, slots, rows};
  EXPECT_THROW(model.forward(b, cache, logits), OutOfRange);  // token 999 >= vocab 384
  const std::vector<int32_t> ok_ids = {1, 2, 3};
  b.token_ids = ok_ids;
  std::vector<float> small(10);
  EXPECT_THROW(model.forward(b, cache, small), InvalidArgument);  // logits too small
  const std::vector<int32_t> bad_rows = {3};
  b.logits_indices = bad_rows;
  EXPECT_THROW(model.forward(b, cache, logits), OutOfRange);
  // Nothing was written: the cache is still all zeros.
  const auto* k = static_cast<const float*>(cache.key_pages(0));
  for (int64_t i = 0; i < cache.elements_per_array(); ++i) ASSERT_EQ(k[i], 0.0f);
  b.logits_indices = rows;
  model.forward(b, cache, logits);
  bool any = false;
  for (float v : logits) any |= v != 0.0f;
  EXPECT_TRUE(any);
}

TEST(LlamaModel, CacheOfAnotherShapeIsRefused) {
  Fixture f("tiny");
  LlamaModel model(f.weights, MatmulMode::kDeterministic);
  PagedKVCacheMetadata md = model.kv_cache_metadata(8, 16, DType::kFloat32, 64);
  md.num_kv_heads = 4;
  PagedKVCache cache(md);
  const std::vector<int32_t> ids = {1}, pos = {0}, qsl = {0, 1}, lens = {1}, pages = {1},
                             rows = {0};
  const std::vector<int64_t> slots = {16};
  std::vector<float> logits(384);
  ForwardBatch b{ids, pos, {qsl, lens, PageTableRef::dense(pages, 1)}, slots, rows};
  EXPECT_THROW(model.forward(b, cache, logits), InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
