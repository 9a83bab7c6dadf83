#include "pagedkv/compat/model_io_processor.h"

#include <algorithm>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

struct PrefillPart {
  int32_t length = 0;
  std::vector<int32_t> positions;
  std::vector<TokenId> tokens;
};

// The seed's dynamic_slice of the chunk: [chunk_start, chunk_start + chunk_size) of the prompt
// padded with 0 to a multiple of chunk_size.
PrefillPart prefill_chunk(const InitialSequenceRequest& p) {
  PAGEDKV_CHECK_ARG(p.chunk_size > 0, "prefill '{}' has chunk_size {}; must be > 0", p.id,
                    p.chunk_size);
  PAGEDKV_CHECK_ARG(p.chunk_idx >= 0 && p.chunk_start() < p.prompt_len(),
                    "prefill '{}' chunk {} starts at {}, past its {} prompt tokens", p.id,
                    p.chunk_idx, p.chunk_start(), p.prompt_len());
  PrefillPart part;
  const auto start = static_cast<int32_t>(p.chunk_start());
  part.length = static_cast<int32_t>(p.chunk_end()) - start;
  part.positions.resize(static_cast<size_t>(p.chunk_size));
  part.tokens.assign(static_cast<size_t>(p.chunk_size), 0);
  for (int32_t j = 0; j < p.chunk_size; ++j) {
    part.positions[static_cast<size_t>(j)] = start + j;
    if (j < part.length) {
      part.tokens[static_cast<size_t>(j)] = p.prompt_token_ids[static_cast<size_t>(start + j)];
    }
  }
  return part;
}

struct DecodePart {
  std::vector<TokenId> tokens;
  std::vector<int32_t> positions;
  std::vector<PageId> table;
  int32_t pages_per_seq = 0;
  std::vector<std::string> ids;
};

void write_row(DecodePart& d, int32_t slot, const GenerationStepTask& t) {
  const auto s = static_cast<size_t>(slot);
  d.tokens[s] = t.prefill_token_id;
  d.positions[s] = t.position;
  d.ids[s] = t.id;
  PageId* row = d.table.data() + s * static_cast<size_t>(d.pages_per_seq);
  std::fill(row, row + d.pages_per_seq, kNullPageId);
  std::copy(t.page_indices.begin(), t.page_indices.end(), row);
}

DecodePart decode_rows(const NextIterationPlan& plan, const ActiveSequenceBatch& batch) {
  PAGEDKV_CHECK_ARG(batch.num_active() > 0, "the plan schedules decodes but no slot is active");
  DecodePart d;
  for (int32_t slot : batch.admission_order()) {
    d.pages_per_seq =
        std::max(d.pages_per_seq, static_cast<int32_t>(batch.at(slot).page_indices.size()));
  }
  for (const GenerationStepTask& t : plan.new_decodes_requests) {
    PAGEDKV_CHECK_STATE(t.slot >= 0 && t.slot < batch.batch_size() && batch.is_active(t.slot) &&
                            batch.at(t.slot).id == t.id,
                        "new decode '{}' is not active in its slot {}", t.id, t.slot);
  }
  for (const SlotPageAssignment& a : plan.decodes_state_page_updates) {
    PAGEDKV_CHECK_STATE(a.slot >= 0 && a.slot < batch.batch_size() && batch.is_active(a.slot),
                        "page update for slot {}, which is not active", a.slot);
    PAGEDKV_CHECK_ARG(a.page_idx >= 0 && a.page_idx < d.pages_per_seq,
                      "page update of slot {} at page {} outside [0, {})", a.slot, a.page_idx,
                      d.pages_per_seq);
  }
  const auto b = static_cast<size_t>(batch.batch_size());
  d.tokens.assign(b, 0);
  d.positions.assign(b, -1);
  d.ids.assign(b, std::string());
  d.table.assign(b * static_cast<size_t>(d.pages_per_seq), kNullPageId);
  for (int32_t slot : batch.admission_order()) write_row(d, slot, batch.at(slot));
  // The seed's insert_decode_state and apply_assignment (already reflected in `batch`).
  for (const GenerationStepTask& t : plan.new_decodes_requests) write_row(d, t.slot, t);
  for (const SlotPageAssignment& a : plan.decodes_state_page_updates) {
    d.table[static_cast<size_t>(a.slot) * static_cast<size_t>(d.pages_per_seq) +
            static_cast<size_t>(a.page_idx)] = a.mapped_idx;
  }
  return d;
}

}  // namespace

ModelInputBatch ModelIOProcessor::build_input(const NextIterationPlan& plan,
                                              const ActiveSequenceBatch& decodes_state) {
  PAGEDKV_CHECK_ARG(plan.has_work(),
                    "failed to build the input: no prefill or decode is scheduled");
  PAGEDKV_CHECK_ARG(!plan.schedule_prefill || plan.prefill_request.has_value(),
                    "the plan schedules a prefill without its request");
  ModelInputBatch in;
  PrefillPart pre;
  DecodePart dec;
  if (plan.schedule_prefill) pre = prefill_chunk(*plan.prefill_request);
  if (plan.schedule_decodes) dec = decode_rows(plan, decodes_state);

  in.input_ids = pre.tokens;
  in.input_ids.insert(in.input_ids.end(), dec.tokens.begin(), dec.tokens.end());
  in.positions = pre.positions;
  in.positions.insert(in.positions.end(), dec.positions.begin(), dec.positions.end());
  if (plan.schedule_prefill) in.sampling_params.push_back(plan.prefill_request->id);
  in.sampling_params.insert(in.sampling_params.end(), dec.ids.begin(), dec.ids.end());
  in.attn_meta = PagedAttentionMetadata(
      pre.length, std::move(pre.positions),
      plan.schedule_prefill ? plan.prefill_request->page_indices : std::vector<PageId>{},
      std::move(dec.positions), std::move(dec.table), dec.pages_per_seq);
  return in;
}

ModelOutputBatch ModelIOProcessor::prepare_model_output(
    std::span<const TokenId> next_token, std::span<const uint8_t> complete,
    const PagedAttentionMetadata& attn_meta, std::span<const std::string> sampling_params) {
  const size_t off = attn_meta.has_prefill() ? 1 : 0;
  const size_t rows = off + static_cast<size_t>(attn_meta.decodes_batch_size());
  PAGEDKV_CHECK_ARG(next_token.size() == rows && complete.size() == rows,
                    "next_token has {} and complete {} entries; the metadata has {} rows",
                    next_token.size(), complete.size(), rows);
  ModelOutputBatch o;
  if (attn_meta.has_prefill()) {
    o.prefill_token_id = next_token[0];
    o.prefill_complete = complete[0] != 0;
    o.prefill_next_position = attn_meta.prefill_position().front() + attn_meta.prefill_length();
  }
  if (attn_meta.has_decodes()) {
    o.decodes_token_ids.assign(next_token.begin() + static_cast<ptrdiff_t>(off), next_token.end());
    o.decodes_completes.assign(complete.begin() + static_cast<ptrdiff_t>(off), complete.end());
    o.decodes_next_position.resize(o.decodes_token_ids.size());
    for (size_t b = 0; b < o.decodes_token_ids.size(); ++b) {
      const int32_t next = o.decodes_completes[b] ? -1 : attn_meta.decodes_position()[b] + 1;
      // The seed's second where(): 0 (a padded row, position -1) becomes -1 too.
      o.decodes_next_position[b] = next != 0 ? next : -1;
    }
  }
  o.next_sampling_params.assign(sampling_params.begin(), sampling_params.end());
  return o;
}

}  // namespace pagedkv
