#include "pagedkv/compat/inference_types.h"

#include <algorithm>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

int64_t InitialSequenceRequest::chunk_end() const {
  return std::min<int64_t>(prompt_len(), chunk_start() + chunk_size);
}

GenerationStepTask GenerationStepTask::from_prefill(InitialSequenceRequest prefill,
                                                    TokenId prefill_token_id) {
  PAGEDKV_CHECK_STATE(prefill.is_complete() && prefill.prompt_len() > 0,
                      "request '{}': prefill not complete: chunk {} starts at token {} of {}",
                      prefill.id, prefill.chunk_idx, prefill.chunk_start(), prefill.prompt_len());
  GenerationStepTask task;
  task.id = std::move(prefill.id);
  task.position = prefill.prompt_len();
  task.page_indices = std::move(prefill.page_indices);
  task.prefill_token_id = prefill_token_id;
  task.token_ids = std::move(prefill.prompt_token_ids);
  return task;
}

void GenerationStepTask::advance(TokenId sampled) {
  token_ids.push_back(prefill_token_id);  // may throw; nothing changed yet
  prefill_token_id = sampled;
  ++position;
}

}  // namespace pagedkv
