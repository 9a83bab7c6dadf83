// The token sampler (semantics and the exact draw in sampler.h). Each row is checked in full
// before anything is written, so sample_batch keeps the strong guarantee. sample_batch spreads
// rows over OpenMP threads; a row's result never depends on the thread or scratch it used.
#include "pagedkv/engine/sampler.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
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

// False when the check pass's argmax is the whole answer.
bool needs_more_than_argmax(const SamplingParams& p) {
  return !is_greedy(p) || p.logprobs.has_value();
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

// Four float lanes (SSE2 / NEON; GCC vector extension). `a > m ? a : m` is elementwise and
// false for a NaN `a`, so NaN never becomes a maximum, exactly as in the scalar loop.
using Lanes = float __attribute__((vector_size(16)));
constexpr size_t kLanes = 4;
constexpr size_t kBlock = 256;  // floats per block of the argmax scan (1 KiB)

Lanes load_lanes(const float* x) {
  Lanes v;
  std::memcpy(&v, x, sizeof v);
  return v;
}

Lanes max_lanes(Lanes a, Lanes m) { return a > m ? a : m; }

// Largest non-NaN value of x[0, n), -inf when there is none; +inf counts.
float block_max(const float* x, size_t n) {
  const Lanes neg_inf = {kNegInf, kNegInf, kNegInf, kNegInf};
  Lanes m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
  size_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    m0 = max_lanes(load_lanes(x + i), m0);
    m1 = max_lanes(load_lanes(x + i + kLanes), m1);
    m2 = max_lanes(load_lanes(x + i + 2 * kLanes), m2);
    m3 = max_lanes(load_lanes(x + i + 3 * kLanes), m3);
  }
  m0 = max_lanes(max_lanes(m1, m0), max_lanes(m3, m2));
  float best = kNegInf;
  for (size_t j = 0; j < kLanes; ++j) best = m0[j] > best ? m0[j] : best;
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
}

struct Argmax {
  float value;   // largest non-NaN value (+inf counts), -inf when none
  size_t index;  // first index holding it (0 when value is -inf)
};

// One pass over the row: each block's max in SIMD lanes; the first block whose max beats every
// earlier block holds the first occurrence of the row max, found by a scan of that block only.
Argmax row_argmax(std::span<const float> x) {
  float best = kNegInf;
  size_t best_block = 0;
  for (size_t b = 0; b < x.size(); b += kBlock) {
    const float m = block_max(x.data() + b, std::min(kBlock, x.size() - b));
    if (m > best) {
      best = m;
      best_block = b;
    }
  }
  if (!(best > kNegInf)) return {best, 0};
  size_t i = best_block;
  while (x[i] != best) ++i;
  return {best, i};
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
  const RowCheck check = check_row(logits, ctx, 0);
  if (scratch_.empty()) scratch_.resize(1);
  sample_checked(logits, ctx, check, scratch_[0], out);
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
  int32_t heavy_rows = 0;
  for (int32_t r = 0; r < rows; ++r) {
    check_context(ctx[r], r);
    row_checks_[r] = check_row(row_span(r), ctx[r], r);
    heavy_rows += needs_more_than_argmax(*ctx[r].params);
  }
  // The check pass (one argmax per row) is too cheap to be worth waking threads for, and a
  // greedy row without logprobs has nothing left to do; the rows that still need an exp pass
  // or a draw (~100 us each at vocab 32k) are split over the threads, one at a time as their
  // costs differ. An exception may not leave an OpenMP region: each row keeps its own and the
  // lowest row's is rethrown.
  const auto threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
  if (scratch_.size() < threads) scratch_.resize(threads);
  row_errors_.assign(rows, nullptr);
#pragma omp parallel for schedule(dynamic, 1) if (heavy_rows > 1)
  for (int32_t r = 0; r < rows; ++r) {
    try {
      sample_checked(row_span(r), ctx[r], row_checks_[r], scratch_[omp_get_thread_num()], out[r]);
    } catch (...) {
      row_errors_[r] = std::current_exception();
    }
  }
  rethrow_first_error();
}

void Sampler::rethrow_first_error() const {
  for (const std::exception_ptr& e : row_errors_) {
    if (e) std::rethrow_exception(e);
  }
}

void Sampler::check_context(const SamplingContext& ctx, int32_t row) {
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
// greedy token, which the greedy path then reuses. One SIMD argmax pass; only a row whose argmax
// is masked by min_tokens is scanned again.
Sampler::RowCheck Sampler::check_row(std::span<const float> logits, const SamplingContext& ctx,
                                     int32_t row) {
  const Argmax top = row_argmax(logits);
  if (top.value == std::numeric_limits<float>::infinity()) [[unlikely]] {
    detail::fail_invalid_argument("row {}: logit of token {} is +inf", row, top.index);
  }
  PAGEDKV_CHECK_ARG(top.value > kNegInf,
                    "row {}: no token can be sampled (every logit of {} is NaN or -inf)", row,
                    logits.size());
  auto greedy = static_cast<TokenId>(top.index);
  if (min_tokens_active(ctx) && is_masked(greedy, ctx)) greedy = greedy_pick(logits, ctx);
  PAGEDKV_CHECK_ARG(greedy >= 0,
                    "row {}: no token can be sampled (every finite logit is masked by "
                    "min_tokens = {}, {} outputs so far)",
                    row, ctx.params->min_tokens, ctx.num_output_tokens);
  return {top.value, greedy};
}

// Steps 3-8, then the logprobs of step 1 only when the request asked for them.
void Sampler::sample_checked(std::span<const float> logits, const SamplingContext& ctx,
                             RowCheck check, Scratch& scratch, SampledToken& out) {
  const SamplingParams& p = *ctx.params;
  const TokenId token = is_greedy(p) ? check.greedy : draw(logits, ctx, scratch);
  PAGEDKV_ASSERT(token >= 0 && static_cast<size_t>(token) < logits.size(),
                 "sampled token {} outside vocab {}", token, logits.size());
  out.token = token;
  if (!p.logprobs) {
    out.logprob = std::numeric_limits<float>::quiet_NaN();
    out.top.clear();
    return;
  }
  const float max_logit = check.max_logit;
  const float log_sum = log_normalizer(logits, max_logit);
  out.logprob = raw_logprob(logits[token], max_logit, log_sum);
  const auto n = static_cast<int32_t>(std::min<size_t>(*p.logprobs, logits.size()));
  fill_top(logits, n, max_logit, log_sum, out.top);
}

// Steps 4-8 of sampler.h.
TokenId Sampler::draw(std::span<const float> logits, const SamplingContext& ctx, Scratch& scratch) {
  const SamplingParams& p = *ctx.params;
  const auto vocab = static_cast<int32_t>(logits.size());
  std::vector<float>& weight = scratch.weight;
  std::vector<TokenId>& order = scratch.order;
  weight.resize(vocab);
  order.resize(vocab);
  const bool masking = min_tokens_active(ctx);
  int32_t count = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    const float s = logits[i] / p.temperature;
    if (!(s > kNegInf) || (masking && is_masked(i, ctx))) continue;
    weight[i] = s;
    order[count++] = i;
  }
  // Scaling can only lose candidates by overflow (|logit| / temperature beyond float).
  if (count == 0) return greedy_pick(logits, ctx);
  auto first = order.begin();
  if (p.top_k > 0 && p.top_k < count) {
    std::nth_element(first, first + p.top_k, first + count, [&](TokenId a, TokenId b) {
      return ranks_before(weight[a], a, weight[b], b);
    });
    count = p.top_k;
    std::sort(first, first + count);
  }
  float max_s = kNegInf;
  for (int32_t j = 0; j < count; ++j) max_s = std::max(max_s, weight[order[j]]);
  if (!std::isfinite(max_s)) return greedy_pick(logits, ctx);
  double total = 0.0;
  for (int32_t j = 0; j < count; ++j) {
    float& w = weight[order[j]];
    w = std::exp(w - max_s);
    total += w;
  }
  if (p.top_p < 1.0f) {
    count = keep_top_p(scratch, count, total, p.top_p);
    std::sort(first, first + count);
    total = 0.0;
    for (int32_t j = 0; j < count; ++j) total += weight[order[j]];
  }
  const double target = sampling_uniform(ctx.request_key, ctx.output_index) * total;
  double running = 0.0;
  TokenId last_positive = order[0];
  for (int32_t j = 0; j < count; ++j) {
    const float w = weight[order[j]];
    if (w <= 0.0f) continue;
    running += w;
    last_positive = order[j];
    if (running > target) return order[j];
  }
  return last_positive;
}

// Moves the nucleus to the front of order and returns its size. Orders only as many of the
// heaviest tokens as needed: each round selects the next block (8x the sorted prefix, at least
// 64) from the unsorted rest with nth_element and sorts just that block.
int32_t Sampler::keep_top_p(Scratch& scratch, int32_t count, double total, float top_p) {
  const std::vector<float>& weight = scratch.weight;
  std::vector<TokenId>& order = scratch.order;
  const double threshold = static_cast<double>(top_p) * total;
  auto heavier = [&](TokenId a, TokenId b) { return ranks_before(weight[a], a, weight[b], b); };
  auto first = order.begin();
  double mass = 0.0;
  int32_t kept = 0;
  for (int32_t sorted = 0; sorted < count;) {
    const int32_t next = std::min(count, std::max(64, sorted * 8));
    if (next < count) std::nth_element(first + sorted, first + next, first + count, heavier);
    std::sort(first + sorted, first + next, heavier);
    while (kept < next && (kept == 0 || mass < threshold)) mass += weight[order[kept++]];
    if (mass >= threshold) return kept;
    sorted = next;
  }
  return count;  // rounding kept the mass just short of the threshold: keep everything
}

}  // namespace pagedkv
