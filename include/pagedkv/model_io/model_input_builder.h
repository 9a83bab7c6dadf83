// pagedkv/model_io/model_input_builder.h - turns each SchedulerOutput into the model step's
// ModelInput (rules 47-48; seed 002's ModelIOProcessor.build_input), and the sampled tokens of
// the step back into the Scheduler's per-request shape (the seed's prepare_model_output split).
//
// It keeps what the outputs only send once: each live request's token ids (its prompt, then
// every sampled token) and a MultiGroupPageTable whose rows are persistent request slots.
//
// Example (one engine loop):
//   ModelInputBuilder builder({.max_num_reqs = 32, .max_model_len = 2048,
//                              .max_num_batched_tokens = 512, .page_sizes = {16}});
//   SchedulerOutput out;
//   std::vector<std::vector<TokenId>> sampled;
//   while (scheduler.has_unfinished_requests()) {
//     scheduler.schedule(out);
//     const ModelInput& in = builder.build(out);
//     std::vector<TokenId> tokens = run_model_and_sample(in);   // [in.num_logits()]
//     split_sampled_tokens(in, tokens, sampled);
//     builder.update_from_sampled(out, sampled);
//     scheduler.update_from_output(out, sampled);
//   }
//
// build(out), in this order:
//   1. ids in out.finished_req_ids are dropped (tokens and row); ids in out.preempted_req_ids
//      give up their row and keep their tokens until they resume;
//   2. rows are arranged so that row i holds batch entry i: a new or resumed request gets
//      add_row(all its pages) at row i, a running one is swapped into row i only when its
//      batch index changed, then append_row(its new pages) when it got any; a request found
//      in row i is first moved to a free row. Then commit(B), once per group;
//   3. token ids, positions, seq_lens, query_start_loc, the slot mapping of every group from
//      the committed table, and the logits rows: entry b needs logits iff computed + n >= its
//      number of tokens (it produces a token, rule 43).
// update_from_sampled(out, sampled): every entry of the last built output that produces a
// token appends sampled[i][0] (the Scheduler's shape: sampled[i] belongs to entry i).
//
// Invariants (verify()): each tracked request holds at most one row and each row at most one
// request; a request's row holds exactly the pages its outputs announced; tracked tokens never
// exceed max_model_len; the page table's own invariants.
//
// Errors: build() checks the whole output before changing anything (strong guarantee):
// InvalidArgument naming the request and the limit for an unknown cached request, a new
// request already tracked, more requests than max_num_reqs, more tokens than
// max_num_batched_tokens, computed + n beyond the request's known tokens or pages beyond the
// row, n < 1, and an output whose new/cached lists do not match num_scheduled_tokens.
// update_from_sampled: StateError for an output that is not the last built or was applied;
// InvalidArgument when sampled has another size or a producing entry lacks exactly one token.
//
// Allocation: buffers are sized at construction; a request slot keeps its token buffer
// (max_model_len) for later requests. Once every request slot and id has been seen, build()
// and update_from_sampled() do not allocate while the batch is stable (decode steps).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/model_io/model_input.h"
#include "pagedkv/page_table/multi_group_page_table.h"
#include "pagedkv/page_table/page_table.h"
#include "pagedkv/scheduler/scheduler_output.h"

namespace pagedkv {

struct ModelInputBuilderConfig {
  int32_t max_num_reqs = 0;            // >= the scheduler's max_num_seqs
  int32_t max_model_len = 0;           // the scheduler's max_model_len
  int32_t max_num_batched_tokens = 0;  // the scheduler's max_num_batched_tokens
  std::vector<int32_t> page_sizes;     // [num_groups], one per KV-cache group

  // InvalidArgument naming the field unless every limit is > 0 and page_sizes is non-empty
  // with each size > 0.
  void validate() const;
};

class ModelInputBuilder {
 public:
  explicit ModelInputBuilder(const ModelInputBuilderConfig& config);
  ModelInputBuilder(const ModelInputBuilder&) = delete;
  ModelInputBuilder& operator=(const ModelInputBuilder&) = delete;

  const ModelInputBuilderConfig& config() const { return config_; }

  // The step's inputs (see build(out) above). The view is valid until the next build().
  const ModelInput& build(const SchedulerOutput& out);
  // sampled [B][0 or 1]: appends the token of every entry of the last built output that
  // produces one.
  void update_from_sampled(const SchedulerOutput& out,
                           std::span<const std::vector<TokenId>> sampled);

  // Requests whose tokens are kept (running, preempted, or scheduled before and not finished).
  int32_t num_tracked_requests() const { return static_cast<int32_t>(index_.size()); }
  // A tracked request's tokens (prompt, then sampled), or an empty span for an unknown id.
  std::span<const TokenId> tokens(const std::string& request_id) const;
  const MultiGroupPageTable& page_table() const { return table_; }
  const ModelInput& last_input() const { return input_; }

  // Walks every invariant above; throws InternalError naming the first broken.
  void verify() const;

 private:
  struct Tracked {
    std::string id;
    std::vector<TokenId> tokens;  // capacity max_model_len
    int32_t row = -1;             // page-table row, -1 while it holds none
    bool live = false;
  };
  enum class EntryKind : uint8_t { kNew, kResumed, kRunning };
  // One entry of the output being built, resolved by check_output().
  struct Entry {
    EntryKind kind = EntryKind::kRunning;
    int32_t source = 0;  // index into scheduled_new_reqs or scheduled_cached_reqs
    int32_t tracked = -1;
    int32_t computed = 0;
    int32_t num_tokens = 0;
  };

  // ---- build() phases, in order ----
  void check_output(const SchedulerOutput& out);
  void check_pages(const std::string& id, const GroupPages& pages, int32_t row_pages_before,
                   bool replace, int32_t seq_len) const;
  void release_rows(const SchedulerOutput& out);
  void place_rows(const SchedulerOutput& out);
  void fill_tokens(const SchedulerOutput& out);
  void fill_slot_mappings();
  void publish_view();

  int32_t find(const std::string& id) const;
  int32_t track(const NewRequestData& d);
  void untrack(int32_t t);
  void clear_row(int32_t row);
  int32_t free_row_at_or_after(int32_t first) const;
  void swap_rows(int32_t a, int32_t b);

  ModelInputBuilderConfig config_;
  MultiGroupPageTable table_;
  std::unordered_map<std::string, int32_t> index_;  // id -> tracked_
  std::vector<Tracked> tracked_;                    // request slots, reused
  std::vector<int32_t> free_tracked_;
  std::vector<int32_t> row_owner_;  // [max_num_reqs] tracked index or -1
  std::vector<Entry> entries_;      // [max_num_reqs] the last built output's entries
  std::vector<Entry> pending_;      // [max_num_reqs] check_output's scratch
  int32_t num_entries_ = 0;

  // Persistent output buffers.
  std::vector<TokenId> token_ids_;                    // [max_num_batched_tokens]
  std::vector<int32_t> positions_;                    // [max_num_batched_tokens]
  std::vector<int32_t> query_start_loc_;              // [max_num_reqs + 1]
  std::vector<int32_t> seq_lens_;                     // [max_num_reqs]
  std::vector<int32_t> computed_;                     // [max_num_reqs]
  std::vector<int32_t> counts_;                       // [max_num_reqs]
  std::vector<int32_t> rows_;                         // [max_num_reqs] 0, 1, 2, ...
  std::vector<std::vector<int64_t>> slots_;           // [G][max_num_batched_tokens]
  std::vector<std::span<const int64_t>> slot_views_;  // [G]
  std::vector<PageTableView> table_views_;            // [G]
  std::vector<int32_t> logits_indices_;               // [max_num_reqs]
  std::vector<int32_t> logits_request_index_;         // [max_num_reqs]
  std::vector<std::string> request_ids_;              // [max_num_reqs]
  int32_t num_tokens_ = 0;
  int32_t num_logits_ = 0;
  ModelInput input_;
  int64_t built_step_ = -1;  // out.step of the last build()
  bool sampled_applied_ = true;
};

// The output split: sampled [R], one token per logits row of `input`, into out [B] in the
// Scheduler's shape: out[b] = {token} for a request that produces one, {} otherwise. Buffers
// of `out` are reused. InvalidArgument unless sampled.size() == input.num_logits().
void split_sampled_tokens(const ModelInput& input, std::span<const TokenId> sampled,
                          std::vector<std::vector<TokenId>>& out);

}  // namespace pagedkv
