// Internal contract between the paged-attention driver (validation, work planning, threads) and
// its SIMD kernels (one copy per ISA level). Everything here is raw pointers over inputs that
// paged_attention.cpp has already validated; nothing throws, nothing allocates.
//
// Work is cut into tiles: (request, kv head, consecutive query tokens). A tile's rows are its
// tokens x the q heads of the kv head, token-major: row = token * group + g, reading q head
// kv_head * group + g. A tile covers the KV chunks [chunk_begin, chunk_end) its rows can see.
//
// Two kernel shapes, chosen per request (q_len * group), never per batch:
//   row-dot  (few rows, e.g. decode): each K/V row is loaded once and used by every row of the
//            tile; scores are dot products reduced across lanes.
//   gemm     (many rows, prefill): a register-blocked GEMM, keys x query lanes for Q.K^T and
//            queries x head_dim lanes for P.V, softmax vectorized across query lanes.
//
// A chunk produces a partial state per row: m (max logit, -inf when the row sees no key of the
// chunk), l (sum of exp(logit - m)) and acc[head_dim] (sum of exp(logit - m) * v). States are
// merged in chunk order by merge_state(); the output is acc / l.
#pragma once

#include <cstdint>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/kv_cache/kv_layout.h"

namespace pagedkv::attention_detail {

inline constexpr int32_t kChunk = 256;        // keys per chunk (= kAttentionKvChunk)
inline constexpr int32_t kGemmMinRows = 16;   // q_len * group at or above this -> gemm shape
inline constexpr int32_t kGemmTileRows = 64;  // target rows of a gemm tile
inline constexpr int32_t kMaxHeadDim = 1024;

// One call's inputs.
struct KernelParams {
  PagedKVView kv;
  KVStrides st;                 // kv.strides(), computed once per call
  const void* query = nullptr;  // [num_tokens, num_q_heads, head_dim] f32 or bf16
  bool query_bf16 = false;
  int32_t num_q_heads = 0;
  int32_t group = 1;  // q heads per kv head
  int32_t head_dim = 0;
  float scale = 1.0f;
  int32_t window = 0;     // 0: none
  float soft_cap = 0.0f;  // 0: none
  float* out = nullptr;   // [num_tokens, num_q_heads, head_dim]
  // bf16 queries over a bf16 cache on an AVX512-BF16 CPU: row-dot scores use bf16 pair dot
  // products (AVX-512 kernels only; a call-wide choice, so batch invariance holds).
  bool bf16_dot = false;
};

struct TileDesc {
  int64_t token_begin = 0;  // global index of the tile's first query token
  int32_t num_tokens = 0;   // tokens in the tile
  int32_t first_pos = 0;    // position of the first token in its request
  int32_t kv_head = 0;
  const int32_t* pages = nullptr;  // the request's page ids [cdiv(seq_len, page_size)]
  int32_t key_begin = 0;           // first key any row sees
  int32_t key_end = 0;             // one past the last key any row sees
  int32_t chunk_begin = 0;         // chunks [chunk_begin, chunk_end) cover [key_begin, key_end)
  int32_t chunk_end = 0;
  bool gemm = false;

  int32_t rows(int32_t group) const { return num_tokens * group; }
};

// Per-thread scratch, sized by the driver for max_rows rows and head_dim.
struct KernelScratch {
  float* q = nullptr;            // [max(rows * dim, dim * rows_padded)] scaled queries (bf16_dot:
                                 // raw bf16 rows)
  float* s = nullptr;            // [kChunk * rows_padded] scores / probabilities
  float* kf = nullptr;           // [kChunk, dim] dequantized keys (gemm shape)
  float* vf = nullptr;           // [kChunk, dim] dequantized values (gemm shape)
  const float** krow = nullptr;  // [kChunk] key row pointers (gemm shape)
  const float** vrow = nullptr;  // [kChunk] value row pointers (gemm shape)
  int32_t* row_pos = nullptr;    // [rows_padded] position of each row (padding: very negative)
  float* chunk_state = nullptr;  // [rows_padded * (dim + 2)] one chunk's partial state
  float* run_state = nullptr;    // [rows_padded * (dim + 2)] the running merged state
};

// State layout in a float buffer for `rows` rows: m [rows], l [rows], acc [rows, dim].
inline int64_t state_floats(int32_t rows, int32_t dim) { return int64_t{rows} * (dim + 2); }

// Computes one chunk's partial state of `tile` into `state` (layout above).
using ChunkFn = void (*)(const KernelParams&, const TileDesc&, int32_t chunk, float* state,
                         KernelScratch&);
// Merges `count` consecutive chunk states (chunk order) and writes the tile's output.
using MergeFn = void (*)(const KernelParams&, const TileDesc&, const float* states, int32_t count,
                         KernelScratch&);
// Whole tile: every chunk in order, merged as it goes, then the output.
using TileFn = void (*)(const KernelParams&, const TileDesc&, KernelScratch&);

struct KernelTable {
  Isa isa;
  int32_t lanes;  // float lanes per vector; rows are padded to a multiple of it
  ChunkFn chunk;
  MergeFn merge;
  TileFn tile;
};

// The kernels for min(isa, what was compiled and what the CPU runs).
KernelTable kernels_for(Isa isa);

}  // namespace pagedkv::attention_detail
