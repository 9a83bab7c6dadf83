// KVCacheManager: validation, the multi-group hit search, and plan-then-apply allocation.
#include "pagedkv/manager/kv_cache_manager.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <string_view>

#include "pagedkv/common/errors.h"

namespace pagedkv {

struct KVCacheManager::Scratch {
  std::vector<GroupPlan> plans;
  std::vector<PageId> reversed;     // pages of a freed request, in the order they go back
  std::vector<uint8_t> hit_known;   // per group: out.pages[g] holds a search result
  std::vector<int32_t> holders;     // verify(): request lists holding each page
};

namespace {
const std::vector<PageId> kNoPages;
}  // namespace

KVCacheManager::KVCacheManager(KVCacheConfig config)
    : config_((config.validate(), std::move(config))),
      lcm_page_size_(config_.lcm_page_size()),
      pool_(std::make_unique<PagePool>(config_.num_pages, config_.enable_caching,
                                       config_.enable_kv_events)),
      scratch_(std::make_unique<Scratch>()) {
  for (size_t g = 0; g < config_.groups.size(); ++g) {
    groups_.push_back(
        SingleTypeManager::create(config_.groups[g], static_cast<GroupId>(g), *pool_));
  }
  scratch_->plans.resize(config_.groups.size());
  scratch_->hit_known.resize(config_.groups.size());
}

KVCacheManager::KVCacheManager(int32_t num_pages, int32_t page_size, int32_t max_model_len,
                               bool enable_caching)
    : KVCacheManager(
          KVCacheConfig::single_group(num_pages, page_size, max_model_len, enable_caching)) {}

KVCacheManager::~KVCacheManager() = default;
KVCacheManager::KVCacheManager(KVCacheManager&&) noexcept = default;
KVCacheManager& KVCacheManager::operator=(KVCacheManager&&) noexcept = default;

void KVCacheManager::check_request(const Request& request) const {
  PAGEDKV_CHECK_ARG(!config_.enable_caching ||
                        request.options().hash_algorithm == config_.hash_algorithm,
                    "request '{}' hashes with {} but the cache uses {}", request.request_id(),
                    hash_algorithm_name(request.options().hash_algorithm),
                    hash_algorithm_name(config_.hash_algorithm));
}

int32_t KVCacheManager::find_slot(const std::string& request_id) const {
  return slot_index_.find(request_id);
}

int32_t KVCacheManager::acquire_slot(const std::string& request_id) {
  const bool reuse = !free_slots_.empty();
  const int32_t slot = reuse ? free_slots_.back() : groups_.front()->num_slots();
  if (!reuse) {
    for (auto& group : groups_) group->resize_slots(slot + 1);
  }
  slot_index_.insert(request_id, slot);
  if (reuse) free_slots_.pop_back();
  return slot;
}

// ---- Request id -> slot ----

namespace {
uint64_t id_hash(std::string_view id) { return std::hash<std::string_view>{}(id); }
}  // namespace

int32_t KVCacheManager::SlotIndex::find(std::string_view id) const {
  if (size_ == 0) return -1;
  const uint64_t h = id_hash(id);
  for (size_t i = home(h);; i = (i + 1) & (table_.size() - 1)) {
    const Entry& e = table_[i];
    if (e.slot < 0) return -1;
    if (e.hash == h && id_of(e.slot) == id) return e.slot;
  }
}

void KVCacheManager::SlotIndex::insert(std::string_view id, int32_t slot) {
  if (static_cast<size_t>(size_ + 1) * 2 > table_.size()) grow();  // load <= 1/2
  if (ids_.size() <= static_cast<size_t>(slot)) ids_.resize(static_cast<size_t>(slot) + 1);
  ids_[static_cast<size_t>(slot)].assign(id);
  const uint64_t h = id_hash(id);
  size_t i = home(h);
  while (table_[i].slot >= 0) i = (i + 1) & (table_.size() - 1);
  table_[i] = Entry{h, slot};
  ++size_;
}

int32_t KVCacheManager::SlotIndex::erase(std::string_view id) {
  if (size_ == 0) return -1;
  const uint64_t h = id_hash(id);
  const size_t mask = table_.size() - 1;
  size_t i = home(h);
  for (;; i = (i + 1) & mask) {
    if (table_[i].slot < 0) return -1;
    if (table_[i].hash == h && id_of(table_[i].slot) == id) break;
  }
  const int32_t slot = table_[i].slot;
  // Backward-shift deletion: move later entries of the probe run into the hole when their
  // home position does not lie (cyclically) between the hole and them.
  for (size_t j = (i + 1) & mask; table_[j].slot >= 0; j = (j + 1) & mask) {
    const size_t k = home(table_[j].hash);
    const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      table_[i] = table_[j];
      i = j;
    }
  }
  table_[i] = Entry{};
  --size_;
  return slot;
}

void KVCacheManager::SlotIndex::grow() {
  std::vector<Entry> old = std::move(table_);
  table_.assign(old.empty() ? 64 : old.size() * 2, Entry{});
  for (const Entry& e : old) {
    if (e.slot < 0) continue;
    size_t i = home(e.hash);
    while (table_[i].slot >= 0) i = (i + 1) & (table_.size() - 1);
    table_[i] = e;
  }
}

void KVCacheManager::SlotIndex::verify() const {
  int32_t n = 0;
  for (const Entry& e : table_) {
    if (e.slot < 0) continue;
    ++n;
    PAGEDKV_ASSERT(e.hash == id_hash(id_of(e.slot)), "slot {}: stale hash for id '{}'", e.slot,
                   id_of(e.slot));
    PAGEDKV_ASSERT(find(id_of(e.slot)) == e.slot, "request '{}' (slot {}) is not reachable",
                   id_of(e.slot), e.slot);
  }
  PAGEDKV_ASSERT(n == size_, "the request index holds {} entries but counts {}", n, size_);
  PAGEDKV_ASSERT(table_.empty() || static_cast<size_t>(size_) * 2 <= table_.size(),
                 "request index load {}/{} above 1/2", size_, table_.size());
}

// ---- Lookup ----

int32_t KVCacheManager::longest_common_hit(const Request& request, int32_t max_length,
                                           ComputedPages& out) {
  // Fixed point: each group returns the longest hit it accepts within max_length; a shorter
  // answer lowers max_length (to a multiple of the lcm) and the other groups are asked again.
  // max_length never drops below the longest length every group accepts, so the fixed point is
  // that length (rule 25). Full-attention answers shrink by truncation, without a new search.
  std::vector<uint8_t>& known = scratch_->hit_known;
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

void KVCacheManager::get_computed_pages(const Request& request, bool resumed,
                                        ComputedPages& out) {
  check_request(request);
  out.pages.resize(groups_.size());
  for (auto& pages : out.pages) pages.clear();
  out.num_computed_tokens = 0;
  if (!config_.enable_caching) return;

  // The last token is always recomputed: its logits are needed (rule 16).
  const int32_t max_length = (request.num_tokens() - 1) / lcm_page_size_ * lcm_page_size_;
  std::fill(scratch_->hit_known.begin(), scratch_->hit_known.end(), 0);
  int32_t hit = longest_common_hit(request, max_length, out);
  if (config_.num_speculative_tokens > 0 && hit > 0) {
    // Rule 17: one page less, so the draft model sees the last hit page computed again.
    hit = longest_common_hit(request, hit - lcm_page_size_, out);
  }
  out.num_computed_tokens = hit;
  stats_.record(request.num_tokens(), hit, resumed);
}

ComputedPages KVCacheManager::get_computed_pages(const Request& request, bool resumed) {
  ComputedPages out;
  get_computed_pages(request, resumed, out);
  return out;
}

// ---- Allocation ----

std::optional<GroupPages> KVCacheManager::allocate_slots(const Request& request,
                                                         const AllocationRequest& alloc) {
  GroupPages new_pages;
  if (!allocate_slots_into(new_pages, request, alloc)) return std::nullopt;
  return new_pages;
}

bool KVCacheManager::allocate_slots_into(GroupPages& new_pages, const Request& request,
                                         const AllocationRequest& alloc) {
  const int32_t num_new_tokens = alloc.num_new_tokens;
  const int32_t num_new_computed_tokens = alloc.num_new_computed_tokens;
  const GroupPages* new_computed_pages = alloc.new_computed_pages;
  const int32_t num_lookahead_tokens = alloc.num_lookahead_tokens;
  const std::string& id = request.request_id();
  // ---- Checks (nothing changes before all pass) ----
  check_request(request);
  PAGEDKV_CHECK_ARG(num_new_tokens >= 0, "num_new_tokens must be >= 0, got {}", num_new_tokens);
  PAGEDKV_CHECK_ARG(num_new_computed_tokens >= 0, "num_new_computed_tokens must be >= 0, got {}",
                    num_new_computed_tokens);
  PAGEDKV_CHECK_ARG(num_lookahead_tokens >= 0, "num_lookahead_tokens must be >= 0, got {}",
                    num_lookahead_tokens);
  const int32_t computed = request.num_computed_tokens();
  const int64_t with_hit = static_cast<int64_t>(computed) + num_new_computed_tokens;
  PAGEDKV_CHECK_ARG(with_hit <= request.num_tokens(),
                    "request '{}': {} computed + {} hit tokens exceed its {} tokens", id,
                    computed, num_new_computed_tokens, request.num_tokens());
  const int64_t total = with_hit + num_new_tokens;
  PAGEDKV_CHECK_ARG(total <= config_.max_model_len,
                    "request '{}': {} computed + {} hit + {} new tokens exceed max_model_len {}",
                    id, computed, num_new_computed_tokens, num_new_tokens, config_.max_model_len);

  const int32_t slot = find_slot(id);
  bool has_hits = false;
  if (new_computed_pages != nullptr) {
    PAGEDKV_CHECK_ARG(new_computed_pages->size() == groups_.size(),
                      "new_computed_pages has {} groups, the cache has {}",
                      new_computed_pages->size(), groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
      const std::vector<PageId>& hits = (*new_computed_pages)[g];
      const int32_t ps = groups_[g]->page_size();
      PAGEDKV_CHECK_ARG(static_cast<int64_t>(hits.size()) * ps <= num_new_computed_tokens,
                        "group {}: {} hit pages of {} tokens cover more than the {} "
                        "num_new_computed_tokens", g, hits.size(), ps, num_new_computed_tokens);
      const bool sliding = groups_[g]->spec().kind == AttentionKind::kSlidingWindow;
      bool seen_page = false;
      for (PageId page : hits) {
        PAGEDKV_CHECK_RANGE(page >= 0 && page < config_.num_pages,
                            "group {}: hit page id {} outside [0, {})", g, page,
                            config_.num_pages);
        if (page == kNullPageId) {
          PAGEDKV_CHECK_ARG(sliding && !seen_page,
                            "group {}: a null hit page is allowed only before the first real "
                            "page of a sliding-window group", g);
        } else {
          seen_page = true;
        }
      }
      has_hits = has_hits || !hits.empty();
    }
    PAGEDKV_CHECK_ARG(!has_hits || config_.enable_caching,
                      "request '{}': hit pages passed with prefix caching off", id);
  }
  if (slot >= 0) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      const int64_t held_tokens =
          static_cast<int64_t>(groups_[g]->pages(slot).size()) * groups_[g]->page_size();
      PAGEDKV_CHECK_STATE(!has_hits || held_tokens == 0,
                          "request '{}' already holds pages: hit pages are only for its first "
                          "allocation", id);
      PAGEDKV_CHECK_STATE(computed <= held_tokens,
                          "request '{}' has {} computed tokens but group {} holds pages for {}",
                          id, computed, g, held_tokens);
    }
  } else {
    PAGEDKV_CHECK_STATE(computed == 0,
                        "request '{}' has {} computed tokens but holds no pages", id, computed);
  }

  // ---- Plan ----
  const int32_t need_slot = static_cast<int32_t>(
      std::min<int64_t>(total + num_lookahead_tokens, config_.max_model_len));
  int64_t free_needed = 0, freed_by_skip = 0, held_after = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::span<const PageId> hits;
    if (new_computed_pages != nullptr) hits = (*new_computed_pages)[g];
    GroupPlan& plan = scratch_->plans[g];
    plan = groups_[g]->plan(slot, computed, need_slot, hits);
    free_needed += plan.num_free_pages_needed();
    freed_by_skip += plan.num_pages_freed_by_skip;
    held_after += plan.num_pages_held_after;
  }
  PAGEDKV_CHECK_CAPACITY(held_after <= config_.num_usable_pages(),
                         "request '{}' needs {} pages for {} tokens but the pool has only {} "
                         "usable pages: it can never fit", id, held_after, need_slot,
                         config_.num_usable_pages());
  if (free_needed > pool_->get_num_free_pages() + freed_by_skip) return false;

  // ---- Apply ----
  const int32_t s = slot >= 0 ? slot : acquire_slot(id);
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::span<const PageId> hits;
    if (new_computed_pages != nullptr) hits = (*new_computed_pages)[g];
    groups_[g]->save_hits(s, scratch_->plans[g], hits);
  }
  new_pages.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    new_pages[g].clear();
    groups_[g]->take_new_pages(s, scratch_->plans[g], new_pages[g]);
  }
  if (config_.enable_caching) {
    // Never the lookahead/draft tokens: they may be rejected (rule 19).
    const int32_t num_to_cache =
        static_cast<int32_t>(std::min<int64_t>(total, request.num_tokens()));
    for (auto& group : groups_) group->cache_full_pages(s, request, num_to_cache);
  }
  return true;
}

// ---- Release and queries ----

void KVCacheManager::free(const Request& request) { free(request.request_id()); }

void KVCacheManager::free(const std::string& request_id) {
  const int32_t slot = find_slot(request_id);
  if (slot < 0) return;
  std::vector<PageId>& reversed = scratch_->reversed;
  reversed.clear();
  for (const auto& group : groups_) group->append_reversed_pages(slot, reversed);
  pool_->free_pages(reversed);
  for (auto& group : groups_) group->clear_slot(slot);
  slot_index_.erase(request_id);
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

bool KVCacheManager::reset_prefix_cache() { return pool_->reset_prefix_cache(); }

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
  std::vector<uint8_t> slot_used(static_cast<size_t>(num_slots), 0);
  slot_index_.verify();
  slot_index_.for_each([&](const std::string& id, int32_t slot) {
    PAGEDKV_ASSERT(slot >= 0 && slot < num_slots && !slot_used[slot],
                   "request '{}' maps to slot {} (of {}) that is invalid or shared", id, slot,
                   num_slots);
    slot_used[static_cast<size_t>(slot)] = 1;
  });
  for (int32_t slot : free_slots_) {
    PAGEDKV_ASSERT(slot >= 0 && slot < num_slots && !slot_used[slot],
                   "free slot {} (of {}) is invalid, listed twice or in use", slot, num_slots);
    slot_used[static_cast<size_t>(slot)] = 2;
    for (const auto& group : groups_) {
      PAGEDKV_ASSERT(group->pages(slot).empty(), "free slot {} still holds {} pages in group {}",
                     slot, group->pages(slot).size(), group->group_id());
    }
  }
  PAGEDKV_ASSERT(slot_index_.size() + free_slots_.size() == static_cast<size_t>(num_slots),
                 "{} live + {} free slots != {} slots", slot_index_.size(), free_slots_.size(),
                 num_slots);

  std::vector<int32_t>& holders = scratch_->holders;
  holders.assign(static_cast<size_t>(config_.num_pages), 0);
  slot_index_.for_each([&](const std::string&, int32_t slot) {
    for (const auto& group : groups_) group->verify_slot(slot, holders);
  });
  for (PageId page = 1; page < config_.num_pages; ++page) {
    PAGEDKV_ASSERT(holders[static_cast<size_t>(page)] == pool_->ref_count(page),
                   "page {} is held by {} request lists but has ref count {}", page,
                   holders[static_cast<size_t>(page)], pool_->ref_count(page));
  }
  pool_->verify();
  stats_.verify();
}

}  // namespace pagedkv
