#include "pagedkv/compat/inference_scheduler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

const InferenceSchedulerConfig& checked_config(const InferenceSchedulerConfig& c,
                                               const HBMPageManager& manager) {
  PAGEDKV_CHECK_ARG(c.batch_size > 0, "batch_size must be > 0, got {}", c.batch_size);
  PAGEDKV_CHECK_ARG(c.num_pages_per_sequence > 0, "num_pages_per_sequence must be > 0, got {}",
                    c.num_pages_per_sequence);
  PAGEDKV_CHECK_ARG(c.num_pages_per_sequence <= manager.num_pages() - 1,
                    "num_pages_per_sequence {} exceeds the {} usable pages of the manager",
                    c.num_pages_per_sequence, manager.num_pages() - 1);
  PAGEDKV_CHECK_ARG(c.resume_chunk_size > 0, "resume_chunk_size must be > 0, got {}",
                    c.resume_chunk_size);
  return c;
}

int32_t pages_for(int64_t tokens, int32_t page_size) {
  return static_cast<int32_t>(cdiv<int64_t>(tokens, page_size));
}

int32_t count_mapped(const std::vector<PageId>& page_indices) {
  const auto first_unmapped = std::find(page_indices.begin(), page_indices.end(), kNullPageId);
  return static_cast<int32_t>(first_unmapped - page_indices.begin());
}

// Marks the mapped prefix of `page_indices` in `held` (one flag per page id) and returns its
// length; verify()'s walk, so every failure is an InternalError.
int32_t hold_pages(const std::vector<PageId>& page_indices, std::vector<uint8_t>& held,
                   const std::string& who) {
  const int32_t mapped = count_mapped(page_indices);
  for (size_t j = 0; j < page_indices.size(); ++j) {
    const PageId page = page_indices[j];
    if (static_cast<int32_t>(j) >= mapped) {
      PAGEDKV_ASSERT(page == kNullPageId, "{}: entry {} maps page {} after an unmapped entry", who,
                     j, page);
      continue;
    }
    PAGEDKV_ASSERT(page > 0 && static_cast<size_t>(page) < held.size(),
                   "{}: entry {} maps page {} outside [1, {})", who, j, page, held.size());
    PAGEDKV_ASSERT(!held[static_cast<size_t>(page)], "{}: page {} is mapped twice", who, page);
    held[static_cast<size_t>(page)] = 1;
  }
  return mapped;
}

}  // namespace

InferenceScheduler::InferenceScheduler(HBMPageManager& manager, InferenceSchedulerConfig config)
    : manager_(&manager),
      config_(checked_config(config, manager)),
      page_size_(manager.page_size()),
      max_seq_len_(config.num_pages_per_sequence * manager.page_size()) {}

void InferenceScheduler::check_prompt(const InitialSequenceRequest& request,
                                      const char* what) const {
  PAGEDKV_CHECK_ARG(request.prompt_len() > 0, "{} '{}': prompt_token_ids is empty", what,
                    request.id);
  PAGEDKV_CHECK_ARG(request.prompt_token_ids.size() <= static_cast<size_t>(max_seq_len_),
                    "{} '{}': prompt of {} tokens exceeds max_seq_len {} "
                    "(num_pages_per_sequence {} x page_size {})",
                    what, request.id, request.prompt_token_ids.size(), max_seq_len_,
                    config_.num_pages_per_sequence, page_size_);
  PAGEDKV_CHECK_ARG(request.chunk_size > 0, "{} '{}': chunk_size must be > 0, got {}", what,
                    request.id, request.chunk_size);
}

int32_t InferenceScheduler::mapped_prefix(const std::vector<PageId>& page_indices, const char* what,
                                          const std::string& id) const {
  PAGEDKV_CHECK_ARG(page_indices.size() == static_cast<size_t>(config_.num_pages_per_sequence),
                    "{} '{}': page_indices has {} entries, expected num_pages_per_sequence {}",
                    what, id, page_indices.size(), config_.num_pages_per_sequence);
  const int32_t mapped = count_mapped(page_indices);
  std::vector<PageId> sorted(page_indices.begin(), page_indices.begin() + mapped);
  for (size_t j = static_cast<size_t>(mapped); j < page_indices.size(); ++j) {
    PAGEDKV_CHECK_ARG(page_indices[j] == kNullPageId,
                      "{} '{}': page_indices[{}] = {} follows an unmapped entry (mapped entries "
                      "must be a prefix)",
                      what, id, j, page_indices[j]);
  }
  for (PageId page : sorted) {
    PAGEDKV_CHECK_RANGE(page > 0 && page < manager_->num_pages(),
                        "{} '{}': page {} out of range [1, {})", what, id, page,
                        manager_->num_pages());
    PAGEDKV_CHECK_STATE(manager_->pool().ref_count_unchecked(page) > 0,
                        "{} '{}': page {} is not allocated", what, id, page);
  }
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  PAGEDKV_CHECK_ARG(dup == sorted.end(), "{} '{}': page {} is mapped twice", what, id,
                    dup == sorted.end() ? kNullPageId : *dup);
  return mapped;
}

void InferenceScheduler::check_decode_task(const GenerationStepTask& task) const {
  PAGEDKV_CHECK_ARG(task.slot == -1, "decode task '{}': slot must be -1 (not admitted), got {}",
                    task.id, task.slot);
  PAGEDKV_CHECK_ARG(task.position >= 1, "decode task '{}': position must be >= 1, got {}", task.id,
                    task.position);
  PAGEDKV_CHECK_RANGE(task.position < max_seq_len_,
                      "decode task '{}': position {} leaves no room for a token below "
                      "max_seq_len {}",
                      task.id, task.position, max_seq_len_);
  PAGEDKV_CHECK_ARG(task.token_ids.size() == static_cast<size_t>(task.position),
                    "decode task '{}': token_ids has {} tokens, position is {}", task.id,
                    task.token_ids.size(), task.position);
  const int32_t mapped = mapped_prefix(task.page_indices, "decode task", task.id);
  const int32_t lo = pages_for(task.position, page_size_);
  const int32_t hi = pages_for(int64_t{task.position} + 1, page_size_);
  PAGEDKV_CHECK_ARG(mapped >= lo && mapped <= hi,
                    "decode task '{}': {} pages mapped, position {} needs {}{}", task.id, mapped,
                    task.position, lo, lo == hi ? "" : fmt::format(" or {}", hi));
}

void InferenceScheduler::check_plan_inputs(
    const std::optional<InitialSequenceRequest>& active_prefill,
    const ActiveSequenceBatch& decodes_state) const {
  PAGEDKV_CHECK_ARG(decodes_state.batch_size() == config_.batch_size,
                    "decodes_state has {} slots, the scheduler's batch_size is {}",
                    decodes_state.batch_size(), config_.batch_size);
  if (active_prefill) {
    const InitialSequenceRequest& r = *active_prefill;
    check_prompt(r, "active prefill");
    PAGEDKV_CHECK_ARG(r.chunk_idx >= 0, "active prefill '{}': chunk_idx must be >= 0, got {}", r.id,
                      r.chunk_idx);
    PAGEDKV_CHECK_STATE(!r.is_complete(),
                        "active prefill '{}' is complete: chunk {} starts at token {} of {}", r.id,
                        r.chunk_idx, r.chunk_start(), r.prompt_len());
    const int32_t mapped = mapped_prefix(r.page_indices, "active prefill", r.id);
    const int32_t lo = pages_for(r.chunk_start(), page_size_);
    const int32_t hi = pages_for(r.chunk_end(), page_size_);
    PAGEDKV_CHECK_STATE(mapped >= lo && mapped <= hi,
                        "active prefill '{}': {} pages mapped, chunk {} needs {} to {}", r.id,
                        mapped, r.chunk_idx, lo, hi);
  }
  // O(1) per decode: the full walk of each page table is verify()'s.
  for (int32_t slot : decodes_state.admission_order()) {
    const GenerationStepTask& t = decodes_state.at(slot);
    PAGEDKV_CHECK_RANGE(t.position < max_seq_len_,
                        "slot {} ('{}'): position {} >= max_seq_len {}; finish it first", slot,
                        t.id, t.position, max_seq_len_);
    PAGEDKV_CHECK_STATE(t.position >= 1 && t.token_ids.size() == static_cast<size_t>(t.position),
                        "slot {} ('{}'): token_ids has {} tokens, position is {}", slot, t.id,
                        t.token_ids.size(), t.position);
    PAGEDKV_CHECK_STATE(
        t.page_indices.size() == static_cast<size_t>(config_.num_pages_per_sequence),
        "slot {} ('{}'): page_indices has {} entries, expected {}", slot, t.id,
        t.page_indices.size(), config_.num_pages_per_sequence);
    const size_t idx = static_cast<size_t>(t.position / page_size_);
    PAGEDKV_CHECK_STATE(t.position % page_size_ == 0 || t.page_indices[idx] != kNullPageId,
                        "slot {} ('{}'): position {} lies in page_indices[{}], which is not "
                        "mapped",
                        slot, t.id, t.position, idx);
  }
}

void InferenceScheduler::enqueue_prefill_request(InitialSequenceRequest request) {
  check_prompt(request, "prefill request");
  PAGEDKV_CHECK_ARG(request.chunk_idx == 0, "prefill request '{}': chunk_idx must be 0, got {}",
                    request.id, request.chunk_idx);
  const bool unmapped = std::all_of(request.page_indices.begin(), request.page_indices.end(),
                                    [](PageId p) { return p == kNullPageId; });
  PAGEDKV_CHECK_ARG(
      unmapped &&
          (request.page_indices.empty() ||
           request.page_indices.size() == static_cast<size_t>(config_.num_pages_per_sequence)),
      "prefill request '{}': page_indices must be empty or {} dummy pages, got {} entries{}",
      request.id, config_.num_pages_per_sequence, request.page_indices.size(),
      unmapped ? "" : " with mapped pages");
  request.page_indices.resize(static_cast<size_t>(config_.num_pages_per_sequence), kNullPageId);
  prefill_queue_.push_back(std::move(request));
}

void InferenceScheduler::enqueue_decodes_request(GenerationStepTask request) {
  check_decode_task(request);
  decodes_queue_.push_back(std::move(request));
}

NextIterationPlan InferenceScheduler::create_plan(
    std::optional<InitialSequenceRequest>&& active_prefill, ActiveSequenceBatch& decodes_state) {
  check_plan_inputs(active_prefill, decodes_state);
  NextIterationPlan plan;
  const bool taken_now = !active_prefill.has_value();
  std::optional<InitialSequenceRequest> prefill =
      taken_now ? take_prefill(decodes_state) : std::move(active_prefill);
  active_prefill.reset();  // the plan owns it from here on
  if (prefill) plan_prefill_chunk(std::move(*prefill), taken_now, decodes_state, plan);
  if (decodes_may_run(plan, decodes_state)) {
    std::vector<int32_t> admitted;
    admit_queued_decodes(decodes_state, admitted);
    map_decode_pages(decodes_state, plan);
    // Copies of this step's admissions, taken after their page updates; a slot admitted and
    // then preempted in this step is free again (admission precedes preemption).
    for (int32_t slot : admitted) {
      if (decodes_state.is_active(slot))
        plan.new_decodes_requests.push_back(decodes_state.at(slot));
    }
    plan.schedule_decodes = decodes_state.num_active() > 0;
  }
  return plan;
}

std::optional<InitialSequenceRequest> InferenceScheduler::take_prefill(
    const ActiveSequenceBatch& decodes_state) {
  // The seed starts a prompt only while a decode slot is free for it to move into.
  if (decodes_state.num_available_slots() == 0 || prefill_queue_.empty()) return std::nullopt;
  InitialSequenceRequest r = std::move(prefill_queue_.front());
  prefill_queue_.pop_front();
  return r;
}

void InferenceScheduler::plan_prefill_chunk(InitialSequenceRequest prefill, bool taken_now,
                                            ActiveSequenceBatch& decodes_state,
                                            NextIterationPlan& plan) {
  const int32_t mapped = count_mapped(prefill.page_indices);
  const int32_t needed = pages_for(prefill.chunk_end(), page_size_) - mapped;
  if (needed > manager_->num_free_pages()) {
    if (taken_now) {
      // A waiting request never preempts (rule 28): it keeps its place at the front.
      prefill_queue_.push_front(std::move(prefill));
      return;
    }
    int32_t held_by_decodes = 0;
    for (int32_t slot : decodes_state.admission_order()) {
      held_by_decodes += count_mapped(decodes_state.at(slot).page_indices);
    }
    if (needed > manager_->num_free_pages() + held_by_decodes) {
      // Preempting every decode would not make room: lose only this prefill's work.
      preempt_prefill(std::move(prefill), plan);
      return;
    }
    while (needed > manager_->num_free_pages()) {
      preempt_decode(decodes_state, decodes_state.admission_order().back(), plan);
    }
  }
  std::vector<PageId> pages = manager_->alloc_hbm_pages(needed);
  PAGEDKV_ASSERT(static_cast<int32_t>(pages.size()) == needed, "got {} of {} free pages",
                 pages.size(), needed);
  std::copy(pages.begin(), pages.end(), prefill.page_indices.begin() + mapped);
  plan.prefill_pages_update = AllocatedPrefillPages{std::move(pages)};
  plan.prefill_request = std::move(prefill);
  plan.schedule_prefill = true;
}

bool InferenceScheduler::decodes_may_run(const NextIterationPlan& plan,
                                         const ActiveSequenceBatch& decodes_state) const {
  if (!plan.schedule_prefill) return true;
  // The seed lets decodes share a prefill's step only when they would nearly fill the batch:
  // active + queued > 0.95 * batch_size, in integers.
  const int64_t decodes =
      int64_t{decodes_state.num_active()} + static_cast<int64_t>(decodes_queue_.size());
  return 20 * decodes > int64_t{19} * config_.batch_size;
}

void InferenceScheduler::admit_queued_decodes(ActiveSequenceBatch& decodes_state,
                                              std::vector<int32_t>& admitted) {
  while (decodes_state.num_available_slots() > 0 && !decodes_queue_.empty()) {
    admitted.push_back(decodes_state.admit(std::move(decodes_queue_.front())));
    decodes_queue_.pop_front();
  }
}

void InferenceScheduler::map_decode_pages(ActiveSequenceBatch& decodes_state,
                                          NextIterationPlan& plan) {
  const std::vector<int32_t>& order = decodes_state.admission_order();
  // Victims are taken from the back of `order`, so the decodes before index i keep their place.
  for (size_t i = 0; i < order.size(); ++i) {
    const int32_t slot = order[i];
    const GenerationStepTask& task = decodes_state.at(slot);
    const int32_t page_idx = task.position / page_size_;
    // A new page only when this step's token starts one (and no earlier plan mapped it).
    if (task.position % page_size_ != 0 ||
        task.page_indices[static_cast<size_t>(page_idx)] != kNullPageId) {
      continue;
    }
    bool preempted_itself = false;
    while (manager_->num_free_pages() == 0 && !preempted_itself) {
      const int32_t victim = order.back();
      preempted_itself = victim == slot;
      preempt_decode(decodes_state, victim, plan);
    }
    if (preempted_itself) break;  // the pass ends with the decode that could not grow (rule 35)
    const PageId page = manager_->alloc_hbm_pages(1).front();
    decodes_state.map_page(slot, page_idx, page);
    plan.decodes_state_page_updates.push_back(
        SlotPageAssignment{.slot = slot, .page_idx = page_idx, .mapped_idx = page});
  }
}

void InferenceScheduler::free_pages(const std::vector<PageId>& page_indices) {
  std::vector<PageId> mapped(page_indices.begin(),
                             page_indices.begin() + count_mapped(page_indices));
  std::reverse(mapped.begin(), mapped.end());  // last page first, as vLLM frees (rule 36)
  manager_->free_hbm_pages(mapped);
}

void InferenceScheduler::preempt_decode(ActiveSequenceBatch& decodes_state, int32_t slot,
                                        NextIterationPlan& plan) {
  GenerationStepTask task = decodes_state.release(slot);
  free_pages(task.page_indices);
  // Recompute every token it has, the pending input included: the resumed prefill's last
  // position samples the token the next decode step would have.
  InitialSequenceRequest resumed;
  resumed.id = std::move(task.id);
  resumed.prompt_token_ids = std::move(task.token_ids);
  resumed.prompt_token_ids.push_back(task.prefill_token_id);
  resumed.chunk_size = config_.resume_chunk_size;
  resumed.page_indices.assign(static_cast<size_t>(config_.num_pages_per_sequence), kNullPageId);
  plan.preempted_request_ids.push_back(resumed.id);
  // Victims go latest-admitted first, each to the front: they keep their admission order.
  prefill_queue_.push_front(std::move(resumed));
}

void InferenceScheduler::preempt_prefill(InitialSequenceRequest prefill, NextIterationPlan& plan) {
  free_pages(prefill.page_indices);
  std::fill(prefill.page_indices.begin(), prefill.page_indices.end(), kNullPageId);
  prefill.chunk_idx = 0;
  plan.preempted_request_ids.push_back(prefill.id);
  prefill_queue_.push_front(std::move(prefill));
}

GenerationStepTask InferenceScheduler::finish_decode(ActiveSequenceBatch& decodes_state,
                                                     int32_t slot) {
  GenerationStepTask task = decodes_state.release(slot);  // checks the slot first
  free_pages(task.page_indices);
  return task;
}

void InferenceScheduler::verify(const std::optional<InitialSequenceRequest>& active_prefill,
                                const ActiveSequenceBatch& decodes_state) const {
  manager_->verify();
  decodes_state.verify();
  PAGEDKV_ASSERT(decodes_state.batch_size() == config_.batch_size,
                 "decodes_state has {} slots, batch_size is {}", decodes_state.batch_size(),
                 config_.batch_size);
  std::vector<uint8_t> held(static_cast<size_t>(manager_->num_pages()), 0);
  int64_t num_held = 0;
  const auto check_table = [&](const std::vector<PageId>& pages, const std::string& who) {
    PAGEDKV_ASSERT(pages.size() == static_cast<size_t>(config_.num_pages_per_sequence),
                   "{}: page_indices has {} entries", who, pages.size());
    const int32_t mapped = hold_pages(pages, held, who);
    num_held += mapped;
    return mapped;
  };
  const auto check_decode = [&](const GenerationStepTask& t, const std::string& who) {
    PAGEDKV_ASSERT(t.position >= 1 && t.token_ids.size() == static_cast<size_t>(t.position),
                   "{}: position {} with {} token_ids", who, t.position, t.token_ids.size());
    const int32_t mapped = check_table(t.page_indices, who);
    PAGEDKV_ASSERT(mapped >= pages_for(t.position, page_size_) &&
                       mapped <= pages_for(int64_t{t.position} + 1, page_size_),
                   "{}: {} pages mapped at position {}", who, mapped, t.position);
  };

  for (const InitialSequenceRequest& r : prefill_queue_) {
    const std::string who = "queued prefill '" + r.id + "'";
    PAGEDKV_ASSERT(r.chunk_idx == 0, "{}: chunk_idx {}", who, r.chunk_idx);
    PAGEDKV_ASSERT(check_table(r.page_indices, who) == 0, "{} holds pages", who);
  }
  for (const GenerationStepTask& t : decodes_queue_) {
    const std::string who = "queued decode '" + t.id + "'";
    PAGEDKV_ASSERT(t.slot == -1, "{}: slot {}", who, t.slot);
    check_decode(t, who);
  }
  for (int32_t slot : decodes_state.admission_order()) {
    const GenerationStepTask& t = decodes_state.at(slot);
    check_decode(t, "decode '" + t.id + "' in slot " + std::to_string(slot));
  }
  if (active_prefill) {
    const InitialSequenceRequest& r = *active_prefill;
    const std::string who = "active prefill '" + r.id + "'";
    const int32_t mapped = check_table(r.page_indices, who);
    const int64_t start = std::min<int64_t>(r.chunk_start(), r.prompt_len());
    PAGEDKV_ASSERT(
        mapped >= pages_for(start, page_size_) && mapped <= pages_for(r.chunk_end(), page_size_),
        "{}: {} pages mapped at chunk {}", who, mapped, r.chunk_idx);
  }
  const int64_t allocated = manager_->num_pages() - 1 - manager_->num_free_pages();
  PAGEDKV_ASSERT(num_held == allocated,
                 "pages not conserved: the manager has handed out {}, requests map {}", allocated,
                 num_held);
}

}  // namespace pagedkv
