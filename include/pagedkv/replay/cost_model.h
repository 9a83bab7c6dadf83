// pagedkv/replay/cost_model.h - the linear model of one model step's duration that `pagedkv
// simulate` uses in place of a model: a fixed cost per step plus costs per prefill token, per
// decoding request and per KV token the step's attention reads.
//
//   seconds = (step_ms + prefill_ms_per_1k_tokens * prefill_tokens / 1000
//                      + decode_ms_per_request * decode_requests
//                      + kv_ms_per_1k_tokens * kv_tokens / 1000) / 1000
//
// Example:
//   CostModel cost;                                   // the defaults below
//   cost.step_ms = 8.0;
//   cost.validate();                                  // InvalidArgument naming the bad field
//   double s = cost.step_seconds({.prefill_tokens = 2048, .decode_requests = 32,
//                                 .kv_tokens = 40000});
//
// Defaults: plausible figures for a Llama-3-8B-class model (bf16) on one H100 SXM, rounded;
// they are estimates from hardware limits, not measurements:
//   step_ms                   5     every step reads the ~16 GB of weights once (~4.8 ms at
//                                   ~3.35 TB/s)
//   prefill_ms_per_1k_tokens  35    ~16 GFLOP per token (2 x 8 B parameters) at ~450 TFLOP/s
//                                   sustained (~45 % of the dense bf16 peak): ~28 k tokens/s
//   decode_ms_per_request     0.05  the marginal cost of one more request in a decode batch
//                                   (its share of the GEMMs, sampling, bookkeeping)
//   kv_ms_per_1k_tokens       0.04  128 KiB of K/V per token (32 layers x 8 KV heads x 128 dims
//                                   x K and V x 2 bytes): 1 k tokens = 134 MB at ~3.35 TB/s
// Under these figures an 8,192-token prefill step costs ~292 ms and a decode step of 256
// requests with 1 k-token contexts ~28 ms (~9 k output tokens/s).
//
// Not modelled: the quadratic compute of prefill attention (a chunk of n tokens at context c
// costs ~n * c in FLOPs, not c), so long prompts cost more in reality than here; overlap of
// the CPU and the GPU; speculative decoding.
//
// Invariants (validate): every coefficient is finite and >= 0.
#pragma once

#include <cstdint>

namespace pagedkv {

// What one step computes, as the cost model sees it.
struct StepWork {
  int64_t prefill_tokens = 0;   // scheduled tokens of requests not decoding (recomputation too)
  int32_t decode_requests = 0;  // requests scheduled for their one next output token
  int64_t kv_tokens = 0;        // sum over scheduled requests of their context after the step
};

struct CostModel {
  double step_ms = 5.0;
  double prefill_ms_per_1k_tokens = 35.0;
  double decode_ms_per_request = 0.05;
  double kv_ms_per_1k_tokens = 0.04;

  // Throws InvalidArgument naming the first coefficient that is negative or not finite.
  void validate() const;
  // The step's duration in seconds (formula above).
  double step_seconds(const StepWork& work) const;
};

}  // namespace pagedkv
