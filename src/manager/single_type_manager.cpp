// Per-group page tables and the two attention kinds' policies (full attention, sliding window).
#include "pagedkv/manager/single_type_manager.h"

#include <algorithm>

#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

// Every page is cached and reusable for any prefix: the hit is the run of cached pages from the
// left, and a hit of L tokens contains every shorter hit.
class FullAttentionManager final : public SingleTypeManager {
 public:
  FullAttentionManager(const KVCacheGroupSpec& spec, GroupId group, PagePool& pool)
      : SingleTypeManager(spec, group, pool) {}

  int32_t find_longest_cache_hit(std::span<const PageHash> hashes, int32_t max_length,
                                 std::vector<PageId>& out) const override {
    const int32_t max_pages = max_length / spec_.page_size;
    PAGEDKV_DCHECK(static_cast<size_t>(max_pages) <= hashes.size(), "{} pages > {} hashes",
                   max_pages, hashes.size());
    // One pool call for the whole run: the index overlaps the lookups of consecutive hashes.
    return pool_->get_cached_prefix(hashes.first(static_cast<size_t>(max_pages)), group_, out);
  }

  bool hit_is_downward_closed() const override { return true; }
  int32_t num_skipped_tokens(int32_t) const override { return 0; }

  int32_t num_common_prefix_pages(int32_t slot, int32_t num_running_requests) const override {
    int32_t n = 0;
    for (PageId page : slots_[slot].pages) {
      if (pool_->ref_count(page) != num_running_requests) break;
      ++n;
    }
    return n;
  }
};

// A token reads only the last `w` tokens, so a hit needs only the pages covering the w - 1
// tokens before its end; anything further left may be missing (null).
class SlidingWindowManager final : public SingleTypeManager {
 public:
  SlidingWindowManager(const KVCacheGroupSpec& spec, GroupId group, PagePool& pool)
      : SingleTypeManager(spec, group, pool),
        contiguous_needed_(cdiv(spec.sliding_window - 1, spec.page_size)) {}

  int32_t find_longest_cache_hit(std::span<const PageHash> hashes, int32_t max_length,
                                 std::vector<PageId>& out) const override {
    const int32_t max_pages = max_length / spec_.page_size;
    PAGEDKV_DCHECK(static_cast<size_t>(max_pages) <= hashes.size(), "{} pages > {} hashes",
                   max_pages, hashes.size());
    const size_t base = out.size();
    out.resize(base + static_cast<size_t>(max_pages), kNullPageId);
    if (contiguous_needed_ == 0) return max_pages;  // a window of 1 token reads no earlier page
    // Scan from the right: the first run of contiguous_needed_ cached pages ends the longest
    // hit. Entries right of the current run are cut off by the final resize.
    int32_t run = 0;
    for (int32_t i = max_pages - 1; i >= 0; --i) {
      const std::optional<PageId> page = pool_->get_cached_page(hashes[i], group_);
      if (!page) {
        run = 0;
        continue;
      }
      out[base + static_cast<size_t>(i)] = *page;
      if (++run >= contiguous_needed_) {
        out.resize(base + static_cast<size_t>(i + run));
        return i + run;
      }
    }
    // No full run: the run starting at page 0 (shorter than the window) is still a hit.
    out.resize(base + static_cast<size_t>(run));
    return run;
  }

  bool hit_is_downward_closed() const override { return false; }

  int32_t num_skipped_tokens(int32_t num_computed_tokens) const override {
    return std::max(0, num_computed_tokens - spec_.sliding_window + 1);
  }

  int32_t num_common_prefix_pages(int32_t, int32_t) const override { return 0; }

 private:
  int32_t contiguous_needed_;
};

}  // namespace

std::unique_ptr<SingleTypeManager> SingleTypeManager::create(const KVCacheGroupSpec& spec,
                                                             GroupId group, PagePool& pool) {
  spec.validate(group);
  switch (spec.kind) {
    case AttentionKind::kFullAttention:
      return std::make_unique<FullAttentionManager>(spec, group, pool);
    case AttentionKind::kSlidingWindow:
      return std::make_unique<SlidingWindowManager>(spec, group, pool);
  }
  PAGEDKV_CHECK_ARG(false, "group {}: unknown attention kind", group);
  return nullptr;
}

SingleTypeManager::SingleTypeManager(const KVCacheGroupSpec& spec, GroupId group, PagePool& pool)
    : spec_(spec), group_(group), pool_(&pool) {}

void SingleTypeManager::resize_slots(int32_t num_slots) {
  if (num_slots > this->num_slots()) slots_.resize(static_cast<size_t>(num_slots));
}

void SingleTypeManager::plan(int32_t slot, const GroupDemand& demand,
                             std::span<const PageId> new_computed, GroupPlan& p) const {
  static const Slot kEmpty;
  const Slot& s = slot < 0 ? kEmpty : slots_[slot];
  const int32_t ps = spec_.page_size;
  const int32_t held = static_cast<int32_t>(s.pages.size());
  const int32_t num_hits = static_cast<int32_t>(new_computed.size());

  // Pages wholly outside the window become null; those only this request holds are freed
  // (rule 23). Right to left, so the page nearest the window stays cached longest. Full
  // attention skips nothing (num_skipped_tokens is 0), so it does not ask.
  p.dropped_pages.clear();
  p.num_pages_freed_by_skip = 0;
  p.num_skipped_pages = s.num_null;
  if (spec_.kind == AttentionKind::kSlidingWindow) {
    const int32_t skipped = std::min(held, num_skipped_tokens(demand.num_computed_tokens) / ps);
    p.num_skipped_pages = std::max(s.num_null, skipped);
    for (int32_t i = p.num_skipped_pages - 1; i >= s.num_null; --i) {
      p.dropped_pages.push_back(s.pages[i]);
      if (pool_->ref_count_unchecked(s.pages[i]) == 1) ++p.num_pages_freed_by_skip;
    }
  }

  // A hit page with ref count 0 sits in the free queue: touching it takes it out (rule 18).
  // Ids were range-checked by the caller.
  p.hit_pages.assign(new_computed.begin(), new_computed.end());
  p.num_evictable_hits = 0;
  int32_t non_null_hits = 0;
  for (PageId page : new_computed) {
    if (page == kNullPageId) continue;
    ++non_null_hits;
    if (pool_->ref_count_unchecked(page) == 0) ++p.num_evictable_hits;
  }

  // cdiv(need, ps) - held - hits pages, or none. A decode step mostly fits in the pages held:
  // the comparison saves the division then.
  const int64_t covered = int64_t{held + num_hits} * ps;
  p.num_new_pages = demand.num_tokens_need_slot <= covered
                        ? 0
                        : cdiv(demand.num_tokens_need_slot, ps) - held - num_hits;
  p.num_pages_held_after = (held - p.num_skipped_pages) + non_null_hits + p.num_new_pages;

  // Hit pages are cached already; the full pages after them (or after the pages cached by
  // earlier steps) are cached now, even before their K/V is computed (rule 19). Nothing is
  // unless a page past cache_begin is full (again no division in the common case).
  const int32_t size_after = held + num_hits + p.num_new_pages;
  p.cache_begin = num_hits > 0 ? num_hits : s.num_cached;
  p.cache_end = p.cache_begin;
  if (demand.num_tokens_to_cache >= int64_t{p.cache_begin + 1} * ps) {
    p.cache_end = std::max(p.cache_begin, std::min(demand.num_tokens_to_cache / ps, size_after));
  }
}

GroupPlan SingleTypeManager::plan(int32_t slot, const GroupDemand& demand,
                                  std::span<const PageId> new_computed) const {
  GroupPlan p;
  plan(slot, demand, new_computed, p);
  return p;
}

void SingleTypeManager::drop_pages(int32_t slot, const GroupPlan& plan) {
  if (plan.dropped_pages.empty()) return;
  Slot& s = slots_[slot];
  PAGEDKV_ASSERT(s.num_null + std::ssize(plan.dropped_pages) == plan.num_skipped_pages &&
                     plan.num_skipped_pages <= std::ssize(s.pages),
                 "group {} slot {}: a plan dropping {} pages after {} null ones does not fit "
                 "its {} pages",
                 group_, slot, plan.dropped_pages.size(), s.num_null, s.pages.size());
  pool_->free_pages(plan.dropped_pages);
  std::fill(s.pages.begin() + s.num_null, s.pages.begin() + plan.num_skipped_pages, kNullPageId);
  s.num_null = plan.num_skipped_pages;
}

void SingleTypeManager::touch_hits(int32_t slot, const GroupPlan& plan) {
  if (plan.hit_pages.empty()) return;
  Slot& s = slots_[slot];
  PAGEDKV_ASSERT(s.pages.empty(), "hit pages for group {} of a slot holding {} pages", group_,
                 s.pages.size());
  pool_->touch(plan.hit_pages);
  s.pages.assign(plan.hit_pages.begin(), plan.hit_pages.end());
  s.num_cached = static_cast<int32_t>(s.pages.size());
  s.num_null = static_cast<int32_t>(
      std::find_if(s.pages.begin(), s.pages.end(), [](PageId p) { return p != kNullPageId; }) -
      s.pages.begin());
}

void SingleTypeManager::take_new_pages(int32_t slot, const GroupPlan& plan,
                                       std::vector<PageId>& new_pages) {
  if (plan.num_new_pages == 0) return;
  Slot& s = slots_[slot];
  const size_t before = s.pages.size();
  pool_->get_new_pages(plan.num_new_pages, s.pages);
  new_pages.insert(new_pages.end(), s.pages.begin() + static_cast<ptrdiff_t>(before),
                   s.pages.end());
}

void SingleTypeManager::cache_full_pages(int32_t slot, const GroupPlan& plan,
                                         const Request& request) {
  if (plan.cache_end <= plan.cache_begin) return;
  Slot& s = slots_[slot];
  PAGEDKV_ASSERT(plan.cache_begin == s.num_cached,
                 "group {} slot {}: the plan caches from page {} but {} pages are cached", group_,
                 slot, plan.cache_begin, s.num_cached);
  const PageChainView chain{.page_hashes = request.page_hashes(spec_.page_size),
                            .token_ids = request.all_token_ids(),
                            .page_size = spec_.page_size,
                            .lora_id = request.options().lora_id,
                            .hash_algorithm = request.hasher().algorithm()};
  pool_->cache_full_pages(chain, s.pages, plan.cache_begin, plan.cache_end, group_);
  s.num_cached = plan.cache_end;
}

void SingleTypeManager::append_reversed_pages(int32_t slot, std::vector<PageId>& out) const {
  const std::vector<PageId>& pages = slots_[slot].pages;
  // The leading null pages are never freed; skip them.
  const auto first = pages.begin() + slots_[slot].num_null;
  out.insert(out.end(), std::make_reverse_iterator(pages.end()), std::make_reverse_iterator(first));
}

void SingleTypeManager::clear_slot(int32_t slot) {
  Slot& s = slots_[slot];
  s.pages.clear();
  s.num_cached = 0;
  s.num_null = 0;
}

void SingleTypeManager::verify_slot(int32_t slot, std::vector<int32_t>& holders) const {
  PAGEDKV_ASSERT(slot >= 0 && slot < num_slots(), "slot {} outside [0, {})", slot, num_slots());
  const Slot& s = slots_[slot];
  const int32_t size = static_cast<int32_t>(s.pages.size());
  const int32_t num_pages = pool_->num_pages();
  PAGEDKV_ASSERT(0 <= s.num_cached && s.num_cached <= size,
                 "group {} slot {}: {} cached pages of {}", group_, slot, s.num_cached, size);
  PAGEDKV_ASSERT(0 <= s.num_null && s.num_null <= size, "group {} slot {}: {} null pages of {}",
                 group_, slot, s.num_null, size);
  PAGEDKV_ASSERT(spec_.kind == AttentionKind::kSlidingWindow || s.num_null == 0,
                 "full-attention group {} slot {} holds {} null pages", group_, slot, s.num_null);
  const bool caching = pool_->enable_caching();
  for (int32_t i = 0; i < size; ++i) {
    const PageId page = s.pages[i];
    if (i < s.num_null) {
      PAGEDKV_ASSERT(page == kNullPageId, "group {} slot {}: page {} at {} inside the null prefix",
                     group_, slot, page, i);
      continue;
    }
    PAGEDKV_ASSERT(page > kNullPageId && page < num_pages,
                   "group {} slot {}: page id {} at {} outside [1, {})", group_, slot, page, i,
                   num_pages);
    if (caching) {
      const bool hashed = pool_->page_hash(page).has_value();
      PAGEDKV_ASSERT(hashed == (i < s.num_cached),
                     "group {} slot {}: page {} at {} is {}hashed but {} cached pages", group_,
                     slot, page, i, hashed ? "" : "not ", s.num_cached);
    }
    ++holders[static_cast<size_t>(page)];
  }
}

}  // namespace pagedkv
