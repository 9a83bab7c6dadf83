// pagedkv/model/token_scorer.h - the logits of every position of one token sequence, computed by
// LlamaModel over a paged KV cache of its own (prefill in chunks of chunk_size tokens, the
// sequence's pages taken from the pool in a shuffled order when asked). Tests compare it with
// an independent implementation and across cache dtypes, chunkings and page orders.
//
// Example:
//   pagedkv::ModelWeights w = pagedkv::ModelWeights::load(dir);
//   pagedkv::LlamaModel model(w, pagedkv::MatmulMode::kDeterministic);
//   pagedkv::ScoreOptions opt{.page_size = 16, .chunk_size = 7, .page_order_seed = 3};
//   std::vector<float> logits = pagedkv::score_tokens(model, tokens, opt);  // [n, vocab]
//
// Contract: tokens non-empty, each in [0, vocab); page_size > 0; chunk_size >= 0 (0: one chunk);
// InvalidArgument / OutOfRange otherwise. Pages: cdiv(n, page_size) + 1 (the null page), the
// sequence's pages a permutation of 1.. (identity when page_order_seed == 0).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagedkv/common/dtype.h"
#include "pagedkv/common/types.h"
#include "pagedkv/model/llama_model.h"

namespace pagedkv {

struct ScoreOptions {
  int32_t page_size = 16;
  DType kv_cache_dtype = DType::kFloat32;
  int32_t chunk_size = 0;
  uint64_t page_order_seed = 0;
};

std::vector<float> score_tokens(LlamaModel& model, std::span<const TokenId> tokens,
                                const ScoreOptions& options = {});

}  // namespace pagedkv
