// pagedkv/model/model_ops.h - the small element-wise kernels of the reference Llama/Qwen2
// forward pass (rules 52, 55): RMSNorm, SiLU-gated product, residual add, embedding lookup.
//
// Example (one block's MLP input, hidden 576):
//   pagedkv::rms_norm(h.data(), post_norm_w.data(), tokens, 576, 1e-5f, n.data());
//   ... gate = gate_proj(n), up = up_proj(n) ...
//   pagedkv::silu_mul(gate.data(), up.data(), int64_t{tokens} * 1536, act.data());
//
// Contract (all float32, row-major)
//   rms_norm          x [rows, n], weight [n], out [rows, n]; n >= 1, rows >= 0; out may be x
//   silu_mul          gate [n], up [n], out [n]; n >= 0; out may be gate or up
//   add_inplace       x [n] += y [n]; n >= 0
//   embedding_lookup  table [vocab, hidden], ids [T], out [T, hidden]; every id in [0, vocab)
//
// Arithmetic: every output element depends only on its own row (rms_norm) or element, in a
// fixed order, so results are batch invariant (rule 49) and the same on every CPU.
//   rms_norm: ms = mean of x^2 accumulated in float32 in 8 interleaved partial sums
//     (element k goes to sum k % 8) combined as ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)); then
//     out = (x * (1 / sqrt(ms + eps))) * w, as Hugging Face's LlamaRMSNorm (w, not 1 + w).
//   silu_mul: out = g / (1 + exp(-g)) * u.
//
// Errors: InvalidArgument for a negative size or a null pointer with a non-empty size;
// embedding_lookup throws OutOfRange naming the first bad id, its index and the vocab size,
// before writing anything.
#pragma once

#include <cstdint>
#include <span>

namespace pagedkv {

void rms_norm(const float* x, const float* weight, int32_t rows, int32_t n, float eps, float* out);

void silu_mul(const float* gate, const float* up, int64_t n, float* out);

void add_inplace(float* x, const float* y, int64_t n);

void embedding_lookup(const float* table, int32_t vocab, int32_t hidden,
                      std::span<const int32_t> ids, float* out);

}  // namespace pagedkv
