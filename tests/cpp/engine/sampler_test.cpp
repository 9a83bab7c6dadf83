// The token sampler (sampler.h): greedy, temperature, top-k, top-p, min_tokens, raw logprobs,
// per-request determinism, batch invariance and errors. Random draws use fixed keys, so every
// statistical bound below is checked against one fixed sequence and cannot flake.
#include "pagedkv/engine/sampler.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr uint64_t kKey = 0x5eed5eed12345678ull;

SamplingParams greedy_params() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

SamplingContext context(const SamplingParams& p, int32_t index = 0, uint64_t key = kKey) {
  return SamplingContext{&p, key, index, index, std::nullopt};
}

// How often each token is drawn over output indices [0, n).
std::map<TokenId, int> histogram(Sampler& sampler, const std::vector<float>& logits,
                                 const SamplingParams& p, int n) {
  std::map<TokenId, int> counts;
  for (int i = 0; i < n; ++i) ++counts[sampler.sample(logits, context(p, i)).token];
  return counts;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  const double m = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp((logits[i] - m) / temperature);
  for (double& v : p) v /= sum;
  return p;
}

double chi_square(const std::map<TokenId, int>& counts, const std::vector<double>& expected,
                  int n) {
  double chi2 = 0.0;
  for (size_t t = 0; t < expected.size(); ++t) {
    const auto it = counts.find(static_cast<TokenId>(t));
    const double observed = it == counts.end() ? 0.0 : it->second;
    const double e = expected[t] * n;
    if (e > 0.0) chi2 += (observed - e) * (observed - e) / e;
  }
  return chi2;
}

std::vector<float> normal_logits(size_t n, uint32_t seed, float stddev = 2.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> logits(n);
  for (float& x : logits) x = normal(rng);
  return logits;
}

// Equal bit for bit (NaN included): what "the same result" means for the batch.
void expect_identical(const SampledToken& a, const SampledToken& b, const std::string& where) {
  EXPECT_EQ(a.token, b.token) << where;
  EXPECT_EQ(std::bit_cast<uint32_t>(a.logprob), std::bit_cast<uint32_t>(b.logprob)) << where;
  ASSERT_EQ(a.top.size(), b.top.size()) << where;
  for (size_t j = 0; j < a.top.size(); ++j) {
    EXPECT_EQ(a.top[j].token, b.top[j].token) << where << " top " << j;
    EXPECT_EQ(std::bit_cast<uint32_t>(a.top[j].logprob), std::bit_cast<uint32_t>(b.top[j].logprob))
        << where << " top " << j;
  }
}

// Sets the OpenMP thread count for one scope.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

std::set<TokenId> keys_of(const std::map<TokenId, int>& counts) {
  std::set<TokenId> s;
  for (const auto& [t, c] : counts) s.insert(t);
  return s;
}

// ---- Greedy ----

TEST(SamplerGreedy, PicksTheArgmax) {
  Sampler sampler;
  const SamplingParams p = greedy_params();
  EXPECT_EQ(sampler.sample(std::vector<float>{0.1f, 2.5f, -1.0f, 2.4f}, context(p)).token, 1);
}

TEST(SamplerGreedy, TiesGoToTheSmallestId) {
  Sampler sampler;
  const SamplingParams p = greedy_params();
  EXPECT_EQ(sampler.sample(std::vector<float>{1.0f, 3.0f, 3.0f, 3.0f}, context(p)).token, 1);
}

TEST(SamplerGreedy, TopKOfOneIsGreedyAtAnyTemperature) {
  Sampler sampler;
  SamplingParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  const std::vector<float> logits = {0.0f, 0.2f, 0.1f};
  for (int i = 0; i < 200; ++i) ASSERT_EQ(sampler.sample(logits, context(p, i)).token, 1);
}

TEST(SamplerGreedy, NaNLogitsNeverWin) {
  Sampler sampler;
  const SamplingParams p = greedy_params();
  EXPECT_EQ(sampler.sample(std::vector<float>{kNaN, -5.0f, kNaN}, context(p)).token, 1);
}

TEST(SamplerGreedy, MatchesANaiveArgmaxOnLongRowsWithTiesNaNAndInfinity) {
  Sampler sampler;
  const SamplingParams p = greedy_params();
  std::mt19937 rng(23);
  for (const size_t vocab : {1u, 15u, 17u, 255u, 256u, 257u, 1000u, 4099u}) {
    for (int trial = 0; trial < 20; ++trial) {
      // Few distinct values, so the maximum is often tied across and within blocks.
      std::vector<float> logits(vocab);
      std::uniform_int_distribution<int> level(-4, 4);
      for (float& x : logits) x = static_cast<float>(level(rng));
      std::uniform_int_distribution<size_t> at(0, vocab - 1);
      for (int k = 0; k < 3; ++k) logits[at(rng)] = kNaN;
      logits[at(rng)] = -kInf;
      size_t expected = vocab;
      for (size_t i = 0; i < vocab; ++i) {
        if (logits[i] > -kInf && (expected == vocab || logits[i] > logits[expected])) expected = i;
      }
      if (expected == vocab) continue;  // nothing to sample: covered by the error tests
      ASSERT_EQ(sampler.sample(logits, context(p)).token, static_cast<TokenId>(expected))
          << "vocab " << vocab << " trial " << trial;
    }
  }
}

TEST(SamplerGreedy, MaskedArgmaxFallsBackToTheBestUnmaskedToken) {
  Sampler sampler;
  SamplingParams p = greedy_params();
  p.min_tokens = 1;
  p.stop_token_ids = {700};
  std::vector<float> logits(1000, 0.0f);
  logits[700] = 9.0f;  // masked
  logits[900] = 5.0f;
  logits[300] = 5.0f;  // tie with 900: the smaller id wins
  EXPECT_EQ(sampler.sample(logits, context(p)).token, 300);
}

// ---- Temperature, top-k, top-p ----

TEST(SamplerRandom, EmpiricalDistributionMatchesTemperedSoftmax) {
  Sampler sampler;
  SamplingParams p;
  p.temperature = 0.7f;
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, -1.5f};
  constexpr int kN = 20000;
  const double chi2 = chi_square(histogram(sampler, logits, p, kN), softmax(logits, 0.7), kN);
  // 4 degrees of freedom: P(chi2 > 25) ~ 5e-5 for a correct sampler.
  EXPECT_LT(chi2, 25.0);
  // Without the temperature the same draws are far off: the bound can fail.
  EXPECT_GT(chi_square(histogram(sampler, logits, p, kN), softmax(logits, 1.0), kN), 100.0);
}

TEST(SamplerRandom, TopKKeepsExactlyKTokens) {
  Sampler sampler;
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 3;
  const std::vector<float> logits = {0.1f, 0.9f, 0.3f, 0.8f, 0.0f, 0.7f, 0.2f};
  EXPECT_EQ(keys_of(histogram(sampler, logits, p, 3000)), (std::set<TokenId>{1, 3, 5}));
}

TEST(SamplerRandom, TopKBreaksTiesAtTheBoundaryBySmallerId) {
  Sampler sampler;
  SamplingParams p;
  p.top_k = 2;
  const std::vector<float> logits = {1.0f, 5.0f, 5.0f, 5.0f};
  EXPECT_EQ(keys_of(histogram(sampler, logits, p, 2000)), (std::set<TokenId>{1, 2}));
}

TEST(SamplerRandom, TopPKeepsTheMinimalNucleus) {
  Sampler sampler;
  const std::vector<float> logits = {std::log(0.05f), std::log(0.5f), std::log(0.15f),
                                     std::log(0.3f)};
  SamplingParams p;
  p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.5 + 0.3
  EXPECT_EQ(keys_of(histogram(sampler, logits, p, 3000)), (std::set<TokenId>{1, 3}));
  p.top_p = 0.85f;  // needs the 0.15 token as well
  EXPECT_EQ(keys_of(histogram(sampler, logits, p, 3000)), (std::set<TokenId>{1, 2, 3}));
  p.top_p = 0.01f;  // always at least the top token
  EXPECT_EQ(keys_of(histogram(sampler, logits, p, 500)), (std::set<TokenId>{1}));
}

TEST(SamplerRandom, TopPRenormalisesTheNucleus) {
  Sampler sampler;
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.top_p = 0.75f;
  constexpr int kN = 20000;
  const std::vector<double> expected = {0.5 / 0.8, 0.3 / 0.8, 0.0};
  EXPECT_LT(chi_square(histogram(sampler, logits, p, kN), expected, kN), 20.0);
}

TEST(SamplerRandom, TopPAppliesToTheTopKRenormalisedDistribution) {
  Sampler sampler;
  // Over the full vocabulary token 0 has 0.4 < top_p = 0.5, so two tokens would be kept;
  // renormalised over the top 2 it has 0.4 / 0.7 = 0.57 >= 0.5 and is kept alone (vLLM's order).
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.3f)};
  SamplingParams p;
  p.top_k = 2;
  p.top_p = 0.5f;
  EXPECT_EQ(keys_of(histogram(sampler, logits, p, 1000)), (std::set<TokenId>{0}));
}

// ---- min_tokens ----

TEST(SamplerMinTokens, MasksEosAndStopTokensUntilReached) {
  Sampler sampler;
  SamplingParams p = greedy_params();
  p.min_tokens = 3;
  p.stop_token_ids = {1};
  const std::vector<float> logits = {5.0f, 4.0f, 3.0f, 1.0f};  // 0 = EOS, 1 = stop token
  SamplingContext ctx = context(p);
  ctx.eos_token_id = 0;
  for (int32_t n = 0; n < 3; ++n) {
    ctx.num_output_tokens = n;
    EXPECT_EQ(sampler.sample(logits, ctx).token, 2) << "after " << n << " outputs";
  }
  ctx.num_output_tokens = 3;
  EXPECT_EQ(sampler.sample(logits, ctx).token, 0);
}

TEST(SamplerMinTokens, MasksEosEvenWithIgnoreEos) {
  Sampler sampler;
  SamplingParams p = greedy_params();
  p.min_tokens = 1;
  p.ignore_eos = true;
  SamplingContext ctx = context(p);
  ctx.eos_token_id = 0;
  EXPECT_EQ(sampler.sample(std::vector<float>{5.0f, 1.0f}, ctx).token, 1);
}

TEST(SamplerMinTokens, RandomSamplingNeverDrawsAMaskedToken) {
  Sampler sampler;
  SamplingParams p;
  p.min_tokens = 2;
  p.stop_token_ids = {3};
  const std::vector<float> logits = {2.0f, 0.0f, 0.0f, 2.0f};
  std::set<TokenId> seen;
  for (int i = 0; i < 2000; ++i) {
    SamplingContext ctx{&p, kKey, i, 1, TokenId{0}};
    seen.insert(sampler.sample(logits, ctx).token);
  }
  EXPECT_EQ(seen, (std::set<TokenId>{1, 2}));
}

TEST(SamplerMinTokens, MaskedTokensKeepTheirRawLogprob) {
  Sampler sampler;
  SamplingParams p = greedy_params();
  p.min_tokens = 1;
  p.logprobs = 1;
  SamplingContext ctx = context(p);
  ctx.eos_token_id = 0;
  const SampledToken t = sampler.sample(std::vector<float>{3.0f, 1.0f}, ctx);
  EXPECT_EQ(t.token, 1);
  ASSERT_EQ(t.top.size(), 1u);
  EXPECT_EQ(t.top[0].token, 0);
  EXPECT_NEAR(t.top[0].logprob, 3.0 - std::log(std::exp(3.0) + std::exp(1.0)), 1e-6);
}

// ---- Logprobs ----

TEST(SamplerLogprobs, TopNIsSortedWithTiesBySmallerId) {
  Sampler sampler;
  SamplingParams p = greedy_params();
  p.logprobs = 4;
  const SampledToken t =
      sampler.sample(std::vector<float>{0.5f, 2.0f, 0.5f, 3.0f, -1.0f, 0.5f}, context(p));
  ASSERT_EQ(t.top.size(), 4u);
  EXPECT_EQ(t.top[0].token, 3);
  EXPECT_EQ(t.top[1].token, 1);
  EXPECT_EQ(t.top[2].token, 0);
  EXPECT_EQ(t.top[3].token, 2);
  for (size_t i = 1; i < t.top.size(); ++i) EXPECT_LE(t.top[i].logprob, t.top[i - 1].logprob);
}

TEST(SamplerLogprobs, FullVocabularyProbabilitiesSumToOne) {
  Sampler sampler;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(5000);
  for (float& x : logits) x = normal(rng);
  SamplingParams p;
  p.logprobs = 5000;
  const SampledToken t = sampler.sample(logits, context(p));
  ASSERT_EQ(t.top.size(), logits.size());
  double sum = 0.0;
  for (const TokenLogprob& lp : t.top) sum += std::exp(static_cast<double>(lp.logprob));
  EXPECT_NEAR(sum, 1.0, 1e-5);
  const auto sampled = std::find_if(t.top.begin(), t.top.end(),
                                    [&](const TokenLogprob& lp) { return lp.token == t.token; });
  ASSERT_NE(sampled, t.top.end());
  EXPECT_EQ(sampled->logprob, t.logprob);
}

TEST(SamplerLogprobs, AreRawAndIgnoreTemperatureAndTopK) {
  Sampler sampler;
  SamplingParams p;
  p.temperature = 0.3f;
  p.top_k = 2;
  p.logprobs = 0;
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f};
  const SampledToken t = sampler.sample(logits, context(p));
  EXPECT_TRUE(t.top.empty());
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.0));
  EXPECT_NEAR(t.logprob, logits[t.token] - lse, 1e-6);
}

TEST(SamplerLogprobs, UnsetMeansNoTopAndTooManyIsCapped) {
  Sampler sampler;
  SamplingParams p = greedy_params();
  SampledToken t = sampler.sample(std::vector<float>{1.0f, 2.0f}, context(p));
  EXPECT_TRUE(t.top.empty());
  p.logprobs = 10;
  t = sampler.sample(std::vector<float>{1.0f, kNaN}, context(p));
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_NEAR(t.top[0].logprob, 0.0f, 1e-7);
  EXPECT_EQ(t.top[1].logprob, -kInf);  // NaN counts as -inf
}

TEST(SamplerLogprobs, NotRequestedLeavesLogprobNaNAndTopEmpty) {
  Sampler sampler;
  const std::vector<float> logits = normal_logits(3000, 9);
  SamplingParams greedy = greedy_params();
  SamplingParams random;
  random.temperature = 0.8f;
  random.top_p = 0.9f;
  for (const SamplingParams* p : {&greedy, &random}) {
    SamplingParams asked = *p;
    asked.logprobs = 2;
    SampledToken out;
    sampler.sample_into(logits, context(asked, 4), out);  // fills `top` and `logprob`
    ASSERT_EQ(out.top.size(), 2u);
    ASSERT_FALSE(std::isnan(out.logprob));
    const TokenId token = out.token;
    sampler.sample_into(logits, context(*p, 4), out);  // the same output slot, not asked
    EXPECT_EQ(out.token, token);  // asking for logprobs never changes the token
    EXPECT_TRUE(std::isnan(out.logprob));
    EXPECT_TRUE(out.top.empty());
  }
}

// ---- Determinism ----

TEST(SamplerDeterminism, SameKeyAndIndexGiveTheSameTokenAcrossSamplers) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(1000);
  for (float& x : logits) x = normal(rng);
  SamplingParams p;
  p.temperature = 1.3f;
  Sampler a, b;
  std::vector<TokenId> first;
  for (int i = 0; i < 50; ++i) first.push_back(a.sample(logits, context(p, i)).token);
  for (int i = 49; i >= 0; --i) EXPECT_EQ(b.sample(logits, context(p, i)).token, first[i]);
  int differ = 0;
  for (int i = 0; i < 50; ++i)
    differ += a.sample(logits, context(p, i, kKey + 1)).token != first[i];
  EXPECT_GT(differ, 25);  // another key is another stream
}

// The exact draw of sampler.h, written out naively (full sorts, no scratch reuse).
TokenId reference_draw(const std::vector<float>& x, const SamplingParams& p, uint64_t key,
                       int32_t index) {
  std::vector<TokenId> kept;
  std::vector<float> s(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    s[i] = x[i] / p.temperature;
    kept.push_back(static_cast<TokenId>(i));
  }
  auto by_value = [](const std::vector<float>& v) {
    return [&v](TokenId a, TokenId b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
  };
  if (p.top_k > 0 && p.top_k < static_cast<int32_t>(kept.size())) {
    std::sort(kept.begin(), kept.end(), by_value(s));
    kept.resize(p.top_k);
    std::sort(kept.begin(), kept.end());
  }
  float m = -kInf;
  for (TokenId t : kept) m = std::max(m, s[t]);
  std::vector<float> w(x.size(), 0.0f);
  double total = 0.0;
  for (TokenId t : kept) total += w[t] = std::exp(s[t] - m);
  if (p.top_p < 1.0f) {
    std::sort(kept.begin(), kept.end(), by_value(w));
    double mass = 0.0;
    size_t n = 0;
    while (n < kept.size() && (n == 0 || mass < static_cast<double>(p.top_p) * total)) {
      mass += w[kept[n++]];
    }
    kept.resize(n);
    std::sort(kept.begin(), kept.end());
    total = 0.0;
    for (TokenId t : kept) total += w[t];
  }
  const double target = sampling_uniform(key, index) * total;
  double running = 0.0;
  for (TokenId t : kept) {
    running += w[t];
    if (w[t] > 0.0f && running > target) return t;
  }
  return kept.back();
}

TEST(SamplerDeterminism, MatchesTheDocumentedDrawExactly) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> logits(3000);
  for (float& x : logits) x = normal(rng);
  Sampler sampler;
  const std::vector<std::tuple<float, int32_t, float>> settings = {
      {1.0f, 0, 1.0f}, {0.6f, 50, 1.0f}, {1.0f, 0, 0.9f}, {0.8f, 400, 0.7f}, {2.0f, -1, 0.99f}};
  for (const auto& [temperature, top_k, top_p] : settings) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    for (int i = 0; i < 40; ++i) {
      ASSERT_EQ(sampler.sample(logits, context(p, i)).token, reference_draw(logits, p, kKey, i))
          << "T=" << temperature << " k=" << top_k << " p=" << top_p << " index " << i;
    }
  }
}

// One context per row covering every path: greedy with and without logprobs, temperature,
// top-k, top-p, both, min_tokens masking (greedy and random), a masked argmax.
std::vector<SamplingParams> mixed_params(int32_t rows) {
  std::vector<SamplingParams> params(rows);
  for (int32_t r = 0; r < rows; ++r) {
    SamplingParams& p = params[r];
    switch (r % 8) {
      case 0: p = greedy_params(); break;
      case 1: p.temperature = 0.9f; break;
      case 2:
        p.top_k = 5;
        p.logprobs = 0;
        break;
      case 3:
        p.top_p = 0.8f;
        p.logprobs = 3;
        break;
      case 4:
        p.top_k = 20;
        p.top_p = 0.5f;
        p.seed = 99;
        break;
      case 5:
        p.min_tokens = 4;
        p.stop_token_ids = {7, 9};
        break;
      case 6:
        p = greedy_params();
        p.logprobs = 5;
        break;
      case 7:
        p = greedy_params();
        p.min_tokens = 2;
        p.stop_token_ids = {r};
        break;
    }
  }
  return params;
}

std::vector<SamplingContext> contexts_for(const std::vector<SamplingParams>& params) {
  std::vector<SamplingContext> ctx;
  for (size_t r = 0; r < params.size(); ++r) {
    const auto row = static_cast<int32_t>(r);
    ctx.push_back({&params[r], request_sampling_key("req-" + std::to_string(r), params[r].seed),
                   row * 3, row % 3, TokenId{1}});
  }
  return ctx;
}

TEST(SamplerBatch, EachRowEqualsSamplingItAloneWithOneAndTwoThreads) {
  constexpr int32_t kRows = 32, kVocab = 8191;
  std::vector<float> logits = normal_logits(size_t{kRows} * kVocab, 5, 1.5f);
  for (int32_t r = 7; r < kRows; r += 8)
    logits[static_cast<size_t>(r) * kVocab + r] = 50.0f;  // masked max
  const std::vector<SamplingParams> params = mixed_params(kRows);
  const std::vector<SamplingContext> ctx = contexts_for(params);
  Sampler single_sampler;
  std::vector<SampledToken> alone;
  for (int32_t r = 0; r < kRows; ++r) {
    alone.push_back(single_sampler.sample(
        std::span<const float>(logits.data() + static_cast<size_t>(r) * kVocab, kVocab), ctx[r]));
  }
  Sampler batch_sampler;  // one sampler across thread counts: its scratch is reused
  for (const int threads : {1, 2, 1}) {
    const OmpThreads scope(threads);
    std::vector<SampledToken> out(kRows);
    batch_sampler.sample_batch(logits.data(), kRows, kVocab, ctx, out);
    for (int32_t r = 0; r < kRows; ++r) {
      expect_identical(out[r], alone[r],
                       "row " + std::to_string(r) + ", " + std::to_string(threads) + " threads");
    }
  }
}

TEST(SamplerBatch, SameSeedGivesTheSameTokensWhateverTheId) {
  SamplingParams p;
  p.seed = 1234;
  std::vector<float> logits(64);
  std::iota(logits.begin(), logits.end(), 0.0f);
  for (float& x : logits) x = std::sin(x);
  Sampler sampler;
  for (int i = 0; i < 30; ++i) {
    const SamplingContext a{&p, request_sampling_key("a", p.seed), i, i, std::nullopt};
    const SamplingContext b{&p, request_sampling_key("b", p.seed), i, i, std::nullopt};
    ASSERT_EQ(sampler.sample(logits, a).token, sampler.sample(logits, b).token);
  }
}

// ---- Errors ----

TEST(SamplerErrors, BadInputsAreInvalidArguments) {
  Sampler sampler;
  SamplingParams p;
  const std::vector<float> ok = {0.0f, 1.0f};
  EXPECT_THROW(sampler.sample(std::vector<float>{}, context(p)), InvalidArgument);
  EXPECT_THROW(sampler.sample(ok, SamplingContext{}), InvalidArgument);  // null params
  EXPECT_THROW(sampler.sample(std::vector<float>{-kInf, -kInf}, context(p)), InvalidArgument);
  EXPECT_THROW(sampler.sample(std::vector<float>{kNaN, kNaN}, context(p)), InvalidArgument);
  EXPECT_THROW(sampler.sample(std::vector<float>{0.0f, kInf}, context(p)), InvalidArgument);
  SamplingContext bad_index = context(p);
  bad_index.output_index = -1;
  EXPECT_THROW(sampler.sample(ok, bad_index), InvalidArgument);
  SamplingParams bad_top_p;
  bad_top_p.top_p = 0.0f;
  EXPECT_THROW(sampler.sample(ok, context(bad_top_p)), InvalidArgument);
}

TEST(SamplerErrors, PositiveInfinityIsReportedAtItsToken) {
  Sampler sampler;
  SamplingParams p;
  std::vector<float> logits(2000, 0.0f);
  logits[777] = kInf;
  logits[1500] = kInf;
  try {
    sampler.sample(logits, context(p));
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("token 777 is +inf"), std::string::npos) << e.what();
  }
}

TEST(SamplerErrors, EverythingMaskedByMinTokensIsRejected) {
  Sampler sampler;
  SamplingParams p;
  p.min_tokens = 2;
  p.stop_token_ids = {1};
  SamplingContext ctx = context(p);
  ctx.eos_token_id = 0;
  try {
    sampler.sample(std::vector<float>{1.0f, 2.0f, -kInf}, ctx);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("min_tokens"), std::string::npos) << e.what();
  }
}

TEST(SamplerErrors, BatchRejectsABadRowNamingItAndWritesNothing) {
  constexpr int32_t kRows = 3, kVocab = 4;
  std::vector<float> logits(kRows * kVocab, 0.5f);
  std::fill(logits.begin() + 2 * kVocab, logits.end(), kNaN);
  SamplingParams p = greedy_params();
  std::vector<SamplingContext> ctx(kRows, context(p));
  std::vector<SampledToken> out(kRows);
  for (auto& t : out) t.token = -7;
  Sampler sampler;
  try {
    sampler.sample_batch(logits.data(), kRows, kVocab, ctx, out);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("row 2"), std::string::npos) << e.what();
  }
  for (const auto& t : out) EXPECT_EQ(t.token, -7);
  EXPECT_THROW(sampler.sample_batch(logits.data(), kRows, kVocab, std::span(ctx).first(2), out),
               InvalidArgument);
  EXPECT_THROW(sampler.sample_batch(logits.data(), kRows, 0, ctx, out), InvalidArgument);
  EXPECT_THROW(sampler.sample_batch(nullptr, kRows, kVocab, ctx, out), InvalidArgument);
}

TEST(SamplerErrors, BatchReportsTheFirstBadRowWhateverTheThreadCount) {
  constexpr int32_t kRows = 8, kVocab = 600;
  std::vector<float> logits(kRows * kVocab, 0.5f);
  std::fill(logits.begin() + 3 * kVocab, logits.begin() + 4 * kVocab, -kInf);  // row 3
  logits[6 * kVocab + 10] = kInf;                                              // row 6
  SamplingParams p;
  std::vector<SamplingContext> ctx(kRows, context(p));
  Sampler sampler;
  for (const int threads : {1, 2}) {
    const OmpThreads scope(threads);
    std::vector<SampledToken> out(kRows);
    for (auto& t : out) t.token = -7;
    try {
      sampler.sample_batch(logits.data(), kRows, kVocab, ctx, out);
      FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("row 3:"), std::string::npos) << e.what();
    }
    for (const auto& t : out) EXPECT_EQ(t.token, -7) << threads << " threads";
  }
}

}  // namespace
}  // namespace pagedkv
