// pagedkv/manager/single_type_manager.h - the page tables of ONE KV-cache group and the
// attention-kind specific policy over them (vLLM SingleTypeKVCacheManager): how a prefix hit is
// found, which pages attention no longer reads, how many pages a request needs.
//
// KVCacheManager owns one per group and drives it in "plan, then apply" order; requests are
// addressed by a slot index the KVCacheManager assigns (one per live request, reused after
// free), so no per-group map lookup happens on the hot path.
//
// Example (what KVCacheManager::allocate_slots does for one group):
//   auto stm = SingleTypeManager::create(KVCacheGroupSpec::full_attention(16), 0, pool);
//   stm->resize_slots(1);
//   GroupDemand demand{.num_computed_tokens = 0, .num_tokens_need_slot = 48,
//                      .num_tokens_to_cache = 48};
//   GroupPlan plan = stm->plan(0, demand, hits);
//   // ... check plan.num_free_pages_needed() against the pool, then, each step for every
//   // group before the next step:
//   stm->drop_pages(0, plan);
//   stm->touch_hits(0, plan);
//   stm->take_new_pages(0, plan, new_pages);
//   stm->cache_full_pages(0, plan, request);
//
// Kinds:
//   full attention  hit = cached pages left to right, stopping at the first miss; never skips.
//   sliding window  (window w) hit found scanning from the right for cdiv(w - 1, page_size)
//                   contiguous cached pages, pages to their left are the null page (rule 24);
//                   tokens before num_computed - w + 1 are skipped: pages wholly before that
//                   point are replaced by the null page and freed (rule 23).
//
// Invariants of a slot (verify_slot()):
//   - null pages form a prefix of its page list (none for full attention);
//   - 0 <= num_cached_pages <= pages; the non-null pages before num_cached carry a hash when
//     caching is on;
//   - every non-null page id is in [1, num_pages).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_config.h"
#include "pagedkv/pool/page_pool.h"

namespace pagedkv {

// What an allocation asks of every group (the same for all groups), in tokens.
struct GroupDemand {
  int32_t num_computed_tokens = 0;   // the request's, before this step's hit
  int32_t num_tokens_need_slot = 0;  // the table covers at least this many tokens afterwards
  int32_t num_tokens_to_cache = 0;   // full pages among these get cached; 0 with caching off
};

// What one group does in an allocation, computed without touching anything. Page indices are
// positions in the slot's page list (the request's page table for the group).
struct GroupPlan {
  // This step's hit pages, touched and appended in this order (a sliding-window hit may start
  // with null pages). Non-empty only for a slot that holds nothing yet.
  std::vector<PageId> hit_pages;
  int32_t num_evictable_hits = 0;  // of those, pages now free: touching takes them off the queue
  int32_t num_new_pages = 0;       // pages to take from the free-queue head
  // Pages leaving the window (rule 23), in the order they are freed (right to left, so the
  // page nearest the window stays cached longest); their entries become the null page.
  std::vector<PageId> dropped_pages;
  int32_t num_pages_freed_by_skip = 0;  // of those, pages only this request holds: they rejoin
                                        // the free queue
  int32_t num_skipped_pages = 0;        // leading null entries of the list afterwards
  int32_t num_pages_held_after = 0;     // non-null pages the request holds afterwards
  // Pages [cache_begin, cache_end) of the list get their hashes and enter the prefix cache
  // (rule 19); empty when no page fills.
  int32_t cache_begin = 0;
  int32_t cache_end = 0;
  // Free pages this group consumes: num_new_pages + num_evictable_hits.
  int32_t num_free_pages_needed() const { return num_new_pages + num_evictable_hits; }
};

class SingleTypeManager {
 public:
  static std::unique_ptr<SingleTypeManager> create(const KVCacheGroupSpec& spec, GroupId group,
                                                   PagePool& pool);
  virtual ~SingleTypeManager() = default;
  SingleTypeManager(const SingleTypeManager&) = delete;
  SingleTypeManager& operator=(const SingleTypeManager&) = delete;

  const KVCacheGroupSpec& spec() const { return spec_; }
  GroupId group_id() const { return group_; }
  int32_t page_size() const { return spec_.page_size; }

  // ---- Policy (no state change) ----
  // Appends to `out` the pages of the longest hit of at most `max_length` tokens and returns
  // their count (hit tokens = count * page_size). `hashes` are the request's page hashes at this
  // group's page size; max_length / page_size <= hashes.size().
  virtual int32_t find_longest_cache_hit(std::span<const PageHash> hashes, int32_t max_length,
                                         std::vector<PageId>& out) const = 0;
  // True when a hit of L tokens implies a hit of every shorter page-aligned prefix (full
  // attention), so a shorter hit is a truncation instead of a new search.
  virtual bool hit_is_downward_closed() const = 0;
  // Leading tokens attention never reads again once num_computed_tokens are computed.
  virtual int32_t num_skipped_tokens(int32_t num_computed_tokens) const = 0;
  // Leading pages of `slot` held by all num_running_requests running requests (ref count equal
  // to it); 0 for sliding window, whose early pages are dropped.
  virtual int32_t num_common_prefix_pages(int32_t slot, int32_t num_running_requests) const = 0;

  // ---- Slots ----
  void resize_slots(int32_t num_slots);  // only grows
  int32_t num_slots() const { return static_cast<int32_t>(slots_.size()); }
  std::span<const PageId> pages(int32_t slot) const { return slots_[slot].pages; }
  int32_t num_cached_pages(int32_t slot) const { return slots_[slot].num_cached; }
  int32_t num_null_pages(int32_t slot) const { return slots_[slot].num_null; }
  // Non-null pages the slot holds.
  int32_t num_pages_held(int32_t slot) const {
    return static_cast<int32_t>(slots_[slot].pages.size()) - slots_[slot].num_null;
  }

  // What meeting `demand` costs `slot`, given this step's hit pages `new_computed` (non-empty
  // only for a slot holding nothing). slot == -1 stands for a request holding nothing yet.
  // Pure: reads ref counts only. The ids of new_computed must be in [0, num_pages)
  // (KVCacheManager checks them first). Fills `out`, reusing its buffers.
  void plan(int32_t slot, const GroupDemand& demand, std::span<const PageId> new_computed,
            GroupPlan& out) const;
  GroupPlan plan(int32_t slot, const GroupDemand& demand,
                 std::span<const PageId> new_computed) const;
  // The decode fast path. step_in_place: whether a full-attention slot meets `demand` with the
  // pages it holds and fills none (15 of 16 decode tokens at page size 16), so that plan()
  // would change nothing. plan_unchanged: if so, fills `out` exactly as plan(slot, demand, {})
  // would (nothing to drop, touch, take or cache) and returns true; otherwise returns false
  // and leaves `out` alone. slot >= 0.
  bool step_in_place(int32_t slot, const GroupDemand& demand) const {
    const Slot& s = slots_[slot];
    const int64_t ps = spec_.page_size;
    return spec_.kind == AttentionKind::kFullAttention &&
           demand.num_tokens_need_slot <= static_cast<int64_t>(s.pages.size()) * ps &&
           demand.num_tokens_to_cache < (s.num_cached + 1) * ps;
  }
  bool plan_unchanged(int32_t slot, const GroupDemand& demand, GroupPlan& out) const {
    if (!step_in_place(slot, demand)) return false;
    const Slot& s = slots_[slot];
    const int32_t held = static_cast<int32_t>(s.pages.size());
    out.hit_pages.clear();
    out.num_evictable_hits = 0;
    out.num_new_pages = 0;
    out.dropped_pages.clear();
    out.num_pages_freed_by_skip = 0;
    out.num_skipped_pages = s.num_null;
    out.num_pages_held_after = held - s.num_null;
    out.cache_begin = s.num_cached;
    out.cache_end = s.num_cached;
    return true;
  }
  // Carrying out a plan whose free pages are available: four steps, each done for every group
  // before the next, because pages move between groups through the free queue - pages the
  // window drops may be taken as new pages, and every group's hit pages must leave the queue
  // before any group takes new pages (else a new page could be another group's hit, evicted
  // before it is touched):
  //   1. drop_pages: frees plan.dropped_pages, leaving null entries;
  //   2. touch_hits: touches plan.hit_pages and makes them the slot's list;
  //   3. take_new_pages: takes plan.num_new_pages pages, appended to the slot and `new_pages`;
  //   4. cache_full_pages: gives pages [cache_begin, cache_end) the request's hashes.
  // Each asserts the slot is in the state the plan was made for.
  void drop_pages(int32_t slot, const GroupPlan& plan);
  void touch_hits(int32_t slot, const GroupPlan& plan);
  void take_new_pages(int32_t slot, const GroupPlan& plan, std::vector<PageId>& new_pages);
  void cache_full_pages(int32_t slot, const GroupPlan& plan, const Request& request);
  // Appends the slot's pages in reverse order: the order they go back to the pool (rule 20).
  void append_reversed_pages(int32_t slot, std::vector<PageId>& out) const;
  // Empties the slot once its pages went back to the pool (capacity kept).
  void clear_slot(int32_t slot);

  // Walks the invariants of one slot; throws InternalError. Adds each non-null page to
  // holders[page] (sized num_pages) so the caller can compare with the pool's ref counts.
  void verify_slot(int32_t slot, std::vector<int32_t>& holders) const;

 protected:
  SingleTypeManager(const KVCacheGroupSpec& spec, GroupId group, PagePool& pool);

  struct Slot {
    std::vector<PageId> pages;  // null pages first (sliding window), then held pages
    int32_t num_cached = 0;     // leading pages already given to the prefix cache
    int32_t num_null = 0;       // leading null pages
  };

  KVCacheGroupSpec spec_;
  GroupId group_;
  PagePool* pool_;
  std::vector<Slot> slots_;
};

}  // namespace pagedkv
