// pagedkv/model_io/model_input.h - one model step's inputs for a ragged batch (rule 47): the
// scheduled requests of a SchedulerOutput in output order, their new tokens flattened into
// [T], and per KV-cache group a dense page table whose row i is batch entry i. A non-owning
// view over a ModelInputBuilder's persistent buffers (seed 002's ModelInputBatch).
//
// Example (page size 4; "a" decodes its 10th token, "b" prefills 3 of 5 prompt tokens):
//   const ModelInput& in = builder.build(out);
//   in.token_ids          // [a9, b0, b1, b2]
//   in.positions          // [9, 0, 1, 2]
//   in.query_start_loc    // [0, 1, 4]
//   in.seq_lens           // [10, 3]
//   in.page_tables[0]     // rows [a's pages..., pad], [b's pages..., pad]
//   in.slot_mapping       // [pa2 * 4 + 1, pb0 * 4 + 0, pb0 * 4 + 1, pb0 * 4 + 2]
//   in.logits_indices     // [0]: only "a" produces a token (b's chunk is partial)
//   in.logits_request_index  // [0]
//   paged_attention(kv, q, in.attention_batch(), opt, out);
//
// Shapes (B = num_reqs, T = num_tokens, G = groups, R = requests that produce a token):
//   token_ids            [T]     the tokens computed in this step, request after request
//   positions            [T]     request b's tokens at computed_b .. computed_b + n_b - 1
//   query_start_loc      [B + 1] prefix sums of n_b, 0 first, T last
//   seq_lens             [B]     computed_b + n_b
//   slot_mappings        [G][T]  page_id * page_size + offset of each token's K/V in group g
//   slot_mapping         [T]     slot_mappings[0]
//   page_tables          [G]     group g's committed table, rows [0, B): row b = entry b's
//                                pages, then kPageTablePadding; num_cols = cdiv(max_model_len,
//                                page_size(g))
//   logits_indices       [R]     token index (into [T]) of each producing request's last token,
//                                increasing
//   logits_request_index [R]     its batch index, increasing
//   request_ids          [B]     ids in output order
//
// Lifetime: valid until the builder's next build() (or its destruction).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/common/types.h"
#include "pagedkv/page_table/page_table.h"

namespace pagedkv {

struct ModelInput {
  int32_t num_reqs = 0;
  int32_t num_tokens = 0;
  std::span<const TokenId> token_ids;                       // [T]
  std::span<const int32_t> positions;                       // [T]
  std::span<const int32_t> query_start_loc;                 // [B + 1]
  std::span<const int32_t> seq_lens;                        // [B]
  std::span<const int64_t> slot_mapping;                    // [T] group 0
  std::span<const std::span<const int64_t>> slot_mappings;  // [G][T]
  std::span<const PageTableView> page_tables;               // [G] each [B, cols]
  std::span<const int32_t> logits_indices;                  // [R]
  std::span<const int32_t> logits_request_index;            // [R]
  std::span<const std::string> request_ids;                 // [B]

  int32_t num_groups() const { return static_cast<int32_t>(page_tables.size()); }
  int32_t num_logits() const { return static_cast<int32_t>(logits_indices.size()); }
  // Group g's batch for paged_attention (dense page table). Throws OutOfRange for a bad g.
  AttentionBatch attention_batch(int32_t group = 0) const;
};

}  // namespace pagedkv
