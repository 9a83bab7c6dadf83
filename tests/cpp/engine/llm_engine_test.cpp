// LLMEngine end to end on a generated tiny model: generation, page conservation, and rule 49
// (a request's tokens and logprobs are bitwise the same alone, batched, chunked, preempted,
// from cached prefix pages, with 1 or 2 threads) in the deterministic mode.
#include "pagedkv/engine/llm_engine.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/model/model_maker.h"

namespace pagedkv {
namespace {

namespace fs = std::filesystem;

// One tiny model per preset for the whole binary.
const std::string& model_dir(const std::string& preset) {
  static std::map<std::string, std::string> dirs;
  auto it = dirs.find(preset);
  if (it != dirs.end()) return it->second;
  const fs::path dir = fs::temp_directory_path() / fmt::format("pagedkv-engine-test-{}-{}", preset,
                                                               static_cast<long>(getpid()));
  make_model(preset_config(preset), /*seed=*/7, DType::kFloat32, dir.string());
  return dirs.emplace(preset, dir.string()).first->second;
}

struct RunResult {
  std::vector<TokenId> tokens;
  std::vector<std::vector<TokenLogprob>> logprobs;
  int32_t cached_prompt_tokens = 0;
};

struct Job {
  std::string id;
  std::vector<TokenId> prompt;
  SamplingParams params;
};

std::vector<TokenId> prompt_of(int32_t length, int32_t salt) {
  std::vector<TokenId> p(static_cast<size_t>(length));
  for (int32_t i = 0; i < length; ++i) p[static_cast<size_t>(i)] = (i * 37 + salt * 11 + 5) % 256;
  return p;
}

SamplingParams sampled(int32_t max_tokens, int64_t seed) {
  SamplingParams p;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  p.temperature = 0.8f;
  p.top_p = 0.95f;
  p.seed = seed;
  p.logprobs = 3;
  return p;
}

// Adds every job at once and steps to completion, checking the engine after every step.
std::map<std::string, RunResult> run(LLMEngine& engine, const std::vector<Job>& jobs) {
  for (const Job& j : jobs) engine.add_request(j.id, j.prompt, j.params);
  std::map<std::string, RunResult> results;
  while (engine.has_unfinished_requests()) {
    for (GenerationOutput& out : engine.step()) {
      if (!out.finished) continue;
      results[out.request_id] = {out.output_token_ids, out.logprobs,
                                 out.metrics.num_cached_prompt_tokens};
    }
    engine.verify();
  }
  engine.verify();
  EXPECT_EQ(engine.stats().kv_cache_usage, 0.0);
  return results;
}

EngineConfig config_for(const std::string& preset) {
  EngineConfig c;
  c.model = model_dir(preset);
  c.num_pages = 512;
  c.page_size = 16;
  c.max_num_seqs = 16;
  c.max_num_batched_tokens = 512;
  c.max_model_len = 512;
  return c;
}

std::vector<Job> mixed_jobs() {
  // Prompt lengths cross page boundaries and original_max_position_embeddings (64).
  const int32_t lengths[] = {5, 16, 33, 64, 90, 130};
  std::vector<Job> jobs;
  for (int32_t i = 0; i < 6; ++i) {
    jobs.push_back({fmt::format("r{}", i), prompt_of(lengths[i], i), sampled(40 + i, 100 + i)});
  }
  return jobs;
}

void expect_same(const RunResult& a, const RunResult& b, const std::string& what) {
  ASSERT_EQ(a.tokens, b.tokens) << what;
  ASSERT_EQ(a.logprobs.size(), b.logprobs.size()) << what;
  for (size_t i = 0; i < a.logprobs.size(); ++i) {
    ASSERT_EQ(a.logprobs[i].size(), b.logprobs[i].size()) << what << " token " << i;
    for (size_t k = 0; k < a.logprobs[i].size(); ++k) {
      EXPECT_EQ(a.logprobs[i][k].token, b.logprobs[i][k].token) << what;
      // Bitwise: the same float, not merely close.
      EXPECT_EQ(std::bit_cast<uint32_t>(a.logprobs[i][k].logprob),
                std::bit_cast<uint32_t>(b.logprobs[i][k].logprob))
          << what << " token " << i << " rank " << k;
    }
  }
}

class EngineTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineTest, GeneratesRequestedTokensAndFreesEveryPage) {
  LLMEngine engine(config_for(GetParam()));
  SamplingParams greedy;
  greedy.max_tokens = 10;
  greedy.temperature = 0.0f;
  greedy.ignore_eos = true;
  auto outs = engine.generate({prompt_of(7, 1), prompt_of(40, 2), prompt_of(3, 3)}, greedy);
  ASSERT_EQ(outs.size(), 3u);
  for (const auto& o : outs) {
    EXPECT_TRUE(o.finished);
    EXPECT_EQ(o.finish_reason, FinishReason::kLength);
    EXPECT_EQ(o.output_token_ids.size(), 10u);
    for (TokenId t : o.output_token_ids) EXPECT_LT(t, engine.model_config().vocab_size);
  }
  EXPECT_EQ(outs[1].prompt_token_ids, prompt_of(40, 2));
  engine.verify();
  EXPECT_EQ(engine.stats().num_generated_tokens, 30);
}

TEST_P(EngineTest, RequestAloneEqualsRequestInABatchBitwise) {
  const std::vector<Job> jobs = mixed_jobs();
  std::map<std::string, RunResult> alone;
  for (const Job& j : jobs) {
    LLMEngine engine(config_for(GetParam()));
    alone[j.id] = run(engine, {j})[j.id];
  }
  LLMEngine batched(config_for(GetParam()));
  auto together = run(batched, jobs);
  for (const Job& j : jobs) expect_same(alone[j.id], together[j.id], "batched " + j.id);
}

TEST_P(EngineTest, ChunkedPrefillAndPreemptionDoNotChangeResults) {
  const std::vector<Job> jobs = mixed_jobs();
  LLMEngine roomy(config_for(GetParam()));
  auto reference = run(roomy, jobs);

  EngineConfig tight = config_for(GetParam());
  tight.max_num_batched_tokens = 40;  // every long prompt is chunked
  tight.num_pages = 14;               // too few pages for all six: preemptions
  LLMEngine engine(tight);
  auto chunked = run(engine, jobs);
  EXPECT_GT(engine.stats().num_preemptions, 0);
  for (const Job& j : jobs) expect_same(reference[j.id], chunked[j.id], "tight " + j.id);
}

TEST_P(EngineTest, CachedPrefixPagesDoNotChangeResults) {
  std::vector<TokenId> shared = prompt_of(96, 9);
  std::vector<TokenId> prompt = shared;
  prompt.push_back(3);
  prompt.push_back(4);
  Job cold{"cold", prompt, sampled(8, 5)};
  LLMEngine fresh(config_for(GetParam()));
  auto reference = run(fresh, {cold});
  EXPECT_EQ(reference["cold"].cached_prompt_tokens, 0);

  LLMEngine warm(config_for(GetParam()));
  run(warm, {{"warmup", shared, sampled(2, 1)}});
  auto hit = run(warm, {{"hit", prompt, sampled(8, 5)}});
  EXPECT_EQ(hit["hit"].cached_prompt_tokens, 96);
  expect_same(reference["cold"], hit["hit"], "prefix hit");
}

TEST_P(EngineTest, OneAndTwoThreadsGiveTheSameResults) {
  const std::vector<Job> jobs = mixed_jobs();
  EngineConfig one = config_for(GetParam());
  one.num_threads = 1;
  LLMEngine a(one);
  auto r1 = run(a, jobs);
  EngineConfig two = config_for(GetParam());
  two.num_threads = 2;
  LLMEngine b(two);
  auto r2 = run(b, jobs);
  for (const Job& j : jobs) expect_same(r1[j.id], r2[j.id], "threads " + j.id);
}

INSTANTIATE_TEST_SUITE_P(Presets, EngineTest, ::testing::Values("tiny", "tiny-qwen2"));

TEST(Engine, AbortFreesPagesAtOnce) {
  LLMEngine engine(config_for("tiny"));
  engine.add_request("a", prompt_of(50, 1), sampled(20, 1));
  engine.add_request("b", prompt_of(20, 2), sampled(20, 2));
  engine.step();
  EXPECT_GT(engine.stats().kv_cache_usage, 0.0);
  EXPECT_TRUE(engine.abort_request("a"));
  EXPECT_FALSE(engine.abort_request("a"));
  EXPECT_TRUE(engine.abort_request("b"));
  engine.verify();
  EXPECT_EQ(engine.stats().kv_cache_usage, 0.0);
  EXPECT_FALSE(engine.has_unfinished_requests());
}

TEST(Engine, BadRequestsChangeNothing) {
  LLMEngine engine(config_for("tiny"));
  SamplingParams p;
  EXPECT_THROW(engine.add_request("x", {}, p), InvalidArgument);
  EXPECT_THROW(engine.add_request("x", {1, 384}, p), InvalidArgument);           // vocab is 384
  EXPECT_THROW(engine.add_request("x", prompt_of(600, 1), p), InvalidArgument);  // > max_model_len
  engine.add_request("x", {1, 2}, p);
  EXPECT_THROW(engine.add_request("x", {1, 2}, p), InvalidArgument);  // live id
  engine.verify();
  EXPECT_TRUE(engine.abort_request("x"));
  engine.verify();
}

TEST(Engine, ConfigErrorsNameTheField) {
  EngineConfig c = config_for("tiny");
  c.num_pages = 1;
  EXPECT_THROW(LLMEngine{c}, InvalidArgument);
  c = config_for("tiny");
  c.num_pages.reset();
  c.kv_cache_bytes = 100;  // less than two pages
  EXPECT_THROW(LLMEngine{c}, CapacityError);
  c = config_for("tiny");
  c.model = "/nonexistent/model";
  EXPECT_THROW(LLMEngine{c}, Error);
}

TEST(Engine, KvCacheBytesSizesThePool) {
  EngineConfig c = config_for("tiny");
  c.num_pages.reset();
  // tiny: 4 layers x 2 kv heads x 64 dims x 16 tokens x (K + V) x 4 bytes = 64 KiB a page.
  c.kv_cache_bytes = 100 * 65536 + 5;
  LLMEngine engine(c);
  EXPECT_EQ(engine.num_pages(), 100);
}

}  // namespace
}  // namespace pagedkv
