// pagedkv/manager/kv_cache_manager.h - the KV-cache manager (vLLM v1 KVCacheManager): turns a
// scheduler's "request R computes N more tokens" into pages of one PagePool, per KV-cache
// group, with prefix caching. Behaviour: docs/rules.md rules 16-25, 29, 30.
//
// Example (one full-attention group, page size 16):
//   KVCacheManager manager(/*num_pages=*/1024, /*page_size=*/16, /*max_model_len=*/4096);
//   Request req("r1", prompt);                            // 48 tokens
//   ComputedPages hit = manager.get_computed_pages(req);   // at most 2 pages (rule 16)
//   auto pages = manager.allocate_slots(
//       req, {.num_new_tokens = req.num_tokens() - hit.num_computed_tokens,
//             .num_new_computed_tokens = hit.num_computed_tokens,
//             .new_computed_pages = &hit.pages});
//   if (!pages) { /* not enough free pages: nothing changed, preempt or wait */ }
//   req.set_num_computed_tokens(req.num_tokens());         // the scheduler's job
//   ...                                                     // decode: allocate_slots(req, 1)
//   manager.free(req);                                      // pages back, tail first (rule 20)
//
// Lifecycle of a request: get_computed_pages (pure lookup, records statistics) ->
// allocate_slots (once per step; the first call passes the hit) -> free. The request's
// num_computed_tokens() is read, never written: the scheduler advances it after each step.
//
// Plan, then apply: allocate_slots is plan_allocation (pure: what would happen, as a value)
// followed by apply (the one place where pages change hands). For the commonest call - a
// decode token that fits in the pages held and fills none - it decides the same way and has
// the same effect (checks, generation) without writing the plan out. A scheduler plans to
// decide before it commits:
//   AllocationPlan plan = manager.plan_allocation(req, {.num_new_tokens = chunk});
//   if (plan.ok()) new_pages = manager.apply(plan);
//   else { /* plan.num_free_pages_needed > plan.num_free_pages_available: preempt or wait */ }
// Admission (rule 39) plans the whole sequence and the chunk, and applies the chunk's plan only
// if both are ok(). A plan must be applied before any other call that changes pages (allocate,
// apply, free, reset_prefix_cache) and while its request is unchanged; apply() refuses a stale
// plan, and a plan that is not ok(), with StateError. Lookups and other plans do not stale it.
//
// Invariants (verify()):
//   - each live request has one page list per group; ids in range; null pages only as a prefix
//     of sliding-window lists;
//   - pages are conserved: for every usable page, the number of request lists holding it equals
//     its pool ref count (the manager is the pool's only client); the pool's own verify() holds;
//   - a call that leaves every page as it was leaves generation() as it was.
//
// Errors: every check runs before anything changes (strong guarantee). Running out of free pages
// is not an error: allocate_slots returns nullopt. A request that could never fit, even in an
// empty pool, throws CapacityError (rule 29).
//
// Choices where vLLM leaves room:
//   - free() of a request the manager does not know is a no-op (as in vLLM: the scheduler frees
//     aborted requests that never got pages); get_page_ids / get_num_common_prefix_pages of an
//     unknown request return empty lists / zeros.
//   - allocate_slots does not drop out-of-window pages when it fails (vLLM does): on failure
//     nothing changes. The pages those drops would free are counted as available, so the
//     decision is the same as vLLM's.
//   - hit statistics count fresh requests in requests/queries/hits and preempted-then-resumed
//     ones in resumed_* only; the windowed rate covers fresh lookups (vLLM's CachingMetrics).
//   - speculative decoding (config.num_speculative_tokens > 0, rule 17): the hit becomes the
//     longest length every group accepts strictly below the plain hit. For one full-attention
//     group that is exactly one page fewer, as vLLM does for EAGLE drafters; pagedkv applies it
//     to every drafter, which only costs recomputing one page.
//   - hit pages (new_computed_pages) are accepted only on a request's first allocation, as in
//     vLLM; a running request passes none.
//
// Not thread-safe: the scheduler thread drives it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/manager/kv_cache_config.h"
#include "pagedkv/manager/prefix_cache_stats.h"
#include "pagedkv/manager/single_type_manager.h"
#include "pagedkv/pool/kv_events.h"
#include "pagedkv/pool/page_pool.h"

namespace pagedkv {

class KVCacheManager;

// Pages per KV-cache group: pages[g] is group g's list.
using GroupPages = std::vector<std::vector<PageId>>;

// The result of a prefix-cache lookup.
struct ComputedPages {
  // [num_groups][num_computed_tokens / page_size(g)]; sliding-window lists may start with null
  // pages (outside the window of the hit).
  GroupPages pages;
  int32_t num_computed_tokens = 0;  // a multiple of the lcm of the groups' page sizes
};

// Why a plan cannot be applied (kOk: it can).
enum class AllocationStatus : uint8_t {
  kOk,
  kNotEnoughFreePages,  // num_free_pages_needed > num_free_pages_available (rule 18)
};
std::string_view allocation_status_name(AllocationStatus s);  // "ok", "not_enough_free_pages"

// What one allocate_slots call asks for; all counts >= 0. Designated initialisers read best:
//   manager.allocate_slots(req, {.num_new_tokens = n,
//                                .num_new_computed_tokens = hit.num_computed_tokens,
//                                .new_computed_pages = &hit.pages});
struct AllocationRequest {
  // Tokens computed in this step, after request.num_computed_tokens() and this step's hit.
  int32_t num_new_tokens = 0;
  // This step's prefix-cache hit in tokens (ComputedPages::num_computed_tokens). Hit tokens
  // beyond the hit pages are taken as computed elsewhere (see allocate_slots).
  int32_t num_new_computed_tokens = 0;
  // The hit's pages per group (ComputedPages::pages), or nullptr for none. Accepted only on
  // the request's first allocation, as in vLLM. Read during the call only.
  const GroupPages* new_computed_pages = nullptr;
  // Speculative (draft) slots after the new tokens: allocated, never cached (rule 19).
  int32_t num_lookahead_tokens = 0;
  // The request's slot (KVCacheManager::slot_of), or -1: a caller that allocates for the same
  // request every step keeps it to save the id lookup. Only a hint: a slot that is not this
  // request's (out of range, freed, reused by another request) is ignored and the id is
  // looked up, so a stale hint never changes the result.
  int32_t slot_hint = -1;
};

// What allocating for one request would do, computed by plan_allocation without changing
// anything. Read it freely; pass it to apply() unchanged (apply carries out what it says).
struct AllocationPlan {
  AllocationStatus status = AllocationStatus::kOk;
  // [num_groups] per group: the hit pages to touch, how many new pages to take, the pages the
  // sliding window drops, the range of page indices cached (GroupPlan).
  std::vector<GroupPlan> groups;
  // Free pages the allocation consumes: new pages plus hit pages now in the free queue.
  int64_t num_free_pages_needed = 0;
  // Of those, the hit pages now in the free queue (touching them takes them out).
  int64_t num_evictable_hit_pages = 0;
  // Free pages now plus the pages the window drops in this allocation return to the queue.
  int64_t num_free_pages_available = 0;
  // Non-null pages the request holds afterwards, over all groups (<= usable pages: rule 29).
  int64_t num_pages_held_after = 0;
  int32_t num_tokens_need_slot = 0;  // min(computed + hit + new + lookahead, max_model_len)
  int32_t num_tokens_to_cache = 0;   // min(computed + hit + new, num_tokens); 0: caching off

  bool ok() const { return status == AllocationStatus::kOk; }
  // The planned request's id; empty for a plan that plan_allocation did not make.
  std::string_view request_id() const;

 private:
  friend class KVCacheManager;
  // What apply() checks the plan against.
  const KVCacheManager* manager_ = nullptr;
  const Request* request_ = nullptr;  // must outlive the plan
  uint64_t generation_ = 0;           // the manager's generation() when planned
  int32_t slot_ = -1;                 // the request's slot; -1: it holds nothing yet
  int32_t request_num_tokens_ = 0;    // the request as planned for
  int32_t request_num_computed_tokens_ = 0;
  bool in_place_ = false;  // no group drops, touches, takes or caches a page (plan_in_place)
};

class KVCacheManager {
 public:
  // Validates the config (InvalidArgument naming the field).
  explicit KVCacheManager(KVCacheConfig config);
  // One full-attention group.
  KVCacheManager(int32_t num_pages, int32_t page_size, int32_t max_model_len,
                 bool enable_caching = true);
  ~KVCacheManager();
  KVCacheManager(KVCacheManager&&) noexcept;
  KVCacheManager& operator=(KVCacheManager&&) noexcept;
  KVCacheManager(const KVCacheManager&) = delete;
  KVCacheManager& operator=(const KVCacheManager&) = delete;

  const KVCacheConfig& config() const { return config_; }
  int32_t num_groups() const { return static_cast<int32_t>(config_.groups.size()); }

  // Longest cached prefix of `request` every group accepts (rules 16, 17, 24, 25), at most
  // (num_tokens - 1) rounded down to the lcm of the page sizes. Changes no page; records one
  // lookup in the statistics, among the resumed ones when `resumed` (the request was
  // preempted and comes back; the scheduler knows). With caching off: no hit and no
  // statistics. Throws InvalidArgument if the request hashes with another algorithm than
  // config().hash_algorithm.
  ComputedPages get_computed_pages(const Request& request, bool resumed = false);
  // Same, reusing `out`'s buffers.
  void get_computed_pages(const Request& request, bool resumed, ComputedPages& out);
  // The same lookup without recording it: for a scheduler that counts only the requests it
  // admits (rule 46) and records them in statistics of its own.
  void find_computed_pages(const Request& request, ComputedPages& out);

  // Makes room for alloc.num_new_tokens more tokens after request.num_computed_tokens() plus
  // this step's hit (alloc.num_new_computed_tokens, whose pages per group are
  // *alloc.new_computed_pages, or none).
  // Needs cdiv(min(computed + hit + new + lookahead, max_model_len), page_size) pages per group
  // (rule 18); returns the newly taken pages per group, or nullopt - with nothing changed - when
  // fewer pages are free than that plus the hit pages that are currently free. Then caches the
  // full pages among the first min(computed + hit + new, num_tokens) tokens (rule 19) and, for
  // sliding-window groups, swaps pages wholly outside the window for the null page and frees
  // them (rule 23).
  // Hit tokens beyond the hit pages (num_new_computed_tokens > pages * page_size) are taken as
  // computed elsewhere - loaded from another cache tier, as vLLM's external computed tokens:
  // they get fresh pages and their full pages are cached like any other, so their K/V must be
  // in those pages before another request can hit them.
  // Throws (nothing changed):
  //   InvalidArgument  negative count; computed + hit + new > max_model_len; computed + hit >
  //                    num_tokens; new_computed_pages with a group count other than
  //                    num_groups(), covering more than num_new_computed_tokens, with a null
  //                    page in a full-attention list or not as a prefix; hit pages with caching
  //                    off; another hash algorithm;
  //   OutOfRange       a hit page id outside [0, num_pages);
  //   StateError       hit pages for a request that already holds pages; computed tokens
  //                    beyond the pages the request holds;
  //   CapacityError    the request would hold more pages than the pool has usable (rule 29).
  std::optional<GroupPages> allocate_slots(const Request& request, const AllocationRequest& alloc);
  // The common decode case: num_new_tokens more tokens, no hit, no lookahead.
  std::optional<GroupPages> allocate_slots(const Request& request, int32_t num_new_tokens) {
    return allocate_slots(request, AllocationRequest{.num_new_tokens = num_new_tokens});
  }
  // Same, writing the new pages into `new_pages` (resized to num_groups(), buffers reused);
  // returns false where the other returns nullopt (new_pages is then left as it was).
  bool allocate_slots_into(GroupPages& new_pages, const Request& request,
                           const AllocationRequest& alloc);

  // What allocate_slots(request, alloc) would do, changing nothing (not even statistics):
  // status kOk, or kNotEnoughFreePages with the counts that decided it. Throws exactly what
  // allocate_slots throws, for the same inputs. The plan refers to `request`, which must
  // outlive it.
  AllocationPlan plan_allocation(const Request& request, const AllocationRequest& alloc) const;
  // Same, reusing `plan`'s buffers. If it throws, `plan` can no longer be applied.
  void plan_allocation(const Request& request, const AllocationRequest& alloc,
                       AllocationPlan& plan) const;
  // Carries out `plan` and returns the newly taken pages per group, as allocate_slots would.
  // Throws StateError (nothing changed) for a plan that is not ok(), was made by another
  // manager (or by no plan_allocation), is stale (generation() moved on since) or whose
  // request changed its tokens or computed tokens since.
  GroupPages apply(const AllocationPlan& plan);
  // Same, writing the new pages into `new_pages` (resized to num_groups(), buffers reused).
  void apply(const AllocationPlan& plan, GroupPages& new_pages);
  // Changes with every successful allocation (allocate_slots, apply), every free() of a
  // request holding pages and every reset_prefix_cache() that empties the cache.
  uint64_t generation() const { return generation_; }

  // Returns the request's pages to the pool, each group's list in reverse order (rule 20).
  // Unknown request: no-op.
  void free(const Request& request);
  void free(const std::string& request_id);

  // The request's pages per group (copies; empty lists for an unknown request).
  GroupPages get_page_ids(const std::string& request_id) const;
  // Group `group`'s pages of the request without copying; valid until the next mutating call.
  // Empty for an unknown request; OutOfRange for a bad group.
  std::span<const PageId> request_pages(const std::string& request_id, GroupId group) const;
  bool has_request(const std::string& request_id) const;
  int32_t num_requests() const;
  // The slot of a request holding pages, for AllocationRequest::slot_hint; -1 if unknown. A
  // slot stays the request's until it is freed (then it may go to another request).
  int32_t slot_of(const std::string& request_id) const { return find_slot(request_id); }

  // Per group: leading pages of `request` shared by all num_running_requests running requests
  // (for cascade attention); 0 for sliding-window groups and unknown requests.
  // Throws InvalidArgument if num_running_requests < 1.
  std::vector<int32_t> get_num_common_prefix_pages(const Request& request,
                                                   int32_t num_running_requests) const;

  // Drops every cached hash; false (nothing changes) while any request holds pages (rule 10).
  bool reset_prefix_cache();
  // Held usable pages / usable pages.
  double usage() const;
  // The pool. Read it freely; taking or freeing pages through it directly breaks verify().
  PagePool& page_pool() { return *pool_; }
  const PagePool& page_pool() const { return *pool_; }
  const SingleTypeManager& group_manager(GroupId group) const;  // OutOfRange on a bad group

  const PrefixCacheStats& prefix_cache_stats() const { return stats_; }
  void reset_prefix_cache_stats() { stats_.reset(); }
  // KV events since the last call (rule 21); empty unless config().enable_kv_events.
  std::vector<KVEvent> take_events();

  // Walks every invariant above and the pool's; throws InternalError naming the first broken.
  void verify() const;

 private:
  // The request-id table and the hot path's reused buffers, kept out of this header.
  struct State;
  int32_t find_slot(std::string_view request_id) const;  // -1 if unknown
  // The slot of `request`: `hint` when it is the request's slot, else find_slot.
  int32_t resolve_slot(const Request& request, int32_t hint) const;
  int32_t acquire_slot(const std::string& request_id);
  void check_request(const Request& request) const;
  // Allocation phases, in order: check (throws, nothing changed), plan (pure), apply.
  void check_counts(const Request& request, const AllocationRequest& alloc) const;
  bool check_hit_pages(const Request& request, const AllocationRequest& alloc) const;
  void check_held_pages(const Request& request, int32_t slot, bool has_hits) const;
  void plan_groups(const Request& request, const AllocationRequest& alloc, int32_t slot,
                   AllocationPlan& plan) const;
  // The token counts every group must meet (plan_demand sets them in `plan` as well).
  GroupDemand demand_of(const Request& request, const AllocationRequest& alloc) const;
  GroupDemand plan_demand(const Request& request, const AllocationRequest& alloc,
                          AllocationPlan& plan) const;
  // Whether every group meets `demand` with the pages it holds, changing none; adds the pages
  // held to held_after.
  bool steps_in_place(int32_t slot, const GroupDemand& demand, int64_t& held_after) const;
  // The decode fast path of check_held_pages + plan_groups; false when it does not apply.
  bool plan_in_place(const Request& request, const AllocationRequest& alloc, int32_t slot,
                     AllocationPlan& plan) const;
  // Rule 29: the request would hold more pages than the pool has usable (CapacityError).
  void check_capacity(const Request& request, int64_t num_pages_held_after,
                      int32_t num_tokens_need_slot) const;
  // The decode fast path of allocate_slots_into; false (nothing done) when it does not apply.
  bool allocate_in_place(GroupPages& new_pages, const Request& request,
                         const AllocationRequest& alloc, int32_t slot);
  void check_plan(const AllocationPlan& plan) const;
  void plan_into(const Request& request, const AllocationRequest& alloc, int32_t slot,
                 AllocationPlan& plan) const;
  void apply_plan(const AllocationPlan& plan, GroupPages& new_pages);
  // Fixed point of the per-group hits starting from max_length (rule 25); returns hit tokens.
  int32_t longest_common_hit(const Request& request, int32_t max_length, ComputedPages& out);

  KVCacheConfig config_;
  int32_t lcm_page_size_ = 1;
  std::unique_ptr<PagePool> pool_;
  std::vector<std::unique_ptr<SingleTypeManager>> groups_;
  std::vector<int32_t> free_slots_;
  uint64_t generation_ = 0;
  PrefixCacheStats stats_;
  std::unique_ptr<State> state_;
};

}  // namespace pagedkv
