// The token sampler (semantics and the exact draw in sampler.h). Each row is checked in full
// before anything is written, so sample_batch keeps the strong guarantee.
#include "pagedkv/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kGreedyTemperature = 1e-5f;  // vLLM's _SAMPLING_EPS

// True when step 2 (min_tokens) sends `token` to -inf for this request.
bool is_masked(TokenId token, const SamplingContext& ctx) {
  const SamplingParams& p = *ctx.params;
  if (ctx.num_output_tokens >= p.min_tokens) return false;
  if (ctx.eos_token_id && token == *ctx.eos_token_id) return true;
  return std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) !=
         p.stop_token_ids.end();
}

bool min_tokens_active(const SamplingContext& ctx) {
  return ctx.num_output_tokens < ctx.params->min_tokens;
}

bool is_greedy(const SamplingParams& p) {
  return p.temperature < kGreedyTemperature || p.top_k == 1;
}

// Largest finite unmasked logit, ties -> smallest id; -1 when there is none (NaN and -inf
// never win: the comparison is false for them).
TokenId greedy_pick(std::span<const float> logits, const SamplingContext& ctx) {
  const bool masking = min_tokens_active(ctx);
  float best = kNegInf;
  TokenId best_id = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float x = logits[i];
    if (x > best) {
      if (masking && is_masked(static_cast<TokenId>(i), ctx)) continue;
      best = x;
      best_id = static_cast<TokenId>(i);
    }
  }
  return best_id;
}

// log(sum_i exp(x[i] - max_logit)) in id order; NaN and -inf contribute nothing.
float log_normalizer(std::span<const float> logits, float max_logit) {
  double sum = 0.0;
  for (const float x : logits) {
    if (x > kNegInf) sum += static_cast<double>(std::exp(x - max_logit));
  }
  return static_cast<float>(std::log(sum));
}

float raw_logprob(float x, float max_logit, float log_sum) {
  if (!(x > kNegInf)) return kNegInf;
  return (x - max_logit) - log_sum;
}

// a ranks before b: larger value, then smaller id.
bool ranks_before(float va, TokenId a, float vb, TokenId b) {
  return va > vb || (va == vb && a < b);
}

// The n tokens of highest raw logit, best first, into `top` (a bounded heap; worst on top).
void fill_top(std::span<const float> logits, int32_t n, float max_logit, float log_sum,
              std::vector<TokenLogprob>& top) {
  top.clear();
  if (n <= 0) return;
  auto better = [](const TokenLogprob& a, const TokenLogprob& b) {
    return ranks_before(a.logprob, a.token, b.logprob, b.token);
  };
  for (size_t i = 0; i < logits.size(); ++i) {
    const float x = std::isnan(logits[i]) ? kNegInf : logits[i];
    const TokenLogprob cand{static_cast<TokenId>(i), x};  // logprob holds the logit for now
    if (static_cast<int32_t>(top.size()) < n) {
      top.push_back(cand);
      std::push_heap(top.begin(), top.end(), better);
    } else if (better(cand, top.front())) {
      std::pop_heap(top.begin(), top.end(), better);
      top.back() = cand;
      std::push_heap(top.begin(), top.end(), better);
    }
  }
  std::sort_heap(top.begin(), top.end(), better);
  for (TokenLogprob& t : top) t.logprob = raw_logprob(t.logprob, max_logit, log_sum);
}

}  // namespace

SampledToken Sampler::sample(std::span<const float> logits, const SamplingContext& ctx) {
  SampledToken out;
  sample_into(logits, ctx, out);
  return out;
}

void Sampler::sample_into(std::span<const float> logits, const SamplingContext& ctx,
                          SampledToken& out) {
  check_context(ctx, 0);
  PAGEDKV_CHECK_ARG(!logits.empty(), "logits must hold at least one token, got vocab 0");
  PAGEDKV_CHECK_ARG(logits.size() <= static_cast<size_t>(std::numeric_limits<TokenId>::max()),
                    "vocab {} exceeds the TokenId range", logits.size());
  sample_checked(logits, ctx, check_row(logits, ctx, 0), out);
}

void Sampler::sample_batch(const float* logits, int32_t rows, int32_t vocab,
                           std::span<const SamplingContext> ctx, std::span<SampledToken> out) {
  PAGEDKV_CHECK_ARG(rows >= 0, "rows must be >= 0, got {}", rows);
  PAGEDKV_CHECK_ARG(vocab >= 1, "vocab must be >= 1, got {}", vocab);
  PAGEDKV_CHECK_ARG(ctx.size() == static_cast<size_t>(rows),
                    "ctx must hold one context per row ({} rows), got {}", rows, ctx.size());
  PAGEDKV_CHECK_ARG(out.size() == static_cast<size_t>(rows),
                    "out must hold one slot per row ({} rows), got {}", rows, out.size());
  PAGEDKV_CHECK_ARG(rows == 0 || logits != nullptr, "logits is null for {} rows", rows);
  const auto row_span = [&](int32_t r) {
    return std::span<const float>(logits + static_cast<size_t>(r) * vocab, vocab);
  };
  row_checks_.resize(rows);
  for (int32_t r = 0; r < rows; ++r) {
    check_context(ctx[r], r);
    row_checks_[r] = check_row(row_span(r), ctx[r], r);
  }
  for (int32_t r = 0; r < rows; ++r) sample_checked(row_span(r), ctx[r], row_checks_[r], out[r]);
}

void Sampler::check_context(const SamplingContext& ctx, int32_t row) const {
  PAGEDKV_CHECK_ARG(ctx.params != nullptr, "row {}: SamplingContext::params is null", row);
  ctx.params->validate();
  PAGEDKV_CHECK_ARG(ctx.output_index >= 0, "row {}: output_index must be >= 0, got {}", row,
                    ctx.output_index);
  PAGEDKV_CHECK_ARG(ctx.num_output_tokens >= 0, "row {}: num_output_tokens must be >= 0, got {}",
                    row, ctx.num_output_tokens);
  PAGEDKV_CHECK_ARG(!ctx.eos_token_id || *ctx.eos_token_id >= 0,
                    "row {}: eos_token_id must be >= 0, got {}", row, ctx.eos_token_id.value_or(0));
}

// Rejects +inf and rows with nothing to sample; returns the row's max logit (finite) and its
// greedy token, which the greedy path then reuses.
Sampler::RowCheck Sampler::check_row(std::span<const float> logits, const SamplingContext& ctx,
                                     int32_t row) const {
  float max_logit = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float x = logits[i];
    if (x == std::numeric_limits<float>::infinity()) [[unlikely]] {
      detail::fail_invalid_argument("row {}: logit of token {} is +inf", row, i);
    }
    if (x > max_logit) max_logit = x;
  }
  PAGEDKV_CHECK_ARG(max_logit > kNegInf,
                    "row {}: no token can be sampled (every logit of {} is NaN or -inf)", row,
                    logits.size());
  const TokenId greedy = greedy_pick(logits, ctx);
  PAGEDKV_CHECK_ARG(greedy >= 0,
                    "row {}: no token can be sampled (every finite logit is masked by "
                    "min_tokens = {}, {} outputs so far)",
                    row, ctx.params->min_tokens, ctx.num_output_tokens);
  return {max_logit, greedy};
}

void Sampler::sample_checked(std::span<const float> logits, const SamplingContext& ctx,
                             RowCheck check, SampledToken& out) {
  const SamplingParams& p = *ctx.params;
  const float max_logit = check.max_logit;
  const TokenId token = is_greedy(p) ? check.greedy : draw(logits, ctx);
  PAGEDKV_ASSERT(token >= 0 && static_cast<size_t>(token) < logits.size(),
                 "sampled token {} outside vocab {}", token, logits.size());
  const float log_sum = log_normalizer(logits, max_logit);
  out.token = token;
  out.logprob = raw_logprob(logits[token], max_logit, log_sum);
  if (p.logprobs) {
    const auto n = static_cast<int32_t>(std::min<size_t>(*p.logprobs, logits.size()));
    fill_top(logits, n, max_logit, log_sum, out.top);
  } else {
    out.top.clear();
  }
}

// Steps 4-8 of sampler.h.
TokenId Sampler::draw(std::span<const float> logits, const SamplingContext& ctx) {
  const SamplingParams& p = *ctx.params;
  const auto vocab = static_cast<int32_t>(logits.size());
  weight_.resize(vocab);
  order_.resize(vocab);
  const bool masking = min_tokens_active(ctx);
  int32_t count = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    const float s = logits[i] / p.temperature;
    if (!(s > kNegInf) || (masking && is_masked(i, ctx))) continue;
    weight_[i] = s;
    order_[count++] = i;
  }
  // Scaling can only lose candidates by overflow (|logit| / temperature beyond float).
  if (count == 0) return greedy_pick(logits, ctx);
  auto first = order_.begin();
  if (p.top_k > 0 && p.top_k < count) {
    std::nth_element(first, first + p.top_k, first + count, [&](TokenId a, TokenId b) {
      return ranks_before(weight_[a], a, weight_[b], b);
    });
    count = p.top_k;
    std::sort(first, first + count);
  }
  float max_s = kNegInf;
  for (int32_t j = 0; j < count; ++j) max_s = std::max(max_s, weight_[order_[j]]);
  if (!std::isfinite(max_s)) return greedy_pick(logits, ctx);
  double total = 0.0;
  for (int32_t j = 0; j < count; ++j) {
    float& w = weight_[order_[j]];
    w = std::exp(w - max_s);
    total += w;
  }
  if (p.top_p < 1.0f) {
    count = keep_top_p(count, total, p.top_p);
    std::sort(first, first + count);
    total = 0.0;
    for (int32_t j = 0; j < count; ++j) total += weight_[order_[j]];
  }
  const double target = sampling_uniform(ctx.request_key, ctx.output_index) * total;
  double running = 0.0;
  TokenId last_positive = order_[0];
  for (int32_t j = 0; j < count; ++j) {
    const float w = weight_[order_[j]];
    if (w <= 0.0f) continue;
    running += w;
    last_positive = order_[j];
    if (running > target) return order_[j];
  }
  return last_positive;
}

// Moves the nucleus to the front of order_ and returns its size. Orders only as many of the
// heaviest tokens as needed: each round selects the next block (8x the sorted prefix, at least
// 64) from the unsorted rest with nth_element and sorts just that block.
int32_t Sampler::keep_top_p(int32_t count, double total, float top_p) {
  const double threshold = static_cast<double>(top_p) * total;
  auto heavier = [&](TokenId a, TokenId b) { return ranks_before(weight_[a], a, weight_[b], b); };
  auto first = order_.begin();
  double mass = 0.0;
  int32_t kept = 0;
  for (int32_t sorted = 0; sorted < count;) {
    const int32_t next = std::min(count, std::max(64, sorted * 8));
    if (next < count) std::nth_element(first + sorted, first + next, first + count, heavier);
    std::sort(first + sorted, first + next, heavier);
    while (kept < next && (kept == 0 || mass < threshold)) mass += weight_[order_[kept++]];
    if (mass >= threshold) return kept;
    sorted = next;
  }
  return count;  // rounding kept the mass just short of the threshold: keep everything
}

}  // namespace pagedkv
