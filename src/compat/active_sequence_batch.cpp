#include "pagedkv/compat/active_sequence_batch.h"

#include <algorithm>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {
int32_t checked_batch_size(int32_t batch_size) {
  PAGEDKV_CHECK_ARG(batch_size > 0, "batch_size must be > 0, got {}", batch_size);
  return batch_size;
}
}  // namespace

ActiveSequenceBatch::ActiveSequenceBatch(int32_t batch_size)
    : slots_(static_cast<size_t>(checked_batch_size(batch_size))) {
  for (int32_t s = 0; s < batch_size; ++s) available_.push_back(s);
  order_.reserve(static_cast<size_t>(batch_size));
}

bool ActiveSequenceBatch::is_active(int32_t slot) const {
  return slot >= 0 && slot < batch_size() && slots_[static_cast<size_t>(slot)].has_value();
}

void ActiveSequenceBatch::check_active(int32_t slot) const {
  PAGEDKV_CHECK_RANGE(slot >= 0 && slot < batch_size(), "slot {} out of range [0, {})", slot,
                      batch_size());
  PAGEDKV_CHECK_STATE(slots_[static_cast<size_t>(slot)].has_value(), "slot {} is free", slot);
}

const GenerationStepTask& ActiveSequenceBatch::at(int32_t slot) const {
  check_active(slot);
  return *slots_[static_cast<size_t>(slot)];
}

void ActiveSequenceBatch::advance(int32_t slot, TokenId sampled) {
  check_active(slot);
  slots_[static_cast<size_t>(slot)]->advance(sampled);
}

int32_t ActiveSequenceBatch::admit(GenerationStepTask task) {
  PAGEDKV_CHECK_STATE(!available_.empty(), "no free slot: all {} slots are active", batch_size());
  const int32_t slot = available_.front();
  task.slot = slot;
  order_.push_back(slot);  // reserved to batch_size: cannot throw
  slots_[static_cast<size_t>(slot)] = std::move(task);
  available_.pop_front();
  return slot;
}

void ActiveSequenceBatch::map_page(int32_t slot, int32_t page_idx, PageId page) {
  check_active(slot);
  auto& pages = slots_[static_cast<size_t>(slot)]->page_indices;
  PAGEDKV_CHECK_RANGE(page_idx >= 0 && static_cast<size_t>(page_idx) < pages.size(),
                      "page_idx {} out of range [0, {}) for slot {}", page_idx, pages.size(), slot);
  pages[static_cast<size_t>(page_idx)] = page;
}

GenerationStepTask ActiveSequenceBatch::release(int32_t slot) {
  check_active(slot);
  available_.push_back(slot);  // the only call that can throw: before anything else changes
  auto& entry = slots_[static_cast<size_t>(slot)];
  GenerationStepTask task = std::move(*entry);
  entry.reset();
  order_.erase(std::find(order_.begin(), order_.end(), slot));
  return task;
}

void ActiveSequenceBatch::verify() const {
  std::vector<uint8_t> seen(slots_.size(), 0);
  for (int32_t slot : available_) {
    PAGEDKV_ASSERT(slot >= 0 && slot < batch_size(), "available slot {} out of range", slot);
    PAGEDKV_ASSERT(!seen[static_cast<size_t>(slot)], "slot {} listed twice", slot);
    PAGEDKV_ASSERT(!slots_[static_cast<size_t>(slot)].has_value(),
                   "slot {} is available but holds '{}'", slot,
                   slots_[static_cast<size_t>(slot)]->id);
    seen[static_cast<size_t>(slot)] = 1;
  }
  for (int32_t slot : order_) {
    PAGEDKV_ASSERT(slot >= 0 && slot < batch_size(), "active slot {} out of range", slot);
    PAGEDKV_ASSERT(!seen[static_cast<size_t>(slot)], "slot {} listed twice", slot);
    const auto& task = slots_[static_cast<size_t>(slot)];
    PAGEDKV_ASSERT(task.has_value(), "slot {} is in admission order but holds nothing", slot);
    PAGEDKV_ASSERT(task->slot == slot, "task '{}' in slot {} says slot {}", task->id, slot,
                   task->slot);
    seen[static_cast<size_t>(slot)] = 1;
  }
  PAGEDKV_ASSERT(available_.size() + order_.size() == slots_.size(),
                 "{} available + {} active slots != batch_size {}", available_.size(),
                 order_.size(), slots_.size());
}

}  // namespace pagedkv
