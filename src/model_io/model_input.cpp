#include "pagedkv/model_io/model_input.h"

#include "pagedkv/common/errors.h"

namespace pagedkv {

AttentionBatch ModelInput::attention_batch(int32_t group) const {
  PAGEDKV_CHECK_RANGE(group >= 0 && group < num_groups(), "group {} out of range [0, {})", group,
                      num_groups());
  const PageTableView& t = page_tables[static_cast<size_t>(group)];
  const size_t size = static_cast<size_t>(num_reqs) * static_cast<size_t>(t.num_cols);
  return {query_start_loc, seq_lens,
          PageTableRef::dense(std::span<const int32_t>(t.data, size), t.num_cols)};
}

}  // namespace pagedkv
