// pagedkv/compat/inference_scheduler.h - the seed-002 InferenceScheduler: a prefill queue and
// a decode queue in front of a fixed decode batch, planning one model step at a time over an
// HBMPageManager. Kept for callers written against that API; new code uses the vLLM-style
// Scheduler (scheduler/scheduler.h), which budgets tokens and caches prefixes.
//
// Example (one driver loop; page size 16):
//   HBMPageManager manager(/*num_pages=*/64, /*page_size=*/16);
//   InferenceScheduler scheduler(manager, {.batch_size = 8, .num_pages_per_sequence = 16});
//   ActiveSequenceBatch decodes(8);
//   std::optional<InitialSequenceRequest> active;
//   scheduler.enqueue_prefill_request({.id = "a", .prompt_token_ids = prompt, .chunk_size = 64});
//   while (true) {
//     NextIterationPlan plan = scheduler.create_plan(std::move(active), decodes);
//     if (!plan.has_work()) break;                      // nothing can run
//     ... run the model: plan.prefill_request's chunk, then every active decode ...
//     if (plan.schedule_prefill) {
//       InitialSequenceRequest p = std::move(*plan.prefill_request);
//       ++p.chunk_idx;
//       if (!p.is_complete()) active = std::move(p);
//       else scheduler.enqueue_decodes_request(GenerationStepTask::from_prefill(std::move(p), t));
//     }
//     if (plan.schedule_decodes)
//       for (int32_t slot : decodes.admission_order()) decodes.advance(slot, sampled[slot]);
//     ... scheduler.finish_decode(decodes, slot) for every finished sequence ...
//   }
//
// One plan, create_plan() (phases in this order, each a private method):
//   1. take a prefill (seed): with no active prefill and a free decode slot, the head of the
//      prefill queue. One prefill request at a time.
//   2. map its chunk's pages: the pages covering tokens [chunk_start, chunk_end) that are not
//      mapped yet. When too few are free:
//        - a request taken from the queue in this step waits at the queue's front: a waiting
//          request never preempts (rule 28);
//        - the active prefill preempts active decodes, most recently admitted first, until
//          the chunk fits; if even preempting them all would not make it fit, it preempts
//          itself instead (its pages freed, back to the front of the prefill queue at chunk 0).
//   3. decodes (seed), only when no prefill is planned or the active and queued decodes
//      exceed 95% of batch_size: queued tasks take free slots in queue order; then, in
//      admission order, every active decode whose position starts a page (position %
//      page_size == 0) gets one new page. When none is free, the most recently admitted active
//      decode is preempted; if that is the decode itself, the pass ends (rule 35).
// Preempting a decode (rules 27, 36): its pages are freed (last page first), its slot is
// freed, and a request to recompute it - prompt = token_ids + [prefill_token_id], chunk 0,
// resume_chunk_size - goes to the FRONT of the prefill queue (several victims of one step
// keep their admission order there). The plan lists the victims' ids.
//
// Differences from the seed:
//   - pages run out: the seed raised NotImplementedError ("Eviction is not supported yet");
//     pagedkv preempts as above.
//   - nothing can run: the seed spun until a queue filled (or returned None for a None
//     request, its shutdown signal); pagedkv returns a plan with no work.
//   - decode pages: the seed allocated one page per active decode, returned the unused ones
//     and raised when fewer were free; pagedkv allocates exactly the pages it maps.
//   - prefill pages: the pages not yet mapped below chunk_end; the seed allocated
//     cdiv(chunk length, page_size) pages, which over-allocates when chunk_size is not a
//     multiple of page_size.
//   - the seed's scheduler mutated the caller's active prefill in place; pagedkv takes it (by
//     rvalue, untouched when create_plan throws) and hands it back in the plan.
//   - the seed took batch_size and the page-table length from the manager's metadata; pagedkv
//     takes them in InferenceSchedulerConfig (HBMPageManager has no metadata).
//   - finish_decode and verify are new: the seed's driver freed a finished decode's slot and
//     pages by hand.
//   - bad input raises typed errors (below) where the seed wrote past a page table or mapped a
//     page twice.
//
// Invariants (verify(active_prefill, decodes)): pages are conserved - every page the manager
// has handed out is mapped exactly once, by the active prefill, a queued or an active decode;
// queued prefill requests hold no pages; every page table is a mapped prefix whose length fits
// its request's progress; the batch's own invariants hold.
//
// Errors: every public call checks everything before it changes anything (strong guarantee).
// The manager must outlive the scheduler and be used by nothing else. Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/compat/active_sequence_batch.h"
#include "pagedkv/compat/hbm_page_manager.h"
#include "pagedkv/compat/inference_types.h"

namespace pagedkv {

struct InferenceSchedulerConfig {
  int32_t batch_size = 0;              // decode slots (seed: metadata.batch_size)
  int32_t num_pages_per_sequence = 0;  // entries of every page table (seed: metadata's)
  int32_t resume_chunk_size = 512;     // chunk size of the prefill recomputing a preempted one
};

class InferenceScheduler {
 public:
  // Throws InvalidArgument unless batch_size, num_pages_per_sequence and resume_chunk_size are
  // > 0 and num_pages_per_sequence <= manager.num_pages() - 1 (one sequence must fit the pool,
  // or a preempted one could never be recomputed; rule 29).
  InferenceScheduler(HBMPageManager& manager, InferenceSchedulerConfig config);
  InferenceScheduler(const InferenceScheduler&) = delete;
  InferenceScheduler& operator=(const InferenceScheduler&) = delete;

  const InferenceSchedulerConfig& config() const { return config_; }
  int32_t batch_size() const { return config_.batch_size; }
  // Tokens one page table covers: num_pages_per_sequence * page_size.
  int32_t max_seq_len() const { return max_seq_len_; }
  const HBMPageManager& manager() const { return *manager_; }
  const std::deque<InitialSequenceRequest>& prefill_queue() const { return prefill_queue_; }
  const std::deque<GenerationStepTask>& decodes_queue() const { return decodes_queue_; }

  // Queues a new prompt at the back. An empty page_indices is filled with
  // num_pages_per_sequence dummy pages. Throws, changing nothing, InvalidArgument for an empty
  // prompt or one longer than max_seq_len(), chunk_size <= 0, chunk_idx != 0, or a page_indices
  // that is not empty or num_pages_per_sequence dummy pages.
  void enqueue_prefill_request(InitialSequenceRequest request);
  // Queues a sequence whose prefill is complete (GenerationStepTask::from_prefill) at the back;
  // it holds its pages. Throws, changing nothing: InvalidArgument for slot != -1, position < 1,
  // token_ids.size() != position, or a page table of the wrong length, not a mapped prefix of
  // cdiv(position, page_size) or cdiv(position + 1, page_size) entries, or mapping a page
  // twice; OutOfRange for position >= max_seq_len() (no room for the next token) or a page id
  // outside the pool; StateError for a page the manager has not handed out.
  void enqueue_decodes_request(GenerationStepTask request);

  // Plans the next model step (phases above). `active_prefill` is moved into the plan only when
  // the call succeeds. Throws, changing nothing:
  //   InvalidArgument  decodes_state has another batch_size; the active prefill fails
  //                    enqueue_prefill_request's prompt or chunk_size checks, has chunk_idx < 0,
  //                    or a page table of the wrong length, not a mapped prefix, or mapping a
  //                    page twice;
  //   OutOfRange       an active prefill's page id outside the pool; an active decode at
  //                    position >= max_seq_len() (the driver must finish it);
  //   StateError       the active prefill is complete, maps a page the manager has not handed
  //                    out, or maps fewer pages than its earlier chunks or more than this one
  //                    needs; an active decode whose token_ids.size() != position, or whose
  //                    position lies inside a page no plan mapped (it was advanced without a
  //                    planned decode step).
  NextIterationPlan create_plan(std::optional<InitialSequenceRequest>&& active_prefill,
                                ActiveSequenceBatch& decodes_state);

  // Ends the decode in `slot`: frees its pages and its slot and returns the task. Throws,
  // changing nothing, what ActiveSequenceBatch::at throws.
  GenerationStepTask finish_decode(ActiveSequenceBatch& decodes_state, int32_t slot);

  // Walks the invariants above; throws InternalError naming the first broken.
  void verify(const std::optional<InitialSequenceRequest>& active_prefill,
              const ActiveSequenceBatch& decodes_state) const;

 private:
  // create_plan() phases, in order.
  void check_plan_inputs(const std::optional<InitialSequenceRequest>& active_prefill,
                         const ActiveSequenceBatch& decodes_state) const;
  std::optional<InitialSequenceRequest> take_prefill(const ActiveSequenceBatch& decodes_state);
  void plan_prefill_chunk(InitialSequenceRequest prefill, bool taken_now,
                          ActiveSequenceBatch& decodes_state, NextIterationPlan& plan);
  bool decodes_may_run(const NextIterationPlan& plan,
                       const ActiveSequenceBatch& decodes_state) const;
  void admit_queued_decodes(ActiveSequenceBatch& decodes_state, std::vector<int32_t>& admitted);
  void map_decode_pages(ActiveSequenceBatch& decodes_state, NextIterationPlan& plan);

  // Preemption (rules 27, 36).
  void preempt_decode(ActiveSequenceBatch& decodes_state, int32_t slot, NextIterationPlan& plan);
  void preempt_prefill(InitialSequenceRequest prefill, NextIterationPlan& plan);
  void free_pages(const std::vector<PageId>& page_indices);  // mapped prefix, last page first

  // Checks shared by the enqueue calls, create_plan and verify.
  void check_prompt(const InitialSequenceRequest& request, const char* what) const;
  void check_decode_task(const GenerationStepTask& task) const;
  int32_t mapped_prefix(const std::vector<PageId>& page_indices, const char* what,
                        const std::string& id) const;

  HBMPageManager* manager_;
  InferenceSchedulerConfig config_;
  int32_t page_size_ = 0;
  int32_t max_seq_len_ = 0;
  std::deque<InitialSequenceRequest> prefill_queue_;
  std::deque<GenerationStepTask> decodes_queue_;
};

}  // namespace pagedkv
