// pagedkv/compat/active_sequence_batch.h - the decode batch of the seed-002 InferenceScheduler:
// batch_size slots, each free or holding one GenerationStepTask (the host-side scheduler part
// of the seed's ActiveSequenceBatch: available_slots and active_slot_requests_map).
//
// Example:
//   ActiveSequenceBatch batch(/*batch_size=*/4);      // available_slots: [0, 1, 2, 3]
//   // InferenceScheduler::create_plan admits queued tasks into free slots, maps their pages
//   // and preempts them; the driver only records each step and ends finished sequences:
//   batch.advance(slot, sampled_token);
//   scheduler.finish_decode(batch, slot);
//
// Invariants (verify()):
//   - every slot in [0, batch_size) is in exactly one of available_slots() and
//     admission_order();
//   - the task in slot s has task.slot == s.
// Order: free slots are handed out first-in first-out (the seed's SimpleQueue); active tasks
// are kept in admission order (the seed's dict keeps insertion order), which is the order the
// scheduler assigns decode pages in and the reverse of its preemption order.
// Not thread-safe (the seed guarded these two fields with context_lock).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/compat/inference_types.h"

namespace pagedkv {

class ActiveSequenceBatch {
 public:
  // Throws InvalidArgument unless batch_size > 0.
  explicit ActiveSequenceBatch(int32_t batch_size);

  int32_t batch_size() const { return static_cast<int32_t>(slots_.size()); }
  // Free slots, next to be handed out first.
  const std::deque<int32_t>& available_slots() const { return available_; }
  int32_t num_available_slots() const { return static_cast<int32_t>(available_.size()); }
  // Slots of the active tasks, oldest admission first.
  const std::vector<int32_t>& admission_order() const { return order_; }
  int32_t num_active() const { return static_cast<int32_t>(order_.size()); }
  bool is_active(int32_t slot) const;
  // The task in `slot`: OutOfRange for a slot outside [0, batch_size), StateError for a free
  // one.
  const GenerationStepTask& at(int32_t slot) const;

  // Records a decode step of the task in `slot` (GenerationStepTask::advance). Same errors as
  // at().
  void advance(int32_t slot, TokenId sampled);

  // Walks the invariants above; throws InternalError naming the first broken.
  void verify() const;

 private:
  // The page tables of active tasks change only through the scheduler, so create_plan can trust
  // them after O(1) checks per task.
  friend class InferenceScheduler;

  // Puts `task` in the next free slot (StateError when none is free) and returns the slot;
  // task.slot is set to it.
  int32_t admit(GenerationStepTask task);
  // Maps page_indices[page_idx] of the task in `slot`. Same errors as at(); OutOfRange for a
  // page_idx outside its page table.
  void map_page(int32_t slot, int32_t page_idx, PageId page);
  // Removes the task in `slot` and frees the slot (to the back of available_slots). Same
  // errors as at(). Its pages become the caller's to free.
  GenerationStepTask release(int32_t slot);
  void check_active(int32_t slot) const;

  std::vector<std::optional<GenerationStepTask>> slots_;  // [batch_size]
  std::deque<int32_t> available_;
  std::vector<int32_t> order_;  // active slots in admission order
};

}  // namespace pagedkv
