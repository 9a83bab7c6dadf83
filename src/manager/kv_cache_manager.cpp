// KVCacheManager: validation, the multi-group hit search, and plan-then-apply allocation.
#include "pagedkv/manager/kv_cache_manager.h"

#include <algorithm>
#include <limits>
#include <string_view>

#include <absl/container/flat_hash_map.h>

#include "pagedkv/common/errors.h"

namespace pagedkv {

struct KVCacheManager::State {
  // Request id -> slot. absl's string hash is transparent, so a lookup by string view builds
  // no std::string. A hand-written open-addressing table measured within 10% of it on the
  // decode step, not enough to keep its code (bench/slot_index_bench.cpp).
  absl::flat_hash_map<std::string, int32_t> slot_of;
  // Slot -> request id (empty: a free slot), the inverse of slot_of: a slot hint is the
  // request's slot exactly when this names the request's id.
  std::vector<std::string> slot_ids;
  // Reused buffers of the hot path.
  AllocationPlan plan;             // allocate_slots' plan
  std::vector<PageId> reversed;    // pages of a freed request, in the order they go back
  std::vector<uint8_t> hit_known;  // per group: out.pages[g] holds a search result
  std::vector<int32_t> holders;    // verify(): request lists holding each page
};

namespace {
const std::vector<PageId> kNoPages;
}  // namespace

KVCacheManager::KVCacheManager(KVCacheConfig config)
    : config_((config.validate(), std::move(config))),
      lcm_page_size_(config_.lcm_page_size()),
      pool_(std::make_unique<PagePool>(config_.num_pages, config_.enable_caching,
                                       config_.enable_kv_events, config_.hash_algorithm)),
      state_(std::make_unique<State>()) {
  for (size_t g = 0; g < config_.groups.size(); ++g) {
    groups_.push_back(
        SingleTypeManager::create(config_.groups[g], static_cast<GroupId>(g), *pool_));
  }
  state_->hit_known.resize(config_.groups.size());
}

KVCacheManager::KVCacheManager(int32_t num_pages, int32_t page_size, int32_t max_model_len,
                               bool enable_caching)
    : KVCacheManager(
          KVCacheConfig::single_group(num_pages, page_size, max_model_len, enable_caching)) {}

KVCacheManager::~KVCacheManager() = default;
KVCacheManager::KVCacheManager(KVCacheManager&&) noexcept = default;
KVCacheManager& KVCacheManager::operator=(KVCacheManager&&) noexcept = default;

inline void KVCacheManager::check_request(const Request& request) const {
  // The hasher's algorithm is options().hash_algorithm, read where the hot fields are.
  PAGEDKV_CHECK_ARG(
      !config_.enable_caching || request.hasher().algorithm() == config_.hash_algorithm,
      "request '{}' hashes with {} but the cache uses {}", request.request_id(),
      hash_algorithm_name(request.hasher().algorithm()),
      hash_algorithm_name(config_.hash_algorithm));
}

int32_t KVCacheManager::find_slot(std::string_view request_id) const {
  const auto it = state_->slot_of.find(absl::string_view(request_id.data(), request_id.size()));
  return it == state_->slot_of.end() ? -1 : it->second;
}

inline int32_t KVCacheManager::resolve_slot(const Request& request, int32_t hint) const {
  const std::vector<std::string>& ids = state_->slot_ids;
  // A negative hint wraps to a huge index and fails the range check.
  if (static_cast<size_t>(static_cast<uint32_t>(hint)) < ids.size() &&
      equal_ids(ids[static_cast<size_t>(hint)], request.request_id())) {
    return hint;
  }
  return find_slot(request.request_id());
}

int32_t KVCacheManager::acquire_slot(const std::string& request_id) {
  const bool reuse = !free_slots_.empty();
  const int32_t slot = reuse ? free_slots_.back() : groups_.front()->num_slots();
  if (!reuse) {
    for (auto& group : groups_) group->resize_slots(slot + 1);
    state_->slot_ids.resize(static_cast<size_t>(slot) + 1);
  }
  std::string& id = state_->slot_ids[static_cast<size_t>(slot)];
  id = request_id;
  try {
    state_->slot_of.emplace(request_id, slot);
  } catch (...) {
    id.clear();
    throw;
  }
  if (reuse) free_slots_.pop_back();
  return slot;
}

// ---- Lookup ----

int32_t KVCacheManager::longest_common_hit(const Request& request, int32_t max_length,
                                           ComputedPages& out) {
  // Fixed point: each group returns the longest hit it accepts within max_length; a shorter
  // answer lowers max_length (to a multiple of the lcm) and the other groups are asked again.
  // max_length never drops below the longest length every group accepts, so the fixed point is
  // that length (rule 25). Full-attention answers shrink by truncation, without a new search.
  std::vector<uint8_t>& known = state_->hit_known;
  for (;;) {
    bool stable = true;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const SingleTypeManager& group = *groups_[g];
      const int32_t ps = group.page_size();
      std::vector<PageId>& pages = out.pages[g];
      const int64_t len = static_cast<int64_t>(pages.size()) * ps;
      if (known[g] && len == max_length) continue;
      if (known[g] && len > max_length && group.hit_is_downward_closed()) {
        pages.resize(static_cast<size_t>(max_length / ps));
        continue;
      }
      pages.clear();
      const int32_t n = group.find_longest_cache_hit(request.page_hashes(ps), max_length, pages);
      known[g] = 1;
      if (n * ps < max_length) {
        max_length = n * ps / lcm_page_size_ * lcm_page_size_;
        stable = false;
      }
    }
    if (stable) return max_length;
  }
}

void KVCacheManager::find_computed_pages(const Request& request, ComputedPages& out) {
  check_request(request);
  out.pages.resize(groups_.size());
  for (auto& pages : out.pages) pages.clear();
  out.num_computed_tokens = 0;
  if (!config_.enable_caching) return;

  // The last token is always recomputed: its logits are needed (rule 16).
  const int32_t max_length = (request.num_tokens() - 1) / lcm_page_size_ * lcm_page_size_;
  std::fill(state_->hit_known.begin(), state_->hit_known.end(), 0);
  int32_t hit = longest_common_hit(request, max_length, out);
  if (config_.num_speculative_tokens > 0 && hit > 0) {
    // Rule 17: one page less, so the draft model sees the last hit page computed again.
    hit = longest_common_hit(request, hit - lcm_page_size_, out);
  }
  out.num_computed_tokens = hit;
}

void KVCacheManager::get_computed_pages(const Request& request, bool resumed, ComputedPages& out) {
  find_computed_pages(request, out);
  if (config_.enable_caching) stats_.record(request.num_tokens(), out.num_computed_tokens, resumed);
}

ComputedPages KVCacheManager::get_computed_pages(const Request& request, bool resumed) {
  ComputedPages out;
  get_computed_pages(request, resumed, out);
  return out;
}

// ---- Allocation: check, plan, apply ----

std::string_view allocation_status_name(AllocationStatus s) {
  switch (s) {
    case AllocationStatus::kOk: return "ok";
    case AllocationStatus::kNotEnoughFreePages: return "not_enough_free_pages";
  }
  return "unknown";
}

std::string_view AllocationPlan::request_id() const {
  return request_ != nullptr ? std::string_view(request_->request_id()) : std::string_view();
}

inline void KVCacheManager::check_counts(const Request& request,
                                         const AllocationRequest& alloc) const {
  const std::string& id = request.request_id();
  check_request(request);
  PAGEDKV_CHECK_ARG(alloc.num_new_tokens >= 0, "num_new_tokens must be >= 0, got {}",
                    alloc.num_new_tokens);
  PAGEDKV_CHECK_ARG(alloc.num_new_computed_tokens >= 0,
                    "num_new_computed_tokens must be >= 0, got {}", alloc.num_new_computed_tokens);
  PAGEDKV_CHECK_ARG(alloc.num_lookahead_tokens >= 0, "num_lookahead_tokens must be >= 0, got {}",
                    alloc.num_lookahead_tokens);
  const int32_t computed = request.num_computed_tokens();
  const int64_t with_hit = int64_t{computed} + alloc.num_new_computed_tokens;
  PAGEDKV_CHECK_ARG(with_hit <= request.num_tokens(),
                    "request '{}': {} computed + {} hit tokens exceed its {} tokens", id, computed,
                    alloc.num_new_computed_tokens, request.num_tokens());
  PAGEDKV_CHECK_ARG(with_hit + alloc.num_new_tokens <= config_.max_model_len,
                    "request '{}': {} computed + {} hit + {} new tokens exceed max_model_len {}",
                    id, computed, alloc.num_new_computed_tokens, alloc.num_new_tokens,
                    config_.max_model_len);
}

// Returns whether any group has a hit page.
bool KVCacheManager::check_hit_pages(const Request& request, const AllocationRequest& alloc) const {
  if (alloc.new_computed_pages == nullptr) return false;
  const GroupPages& hit_pages = *alloc.new_computed_pages;
  PAGEDKV_CHECK_ARG(hit_pages.size() == groups_.size(),
                    "new_computed_pages has {} groups, the cache has {}", hit_pages.size(),
                    groups_.size());
  bool has_hits = false;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::vector<PageId>& hits = hit_pages[g];
    const int32_t ps = groups_[g]->page_size();
    PAGEDKV_CHECK_ARG(static_cast<int64_t>(hits.size()) * ps <= alloc.num_new_computed_tokens,
                      "group {}: {} hit pages of {} tokens cover more than the {} "
                      "num_new_computed_tokens",
                      g, hits.size(), ps, alloc.num_new_computed_tokens);
    const bool sliding = groups_[g]->spec().kind == AttentionKind::kSlidingWindow;
    bool seen_page = false;
    for (PageId page : hits) {
      PAGEDKV_CHECK_RANGE(page >= 0 && page < config_.num_pages,
                          "group {}: hit page id {} outside [0, {})", g, page, config_.num_pages);
      if (page == kNullPageId) {
        PAGEDKV_CHECK_ARG(sliding && !seen_page,
                          "group {}: a null hit page is allowed only before the first real "
                          "page of a sliding-window group",
                          g);
      } else {
        seen_page = true;
      }
    }
    has_hits = has_hits || !hits.empty();
  }
  PAGEDKV_CHECK_ARG(!has_hits || config_.enable_caching,
                    "request '{}': hit pages passed with prefix caching off", request.request_id());
  return has_hits;
}

inline void KVCacheManager::check_held_pages(const Request& request, int32_t slot,
                                             bool has_hits) const {
  const std::string& id = request.request_id();
  const int32_t computed = request.num_computed_tokens();
  if (slot < 0) {
    PAGEDKV_CHECK_STATE(computed == 0, "request '{}' has {} computed tokens but holds no pages", id,
                        computed);
    return;
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    const int64_t held_tokens =
        static_cast<int64_t>(groups_[g]->pages(slot).size()) * groups_[g]->page_size();
    PAGEDKV_CHECK_STATE(!has_hits || held_tokens == 0,
                        "request '{}' already holds pages: hit pages are only for its first "
                        "allocation",
                        id);
    PAGEDKV_CHECK_STATE(computed <= held_tokens,
                        "request '{}' has {} computed tokens but group {} holds pages for {}", id,
                        computed, g, held_tokens);
  }
}

// Every group's plan and the totals that decide (rules 18, 19, 23).
inline GroupDemand KVCacheManager::demand_of(const Request& request,
                                             const AllocationRequest& alloc) const {
  const int64_t total =
      int64_t{request.num_computed_tokens()} + alloc.num_new_computed_tokens + alloc.num_new_tokens;
  return GroupDemand{.num_computed_tokens = request.num_computed_tokens(),
                     .num_tokens_need_slot = static_cast<int32_t>(std::min<int64_t>(
                         total + alloc.num_lookahead_tokens, config_.max_model_len)),
                     // Never the lookahead/draft tokens: they may be rejected (rule 19).
                     .num_tokens_to_cache =
                         config_.enable_caching
                             ? static_cast<int32_t>(std::min<int64_t>(total, request.num_tokens()))
                             : 0};
}

inline GroupDemand KVCacheManager::plan_demand(const Request& request,
                                               const AllocationRequest& alloc,
                                               AllocationPlan& plan) const {
  const GroupDemand demand = demand_of(request, alloc);
  plan.num_tokens_need_slot = demand.num_tokens_need_slot;
  plan.num_tokens_to_cache = demand.num_tokens_to_cache;
  return demand;
}

inline bool KVCacheManager::steps_in_place(int32_t slot, const GroupDemand& demand,
                                           int64_t& held_after) const {
  for (const auto& group : groups_) {
    if (!group->step_in_place(slot, demand)) return false;
    held_after += group->num_pages_held(slot);
  }
  return true;
}

// The decode fast path: a running request without hit pages whose step every group meets with
// the pages it holds, filling none (SingleTypeManager::step_in_place) - 15 of 16 decode tokens
// at page size 16. Fills `plan` as check_held_pages and plan_groups would and returns true;
// returns false, deciding nothing, in any other case. The held-pages checks hold here: every
// group's pages cover num_tokens_need_slot, which is at least the computed tokens.
inline bool KVCacheManager::plan_in_place(const Request& request, const AllocationRequest& alloc,
                                          int32_t slot, AllocationPlan& plan) const {
  if (slot < 0 || alloc.new_computed_pages != nullptr) return false;
  const GroupDemand demand = plan_demand(request, alloc, plan);
  int64_t held_after = 0;
  if (!steps_in_place(slot, demand, held_after)) return false;
  plan.groups.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g]->plan_unchanged(slot, demand, plan.groups[g]);
  }
  plan.num_free_pages_needed = plan.num_evictable_hit_pages = 0;
  plan.num_pages_held_after = held_after;
  plan.num_free_pages_available = pool_->get_num_free_pages();
  return true;
}

inline void KVCacheManager::plan_groups(const Request& request, const AllocationRequest& alloc,
                                        int32_t slot, AllocationPlan& plan) const {
  const GroupDemand demand = plan_demand(request, alloc, plan);
  plan.groups.resize(groups_.size());
  plan.num_free_pages_needed = plan.num_evictable_hit_pages = plan.num_pages_held_after = 0;
  int64_t freed_by_skip = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::span<const PageId> hits;
    if (alloc.new_computed_pages != nullptr) hits = (*alloc.new_computed_pages)[g];
    GroupPlan& gp = plan.groups[g];
    groups_[g]->plan(slot, demand, hits, gp);
    plan.num_free_pages_needed += gp.num_free_pages_needed();
    plan.num_evictable_hit_pages += gp.num_evictable_hits;
    plan.num_pages_held_after += gp.num_pages_held_after;
    freed_by_skip += gp.num_pages_freed_by_skip;
  }
  // Pages the window drops go back to the queue before new pages are taken, so they count.
  plan.num_free_pages_available = pool_->get_num_free_pages() + freed_by_skip;
}

inline void KVCacheManager::check_capacity(const Request& request, int64_t num_pages_held_after,
                                           int32_t num_tokens_need_slot) const {
  PAGEDKV_CHECK_CAPACITY(num_pages_held_after <= config_.num_usable_pages(),
                         "request '{}' needs {} pages for {} tokens but the pool has only {} "
                         "usable pages: it can never fit",
                         request.request_id(), num_pages_held_after, num_tokens_need_slot,
                         config_.num_usable_pages());
}

// plan_allocation and apply, inline so that allocate_slots_into makes one call, not three.
// `slot` is resolve_slot(request, alloc.slot_hint).
[[gnu::always_inline]] inline void KVCacheManager::plan_into(const Request& request,
                                                             const AllocationRequest& alloc,
                                                             int32_t slot,
                                                             AllocationPlan& plan) const {
  plan.manager_ = nullptr;  // if a check throws, `plan` cannot be applied
  check_counts(request, alloc);
  plan.in_place_ = plan_in_place(request, alloc, slot, plan);
  if (!plan.in_place_) {
    const bool has_hits = alloc.new_computed_pages != nullptr && check_hit_pages(request, alloc);
    check_held_pages(request, slot, has_hits);
    plan_groups(request, alloc, slot, plan);
  }
  check_capacity(request, plan.num_pages_held_after, plan.num_tokens_need_slot);
  plan.status = plan.num_free_pages_needed <= plan.num_free_pages_available
                    ? AllocationStatus::kOk
                    : AllocationStatus::kNotEnoughFreePages;
  plan.manager_ = this;
  plan.request_ = &request;
  plan.generation_ = generation_;
  plan.slot_ = slot;
  plan.request_num_tokens_ = request.num_tokens();
  plan.request_num_computed_tokens_ = request.num_computed_tokens();
}

void KVCacheManager::plan_allocation(const Request& request, const AllocationRequest& alloc,
                                     AllocationPlan& plan) const {
  plan_into(request, alloc, resolve_slot(request, alloc.slot_hint), plan);
}

AllocationPlan KVCacheManager::plan_allocation(const Request& request,
                                               const AllocationRequest& alloc) const {
  AllocationPlan plan;
  plan_allocation(request, alloc, plan);
  return plan;
}

inline void KVCacheManager::check_plan(const AllocationPlan& plan) const {
  PAGEDKV_CHECK_STATE(plan.manager_ == this,
                      "the plan was not made by this manager's plan_allocation");
  const std::string& id = plan.request_->request_id();
  PAGEDKV_CHECK_STATE(plan.ok(),
                      "the plan for request '{}' is {}: it needs {} free pages, {} are available",
                      id, allocation_status_name(plan.status), plan.num_free_pages_needed,
                      plan.num_free_pages_available);
  PAGEDKV_CHECK_STATE(plan.generation_ == generation_,
                      "the plan for request '{}' is stale: made at generation {}, the manager "
                      "is at generation {}",
                      id, plan.generation_, generation_);
  const Request& r = *plan.request_;
  PAGEDKV_CHECK_STATE(r.num_tokens() == plan.request_num_tokens_ &&
                          r.num_computed_tokens() == plan.request_num_computed_tokens_,
                      "request '{}' changed since it was planned: {} tokens ({} computed) then, "
                      "{} ({}) now",
                      id, plan.request_num_tokens_, plan.request_num_computed_tokens_,
                      r.num_tokens(), r.num_computed_tokens());
  PAGEDKV_ASSERT(plan.groups.size() == groups_.size(), "a plan of {} groups for {} groups",
                 plan.groups.size(), groups_.size());
}

[[gnu::always_inline]] inline void KVCacheManager::apply_plan(const AllocationPlan& plan,
                                                              GroupPages& new_pages) {
  check_plan(plan);
  new_pages.resize(groups_.size());  // before anything changes: it may allocate
  for (std::vector<PageId>& pages : new_pages) pages.clear();
  const int32_t slot = plan.slot_ >= 0 ? plan.slot_ : acquire_slot(plan.request_->request_id());
  ++generation_;
  if (plan.in_place_) return;  // a decode step in the pages held: no page changes hands
  // Each step for every group before the next (single_type_manager.h says why): window drops
  // first, as the pages they free may be taken as new pages; hits leave the free queue before
  // any group takes new pages; caching last, when every group's table is complete. A step
  // with nothing to do for a group is not called.
  const size_t num_groups = groups_.size();
  for (size_t g = 0; g < num_groups; ++g) {
    if (!plan.groups[g].dropped_pages.empty()) groups_[g]->drop_pages(slot, plan.groups[g]);
  }
  for (size_t g = 0; g < num_groups; ++g) {
    if (!plan.groups[g].hit_pages.empty()) groups_[g]->touch_hits(slot, plan.groups[g]);
  }
  for (size_t g = 0; g < num_groups; ++g) {
    if (plan.groups[g].num_new_pages > 0) {
      groups_[g]->take_new_pages(slot, plan.groups[g], new_pages[g]);
    }
  }
  for (size_t g = 0; g < num_groups; ++g) {
    const GroupPlan& gp = plan.groups[g];
    if (gp.cache_end > gp.cache_begin) groups_[g]->cache_full_pages(slot, gp, *plan.request_);
  }
}

void KVCacheManager::apply(const AllocationPlan& plan, GroupPages& new_pages) {
  apply_plan(plan, new_pages);
}

GroupPages KVCacheManager::apply(const AllocationPlan& plan) {
  GroupPages new_pages;
  apply(plan, new_pages);
  return new_pages;
}

std::optional<GroupPages> KVCacheManager::allocate_slots(const Request& request,
                                                         const AllocationRequest& alloc) {
  GroupPages new_pages;
  if (!allocate_slots_into(new_pages, request, alloc)) return std::nullopt;
  return new_pages;
}

// allocate_slots_into's decode fast path: a running request without hit pages whose step
// changes no page (steps_in_place). It makes plan_allocation's checks, in the same order, and
// has apply()'s effect for such a plan (new_pages empty, the generation moves on) without
// writing out the plan, which nobody reads here. Returns false, having changed nothing, for
// any other step (plan_allocation and apply then make it).
inline bool KVCacheManager::allocate_in_place(GroupPages& new_pages, const Request& request,
                                              const AllocationRequest& alloc, int32_t slot) {
  if (slot < 0 || alloc.new_computed_pages != nullptr) return false;
  check_counts(request, alloc);
  const GroupDemand demand = demand_of(request, alloc);
  int64_t held_after = 0;
  if (!steps_in_place(slot, demand, held_after)) return false;
  check_capacity(request, held_after, demand.num_tokens_need_slot);
  new_pages.resize(groups_.size());
  for (std::vector<PageId>& pages : new_pages) pages.clear();
  ++generation_;
  return true;
}

bool KVCacheManager::allocate_slots_into(GroupPages& new_pages, const Request& request,
                                         const AllocationRequest& alloc) {
  const int32_t slot = resolve_slot(request, alloc.slot_hint);
  if (allocate_in_place(new_pages, request, alloc, slot)) return true;
  AllocationPlan& plan = state_->plan;
  plan_into(request, alloc, slot, plan);
  if (!plan.ok()) return false;
  apply_plan(plan, new_pages);
  return true;
}

// ---- Release and queries ----

void KVCacheManager::free(const Request& request) { free(request.request_id()); }

void KVCacheManager::free(const std::string& request_id) {
  const auto it = state_->slot_of.find(request_id);
  if (it == state_->slot_of.end()) return;
  const int32_t slot = it->second;
  std::vector<PageId>& reversed = state_->reversed;
  reversed.clear();
  for (const auto& group : groups_) group->append_reversed_pages(slot, reversed);
  pool_->free_pages(reversed);
  ++generation_;
  for (auto& group : groups_) group->clear_slot(slot);
  state_->slot_ids[static_cast<size_t>(slot)].clear();
  state_->slot_of.erase(it);
  free_slots_.push_back(slot);
}

GroupPages KVCacheManager::get_page_ids(const std::string& request_id) const {
  GroupPages out(groups_.size());
  const int32_t slot = find_slot(request_id);
  if (slot < 0) return out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::span<const PageId> pages = groups_[g]->pages(slot);
    out[g].assign(pages.begin(), pages.end());
  }
  return out;
}

std::span<const PageId> KVCacheManager::request_pages(const std::string& request_id,
                                                      GroupId group) const {
  PAGEDKV_CHECK_RANGE(group >= 0 && group < num_groups(), "group {} outside [0, {})", group,
                      num_groups());
  const int32_t slot = find_slot(request_id);
  if (slot < 0) return kNoPages;
  return groups_[static_cast<size_t>(group)]->pages(slot);
}

int32_t KVCacheManager::num_requests() const {
  return static_cast<int32_t>(state_->slot_of.size());
}

bool KVCacheManager::has_request(const std::string& request_id) const {
  return find_slot(request_id) >= 0;
}

std::vector<int32_t> KVCacheManager::get_num_common_prefix_pages(
    const Request& request, int32_t num_running_requests) const {
  PAGEDKV_CHECK_ARG(num_running_requests >= 1, "num_running_requests must be >= 1, got {}",
                    num_running_requests);
  std::vector<int32_t> out(groups_.size(), 0);
  const int32_t slot = find_slot(request.request_id());
  if (slot < 0) return out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    out[g] = groups_[g]->num_common_prefix_pages(slot, num_running_requests);
  }
  return out;
}

bool KVCacheManager::reset_prefix_cache() {
  if (!pool_->reset_prefix_cache()) return false;
  ++generation_;  // hit pages of earlier plans are no longer cached
  return true;
}

double KVCacheManager::usage() const { return pool_->get_usage(); }

const SingleTypeManager& KVCacheManager::group_manager(GroupId group) const {
  PAGEDKV_CHECK_RANGE(group >= 0 && group < num_groups(), "group {} outside [0, {})", group,
                      num_groups());
  return *groups_[static_cast<size_t>(group)];
}

std::vector<KVEvent> KVCacheManager::take_events() { return pool_->take_events(); }

void KVCacheManager::verify() const {
  const int32_t num_slots = groups_.front()->num_slots();
  for (const auto& group : groups_) {
    PAGEDKV_ASSERT(group->num_slots() == num_slots, "group {} has {} slots, group 0 has {}",
                   group->group_id(), group->num_slots(), num_slots);
  }
  PAGEDKV_ASSERT(state_->slot_ids.size() == static_cast<size_t>(num_slots),
                 "{} slot ids for {} slots", state_->slot_ids.size(), num_slots);
  std::vector<uint8_t> slot_used(static_cast<size_t>(num_slots), 0);
  for (const auto& [id, slot] : state_->slot_of) {
    PAGEDKV_ASSERT(slot >= 0 && slot < num_slots && !slot_used[slot],
                   "request '{}' maps to slot {} (of {}) that is invalid or shared", id, slot,
                   num_slots);
    PAGEDKV_ASSERT(state_->slot_ids[static_cast<size_t>(slot)] == id,
                   "slot {} of request '{}' names request '{}'", slot, id,
                   state_->slot_ids[static_cast<size_t>(slot)]);
    slot_used[static_cast<size_t>(slot)] = 1;
  }
  for (int32_t slot : free_slots_) {
    PAGEDKV_ASSERT(slot >= 0 && slot < num_slots && !slot_used[slot],
                   "free slot {} (of {}) is invalid, listed twice or in use", slot, num_slots);
    slot_used[static_cast<size_t>(slot)] = 2;
    PAGEDKV_ASSERT(state_->slot_ids[static_cast<size_t>(slot)].empty(),
                   "free slot {} names request '{}'", slot,
                   state_->slot_ids[static_cast<size_t>(slot)]);
    for (const auto& group : groups_) {
      PAGEDKV_ASSERT(group->pages(slot).empty(), "free slot {} still holds {} pages in group {}",
                     slot, group->pages(slot).size(), group->group_id());
    }
  }
  PAGEDKV_ASSERT(state_->slot_of.size() + free_slots_.size() == static_cast<size_t>(num_slots),
                 "{} live + {} free slots != {} slots", state_->slot_of.size(), free_slots_.size(),
                 num_slots);

  std::vector<int32_t>& holders = state_->holders;
  holders.assign(static_cast<size_t>(config_.num_pages), 0);
  for (const auto& [id, slot] : state_->slot_of) {
    for (const auto& group : groups_) group->verify_slot(slot, holders);
  }
  for (PageId page = 1; page < config_.num_pages; ++page) {
    PAGEDKV_ASSERT(holders[static_cast<size_t>(page)] == pool_->ref_count(page),
                   "page {} is held by {} request lists but has ref count {}", page,
                   holders[static_cast<size_t>(page)], pool_->ref_count(page));
  }
  pool_->verify();
  stats_.verify();
}

}  // namespace pagedkv
