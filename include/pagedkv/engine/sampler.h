// pagedkv/engine/sampler.h - picks each request's next token from its logits row, with vLLM
// v1's sampling semantics (greedy, temperature, top-k, top-p, min_tokens, raw logprobs) and
// randomness that depends only on the request and the token's index (sampling_rng.h).
//
// Example:
//   Sampler sampler;                                  // reuse it: it keeps scratch buffers
//   SamplingContext ctx{&params, request_sampling_key(id, params.seed),
//                       /*output_index=*/n, /*num_output_tokens=*/n, /*eos=*/2};
//   SampledToken t = sampler.sample(logits_row, ctx);   // logits_row [vocab]
//   // t.token; when params.logprobs is set: t.logprob (raw log-probability of t.token) and
//   // t.top (the top params.logprobs tokens); when it is unset, t.logprob is NaN, t.top empty
//
// Semantics, in order (vLLM v1 Sampler with the default logprobs_mode "raw_logprobs"):
//   0. NaN logits count as -inf; a +inf logit is an error.
//   1. Logprobs are log_softmax of the logits as given, before min_tokens, temperature, top-k
//      and top-p: lp[i] = float(x[i] - M) - float(log(S)), M = max_i x[i],
//      S = sum_i exp(float(x[i] - M)) with the exps in float32 summed in double in token-id
//      order. Computed only when params.logprobs is set (0 included): SampledToken::logprob
//      is then lp[token] and `top` holds the params.logprobs (capped at vocab) tokens of
//      highest lp, descending, ties by smaller id. When params.logprobs is unset (nullopt)
//      nothing of step 1 is computed: logprob is NaN (never a valid logprob, so "not asked"
//      cannot pass for a probability; test with std::isnan) and `top` is empty. The token never
//      depends on whether logprobs were asked for. As in vLLM, a token masked in step 2 keeps
//      its raw logprob.
//   2. min_tokens: while num_output_tokens < min_tokens, every stop_token_id and the EOS token
//      get -inf - the EOS token even with ignore_eos, as vLLM adds EOS to all_stop_token_ids
//      regardless of ignore_eos. Ids outside [0, vocab) cannot be sampled and are skipped.
//   3. Greedy when temperature < 1e-5 (vLLM's _SAMPLING_EPS) or top_k == 1: the largest logit,
//      ties -> the smallest id.
//   4. Otherwise s[i] = x[i] / temperature (float32) over the unmasked, non-NaN tokens (should
//      the division overflow float for every candidate or for the largest, step 3 is used).
//   5. top-k (0, -1 or >= candidates = off): keep the k largest s, ties by smaller id, so
//      exactly k tokens (vLLM keeps every token tied with the k-th value; ties are rare).
//   6. Weights w[i] = exp(float(s[i] - max kept s)) in float32; W = their sum in double in
//      token-id order.
//   7. top-p (1 = off): order the kept tokens by (w desc, id asc) and keep the shortest prefix
//      whose weight, summed in double in that order, reaches top_p * W (at least one token);
//      W is then re-summed over that nucleus in token-id order. This is vLLM's rule (drop a
//      token when the mass of the tokens above it is already >= top_p), over the top-k
//      renormalised distribution as in vLLM.
//   8. Draw: u = sampling_uniform(request_key, output_index); walk the kept tokens in
//      ascending id order summing w in double; the token is the first whose running sum
//      exceeds u * W (if rounding leaves none, the last kept token with w > 0).
//   The result depends only on (logits row, params, request_key, output_index,
//   num_output_tokens, eos_token_id): never on the batch it came in or on earlier calls.
//
// Errors (InvalidArgument unless noted; a failed call writes nothing):
//   - params is null or fails SamplingParams::validate();
//   - output_index or num_output_tokens < 0; eos_token_id < 0;
//   - logits size != vocab, vocab < 1, rows < 0, ctx / out sizes != rows;
//   - a +inf logit, or a row where no token can be sampled (every logit NaN or -inf after
//     step 2): the message names the row.
//   sample_batch checks every row before writing any output.
//
// Cost: a greedy row without logprobs is one SIMD argmax pass over the logits (the +inf and
// "nothing to sample" checks ride on it; a second scan only when min_tokens masks the argmax).
// Logprobs add one exp pass and, for `top`, one selection pass; random sampling adds steps 4-8.
//
// Threads: sample_batch first checks every row on the calling thread (one argmax pass each;
// the first bad row is reported), then splits the rows over OpenMP threads
// (omp_get_max_threads()) when at least two of them need more than the argmax (logprobs or a
// random draw); each thread has its own scratch, kept by the Sampler and reused. Each row's
// result is bitwise the same whatever the thread count or which thread took it. A Sampler is not
// thread-safe: one Sampler per calling thread. Once the scratch has grown to the vocabulary (per
// thread), sample_into and sample_batch allocate nothing except the first growth of an output's
// `top` vector (sample() returns a fresh SampledToken, so its `top` is allocated on each call that
// asks for logprobs).
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/engine/sampling_rng.h"
#include "pagedkv/scheduler/sampling_params.h"

namespace pagedkv {

struct TokenLogprob {
  TokenId token;
  float logprob;
};

struct SampledToken {
  TokenId token = 0;
  float logprob = 0.0f;           // raw logprob of `token` (step 1); NaN if logprobs unset
  std::vector<TokenLogprob> top;  // [min(params.logprobs, vocab)] descending, ties by smaller id;
                                  // empty when params.logprobs is unset
};

struct SamplingContext {
  const SamplingParams* params = nullptr;  // not owned; must outlive the call
  uint64_t request_key = 0;                // request_sampling_key(request id, params->seed)
  int32_t output_index = 0;                // which output token this is: 0 for the first
  int32_t num_output_tokens = 0;           // outputs generated so far (min_tokens, step 2)
  std::optional<TokenId> eos_token_id;     // the model's EOS token, if any
};

class Sampler {
 public:
  // logits [vocab] -> the sampled token of one request.
  SampledToken sample(std::span<const float> logits, const SamplingContext& ctx);

  // As sample(), writing into `out` (reusing its `top` capacity).
  void sample_into(std::span<const float> logits, const SamplingContext& ctx, SampledToken& out);

  // logits [rows, vocab] row-major; ctx [rows]; out [rows]. Row i gives exactly what
  // sample(row i, ctx[i]) gives, bit for bit, on any number of OpenMP threads.
  void sample_batch(const float* logits, int32_t rows, int32_t vocab,
                    std::span<const SamplingContext> ctx, std::span<SampledToken> out);

 private:
  struct RowCheck {
    float max_logit;  // largest raw logit (finite)
    TokenId greedy;   // step 3's token
  };
  struct Scratch {
    std::vector<float> weight;   // [vocab] scaled logit, then weight, of each candidate token
    std::vector<TokenId> order;  // [vocab] candidate token ids (first `count` are live)
  };

  static void check_context(const SamplingContext& ctx, int32_t row);
  static RowCheck check_row(std::span<const float> logits, const SamplingContext& ctx, int32_t row);
  static void sample_checked(std::span<const float> logits, const SamplingContext& ctx,
                             RowCheck check, Scratch& scratch, SampledToken& out);
  static TokenId draw(std::span<const float> logits, const SamplingContext& ctx, Scratch& scratch);
  static int32_t keep_top_p(Scratch& scratch, int32_t count, double total, float top_p);
  void rethrow_first_error() const;

  std::vector<Scratch> scratch_;                // [OpenMP threads] one per thread, kept
  std::vector<RowCheck> row_checks_;            // [rows] from sample_batch's check pass
  std::vector<std::exception_ptr> row_errors_;  // [rows] what each row threw, if anything
};

}  // namespace pagedkv
