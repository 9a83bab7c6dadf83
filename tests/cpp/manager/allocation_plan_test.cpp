// KVCacheManager::plan_allocation and apply: a plan changes nothing, reports the numbers a
// scheduler decides on, and apply(plan) is exactly allocate_slots; stale, failed or foreign
// plans are refused without changing anything.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <random>
#include <string>
#include <tuple>

#include <fmt/format.h>

#include "manager/manager_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv {
namespace {

using manager_testing::admit;
using manager_testing::decode_step;
using manager_testing::iota_tokens;
using manager_testing::prompt;
using manager_testing::snapshot;

// The message of the StateError `call` throws (fails the test if it throws none).
template <typename Fn>
std::string state_error_of(Fn&& call) {
  try {
    call();
  } catch (const StateError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a StateError";
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- Slot hints ----

TEST(AllocationPlan, SlotHintThatIsNotTheRequestsIsIgnored) {
  KVCacheManager m(16, 4, 64);
  Request a("a", iota_tokens(8));
  Request b("b", iota_tokens(8, 100));
  ASSERT_EQ(admit(m, a), 0);
  ASSERT_EQ(admit(m, b), 0);
  const int32_t slot_a = m.slot_of("a");
  const int32_t slot_b = m.slot_of("b");
  ASSERT_GE(slot_a, 0);
  ASSERT_GE(slot_b, 0);
  ASSERT_NE(slot_a, slot_b);
  EXPECT_EQ(m.slot_of("unknown"), -1);
  const GroupPages pages_a = m.get_page_ids("a");
  // b decodes one token per hint (a new page at tokens 9 and 13): whatever the hint, the
  // pages are b's and a's list does not change.
  int32_t page_count = 2;
  for (int32_t hint : {slot_a, slot_b, -1, -7, 99}) {
    const TokenId t[1] = {1};
    b.append_output_token_ids(t);
    const int32_t n = b.num_tokens() - b.num_computed_tokens();
    ASSERT_TRUE(m.allocate_slots(b, {.num_new_tokens = n, .slot_hint = hint}));
    b.set_num_computed_tokens(b.num_tokens());
    page_count = cdiv(b.num_tokens(), 4);
    EXPECT_EQ(m.get_page_ids("b")[0].size(), static_cast<size_t>(page_count)) << hint;
    EXPECT_EQ(m.get_page_ids("a"), pages_a) << hint;
    m.verify();
  }
  EXPECT_EQ(page_count, 4);
  m.free(a);
  EXPECT_EQ(m.slot_of("a"), -1);
  // A's freed slot, reused by c, is c's hint now and no longer a's.
  Request c("c", iota_tokens(4, 200));
  ASSERT_EQ(admit(m, c), 0);
  EXPECT_EQ(m.slot_of("c"), slot_a);
  m.verify();
}

// ---- The decode fast path ----

// SingleTypeManager::plan_unchanged, where it applies, makes exactly plan()'s plan; it applies
// to full attention only, and not when a page is needed or fills.
TEST(AllocationPlan, DecodeFastPathPlansWhatPlanDoes) {
  auto fields = [](const GroupPlan& p) {
    return std::tuple(p.hit_pages, p.num_evictable_hits, p.num_new_pages, p.dropped_pages,
                      p.num_pages_freed_by_skip, p.num_skipped_pages, p.num_pages_held_after,
                      p.cache_begin, p.cache_end);
  };
  for (const KVCacheGroupSpec& spec :
       {KVCacheGroupSpec::full_attention(4), KVCacheGroupSpec::sliding_window_attention(4, 6)}) {
    KVCacheConfig config = KVCacheConfig::single_group(16, 4, 64);
    config.groups = {spec};
    KVCacheManager m(config);
    Request a("a", iota_tokens(10));
    ASSERT_EQ(admit(m, a), 0);  // 3 pages, 2 of them full and cached
    const SingleTypeManager& group = m.group_manager(0);
    const int32_t slot = m.slot_of("a");
    int num_fast = 0, num_slow = 0;
    for (int32_t computed = 0; computed <= 12; ++computed) {
      for (int32_t need = computed; need <= 17; ++need) {
        for (int32_t cache = 0; cache <= need; ++cache) {
          const GroupDemand demand{.num_computed_tokens = computed,
                                   .num_tokens_need_slot = need,
                                   .num_tokens_to_cache = cache};
          GroupPlan fast;
          fast.num_new_pages = -1;  // must stay untouched when the fast path does not apply
          if (!group.plan_unchanged(slot, demand, fast)) {
            EXPECT_EQ(fast.num_new_pages, -1);
            ++num_slow;
            continue;
          }
          ++num_fast;
          EXPECT_EQ(fields(fast), fields(group.plan(slot, demand, {})))
              << computed << " " << need << " " << cache;
        }
      }
    }
    if (spec.kind == AttentionKind::kFullAttention) {
      EXPECT_GT(num_fast, 0);
      EXPECT_GT(num_slow, 0);
    } else {
      EXPECT_EQ(num_fast, 0);
    }
  }
}

// ---- A plan is pure ----

TEST(AllocationPlan, PlanChangesNothing) {
  KVCacheConfig config = KVCacheConfig::single_group(8, 4, 64);
  config.enable_kv_events = true;
  KVCacheManager m(config);
  Request a("a", iota_tokens(10));
  ASSERT_EQ(admit(m, a), 0);  // holds 3 pages, 2 cached
  Request gone("gone", prompt(0, 9, 900));
  ASSERT_EQ(admit(m, gone), 0);
  m.free(gone);  // 2 cached pages back on the queue
  m.take_events();
  const std::vector<std::string> ids = {"a", "gone", "b", "big"};
  const auto before = snapshot(m, ids);
  const uint64_t generation = m.generation();

  Request b("b", iota_tokens(12));
  ComputedPages hit = m.get_computed_pages(b);
  ASSERT_EQ(hit.num_computed_tokens, 8);
  auto after_lookup = snapshot(m, ids);
  after_lookup.stats = before.stats;  // the lookup moved only the statistics
  ASSERT_EQ(after_lookup, before);
  const auto planned = snapshot(m, ids);
  const AllocationPlan ok = m.plan_allocation(
      b, {.num_new_tokens = 4, .num_new_computed_tokens = 8, .new_computed_pages = &hit.pages});
  EXPECT_TRUE(ok.ok());
  const AllocationPlan decode = m.plan_allocation(a, {.num_new_tokens = 2});
  EXPECT_TRUE(decode.ok());
  Request big("big", prompt(0, 40, 5000));
  const AllocationPlan short_of_pages = m.plan_allocation(big, {.num_new_tokens = 28});
  EXPECT_EQ(short_of_pages.status, AllocationStatus::kNotEnoughFreePages);

  EXPECT_EQ(snapshot(m, ids), planned);
  EXPECT_EQ(m.generation(), generation);
  EXPECT_TRUE(m.take_events().empty());
  EXPECT_FALSE(m.has_request("b"));
  m.verify();
}

TEST(AllocationPlan, PlanReportsTheCountsOfRule18) {
  // 6 usable pages. A's 3 pages are cached and free; C holds 3 others.
  KVCacheManager m(7, 16, 1024);
  Request a("a", iota_tokens(48));
  ASSERT_EQ(admit(m, a), 0);
  m.free(a);
  Request c("c", prompt(0, 48, 5000));
  ASSERT_EQ(admit(m, c), 0);
  // B hits A's 3 free pages and needs 1 more: 4 free pages needed, 3 free.
  Request b("b", iota_tokens(64));
  ComputedPages hit = m.get_computed_pages(b);
  ASSERT_EQ(hit.num_computed_tokens, 48);
  const AllocationRequest alloc{
      .num_new_tokens = 16, .num_new_computed_tokens = 48, .new_computed_pages = &hit.pages};
  AllocationPlan plan = m.plan_allocation(b, alloc);
  EXPECT_EQ(plan.status, AllocationStatus::kNotEnoughFreePages);
  EXPECT_EQ(allocation_status_name(plan.status), "not_enough_free_pages");
  EXPECT_EQ(plan.request_id(), "b");
  EXPECT_EQ(plan.num_free_pages_needed, 4);
  EXPECT_EQ(plan.num_evictable_hit_pages, 3);
  EXPECT_EQ(plan.num_free_pages_available, 3);
  EXPECT_EQ(plan.num_pages_held_after, 4);
  EXPECT_EQ(plan.num_tokens_need_slot, 64);
  EXPECT_EQ(plan.num_tokens_to_cache, 64);
  ASSERT_EQ(plan.groups.size(), 1u);
  const GroupPlan& g = plan.groups[0];
  EXPECT_EQ(g.hit_pages, (std::vector<PageId>{1, 2, 3}));
  EXPECT_EQ(g.num_evictable_hits, 3);
  EXPECT_EQ(g.num_new_pages, 1);
  EXPECT_TRUE(g.dropped_pages.empty());
  EXPECT_EQ(g.cache_begin, 3);  // the hit pages are cached already
  EXPECT_EQ(g.cache_end, 4);
  // With C gone there is room: the same plan, now ok, carried out.
  m.free(c);
  plan = m.plan_allocation(b, alloc);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan.num_free_pages_available, 6);
  // C's pages went to the tail as [6, 5, 4]; the hits leave the queue first.
  EXPECT_EQ(m.apply(plan), (GroupPages{{6}}));
  EXPECT_EQ(m.get_page_ids("b"), (GroupPages{{1, 2, 3, 6}}));
  EXPECT_TRUE(m.page_pool().page_hash(6).has_value());
  m.verify();
}

TEST(AllocationPlan, PlanListsThePagesTheWindowDrops) {
  KVCacheConfig config;
  config.num_pages = 8;  // 7 usable
  config.max_model_len = 4096;
  config.groups = {KVCacheGroupSpec::sliding_window_attention(16, 32)};
  KVCacheManager m(config);
  Request r("r", iota_tokens(100));
  ASSERT_EQ(admit(m, r), 0);                         // pages 1..7, none free
  r.append_output_token_ids(iota_tokens(13, 5000));  // 113 tokens: one more page
  const AllocationPlan plan = m.plan_allocation(r, {.num_new_tokens = 13});
  ASSERT_TRUE(plan.ok());
  const GroupPlan& g = plan.groups[0];
  // 100 computed: tokens before 69 are out of the window; pages 0..3 lie wholly before it.
  EXPECT_EQ(g.dropped_pages, (std::vector<PageId>{4, 3, 2, 1}));  // right to left
  EXPECT_EQ(g.num_pages_freed_by_skip, 4);
  EXPECT_EQ(g.num_skipped_pages, 4);
  EXPECT_EQ(g.num_new_pages, 1);
  EXPECT_EQ(plan.num_free_pages_needed, 1);
  EXPECT_EQ(plan.num_free_pages_available, 4);  // 0 free + 4 dropped
  EXPECT_EQ(plan.num_pages_held_after, 4);
  EXPECT_EQ(g.cache_begin, 6);  // 100 tokens: 6 full pages cached at admission
  EXPECT_EQ(g.cache_end, 7);    // 113 tokens: page 6 fills
  EXPECT_EQ(m.page_pool().get_num_free_pages(), 0);
  EXPECT_EQ(m.apply(plan), (GroupPages{{4}}));
  EXPECT_EQ(m.get_page_ids("r")[0], (std::vector<PageId>{0, 0, 0, 0, 5, 6, 7, 4}));
  m.verify();
}

TEST(AllocationPlan, WholeSequenceAndChunkPlansGiveTheAdmissionChecks) {
  // Rule 39: admission needs the whole sequence and the chunk to fit, hit pages that are free
  // counting against the free pages. 10 usable pages; "old" left 2 cached pages on the queue;
  // "other" holds 4, so 6 are free.
  KVCacheManager m(11, 16, 4096);
  Request old("old", iota_tokens(40));
  ASSERT_EQ(admit(m, old), 0);
  m.free(old);
  Request other("other", prompt(0, 64, 9000));
  ASSERT_EQ(admit(m, other), 0);
  ASSERT_EQ(m.page_pool().get_num_free_pages(), 6);
  Request r("r", prompt(32, 96, 7000));  // 128 tokens = 8 pages; hits old's 2 pages
  ComputedPages hit = m.get_computed_pages(r);
  ASSERT_EQ(hit.num_computed_tokens, 32);
  const AllocationPlan whole = m.plan_allocation(
      r, {.num_new_tokens = 96, .num_new_computed_tokens = 32, .new_computed_pages = &hit.pages});
  const AllocationPlan chunk = m.plan_allocation(
      r, {.num_new_tokens = 32, .num_new_computed_tokens = 32, .new_computed_pages = &hit.pages});
  // Whole: 8 - 2 hit pages = 6 new, plus 2 free hit pages = 8 > 6 free.
  EXPECT_FALSE(whole.ok());
  EXPECT_EQ(whole.num_free_pages_needed, 8);
  EXPECT_EQ(whole.num_evictable_hit_pages, 2);
  EXPECT_EQ(whole.num_free_pages_available, 6);
  // The chunk alone fits (2 new + 2 hit pages), but the scheduler does not admit r.
  EXPECT_TRUE(chunk.ok());
  EXPECT_EQ(chunk.num_free_pages_needed, 4);
  m.verify();
}

// ---- Refused plans change nothing ----

class RefusedPlans : public ::testing::Test {
 protected:
  RefusedPlans() : m(16, 4, 64), a("a", iota_tokens(10)), b("b", prompt(8, 5, 700)) {
    EXPECT_EQ(admit(m, a), 0);
    m.verify();
  }

  // apply(plan) must throw StateError naming `part` and change nothing.
  void expect_refused(const AllocationPlan& plan, const std::string& part) {
    const auto before = snapshot(m, ids);
    const uint64_t generation = m.generation();
    const std::string msg = state_error_of([&] { m.apply(plan); });
    EXPECT_TRUE(contains(msg, part)) << msg;
    EXPECT_EQ(snapshot(m, ids), before);
    EXPECT_EQ(m.generation(), generation);
    m.verify();
  }

  // plan_allocation(r, alloc) must throw E, and the plan it was given (ok before) must no
  // longer be appliable.
  template <typename E>
  void expect_plan_throws(const Request& r, const AllocationRequest& alloc) {
    AllocationPlan plan = m.plan_allocation(a, {.num_new_tokens = 1});
    ASSERT_TRUE(plan.ok());
    EXPECT_THROW(m.plan_allocation(r, alloc, plan), E);
    expect_refused(plan, "not made by this manager");
  }

  KVCacheManager m;
  Request a, b;
  std::vector<std::string> ids = {"a", "b"};
};

TEST_F(RefusedPlans, StalePlanIsRefused) {
  const AllocationPlan plan = m.plan_allocation(b, {.num_new_tokens = 13});
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(decode_step(m, a, 1));  // another allocation changes pages
  expect_refused(plan, "stale");
  const AllocationPlan after_free = m.plan_allocation(b, {.num_new_tokens = 13});
  m.free(a);
  expect_refused(after_free, "stale");
  const AllocationPlan after_reset = m.plan_allocation(b, {.num_new_tokens = 13});
  ASSERT_TRUE(m.reset_prefix_cache());
  expect_refused(after_reset, "stale");
}

TEST_F(RefusedPlans, StaleMessageNamesBothGenerations) {
  const AllocationPlan plan = m.plan_allocation(b, {.num_new_tokens = 13});
  const uint64_t made_at = m.generation();
  m.free(a);
  expect_refused(plan, fmt::format("made at generation {}, the manager is at generation {}",
                                   made_at, made_at + 1));
}

TEST_F(RefusedPlans, PlanIsAppliedAtMostOnce) {
  const AllocationPlan plan = m.plan_allocation(b, {.num_new_tokens = 13});
  EXPECT_EQ(m.apply(plan)[0].size(), 4u);
  expect_refused(plan, "stale");
}

TEST_F(RefusedPlans, PlanThatIsNotOkIsRefused) {
  Request big("big", prompt(0, 52, 3000));  // 13 pages, 12 free
  const AllocationPlan plan = m.plan_allocation(big, {.num_new_tokens = 52});
  ASSERT_EQ(plan.status, AllocationStatus::kNotEnoughFreePages);
  expect_refused(plan, "not_enough_free_pages: it needs 13 free pages, 12 are available");
  EXPECT_FALSE(m.has_request("big"));
}

TEST_F(RefusedPlans, PlanOfAnotherManagerOrOfNoManagerIsRefused) {
  KVCacheManager twin(16, 4, 64);
  const AllocationPlan foreign = twin.plan_allocation(b, {.num_new_tokens = 13});
  ASSERT_TRUE(foreign.ok());
  expect_refused(foreign, "not made by this manager");
  expect_refused(AllocationPlan{}, "not made by this manager");
  EXPECT_EQ(AllocationPlan{}.request_id(), "");
}

TEST_F(RefusedPlans, PlanOfARequestThatChangedIsRefused) {
  AllocationPlan plan = m.plan_allocation(a, {.num_new_tokens = 1});
  a.append_output_token_ids(std::vector<TokenId>{7});
  expect_refused(plan,
                 "request 'a' changed since it was planned: 10 tokens (10 computed) then, "
                 "11 (10) now");
  plan = m.plan_allocation(a, {.num_new_tokens = 1});
  a.set_num_computed_tokens(11);
  expect_refused(plan, "changed since it was planned");
}

TEST_F(RefusedPlans, CallsThatChangeNoPageKeepAPlanValid) {
  const AllocationPlan plan = m.plan_allocation(b, {.num_new_tokens = 13});
  (void)m.get_computed_pages(b);  // statistics only
  (void)m.plan_allocation(a, {.num_new_tokens = 1});
  (void)m.take_events();
  m.reset_prefix_cache_stats();
  EXPECT_FALSE(m.reset_prefix_cache());  // refused: pages are held, nothing changes
  m.free(std::string("nobody"));         // unknown: nothing changes
  EXPECT_EQ(m.apply(plan)[0].size(), 4u);
  m.verify();
}

TEST_F(RefusedPlans, PlanThrowsWhatAllocateSlotsThrowsAndLeavesNoPlanToApply) {
  RequestOptions opts;
  opts.hash_algorithm = HashAlgorithm::kSha256;
  Request sha("sha", iota_tokens(8), opts);
  const auto before = snapshot(m, ids);
  expect_plan_throws<InvalidArgument>(b, {.num_new_tokens = -1});
  expect_plan_throws<InvalidArgument>(sha, {.num_new_tokens = 8});
  expect_plan_throws<CapacityError>(b, {.num_new_tokens = 61});  // 16 pages > 15
  b.set_num_computed_tokens(4);                                  // b holds nothing
  expect_plan_throws<StateError>(b, {.num_new_tokens = 1});
  EXPECT_EQ(snapshot(m, ids), before);
  m.verify();
}

// ---- apply(plan) == allocate_slots, over random workloads ----

KVCacheConfig twin_config(int32_t num_pages, std::vector<KVCacheGroupSpec> groups,
                          int32_t spec_tokens = 0) {
  KVCacheConfig c;
  c.num_pages = num_pages;
  c.max_model_len = 160;
  c.groups = std::move(groups);
  c.enable_kv_events = true;
  c.num_speculative_tokens = spec_tokens;
  return c;
}

// Two managers driven by the same scheduler-like workload: `planned_` allocates through
// plan_allocation + apply (with pure calls and refused applies in between), `direct_` through
// allocate_slots. Every result and the whole observable state must stay equal.
class TwinDriver {
 public:
  TwinDriver(const KVCacheConfig& config, uint32_t seed)
      : planned_(config), direct_(config), config_(config), rng_(seed) {}

  void run(int num_ops) {
    for (int op = 0; op < num_ops; ++op) {
      const int r = pick(100);
      if (r < 15 && reqs_.size() < 10) {
        new_request();
      } else if (r < 40) {
        schedule();
      } else if (r < 82) {
        step();
      } else if (r < 90) {
        release(/*preempt=*/false);
      } else if (r < 97) {
        release(/*preempt=*/true);
      } else {
        ASSERT_EQ(planned_.reset_prefix_cache(), direct_.reset_prefix_cache());
      }
      compare();
      if (::testing::Test::HasFailure()) return;
    }
    // The run reached the interesting states.
    EXPECT_GT(num_applied_, num_ops / 5);
    EXPECT_GT(num_refused_, 0);
    EXPECT_GT(num_hit_pages_, 0);
    EXPECT_GT(num_evictable_hits_, 0);
    EXPECT_GT(num_lookahead_, 0);
    const bool sliding = std::any_of(config_.groups.begin(), config_.groups.end(), [](auto& g) {
      return g.kind == AttentionKind::kSlidingWindow;
    });
    if (sliding) {
      EXPECT_GT(num_dropped_, 0);
    }
  }

 private:
  struct Entry {
    Request req;
    bool running = false;
    bool preempted = false;
  };

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void new_request() {
    static const std::vector<std::vector<TokenId>> pieces = {
        {1, 2, 3, 4, 5},
        {6, 7, 8, 9, 10, 11, 12, 13},
        {20, 21, 22},
        {30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42},
        iota_tokens(16, 50)};
    std::vector<TokenId> t;
    for (int i = 1 + pick(4); i > 0; --i) {
      const auto& p = pieces[static_cast<size_t>(pick(static_cast<int>(pieces.size())))];
      t.insert(t.end(), p.begin(), p.end());
    }
    for (int i = pick(6); i > 0; --i) t.push_back(100 + pick(3));
    t.resize(std::min<size_t>(t.size(), 120));
    reqs_.push_back(
        std::make_unique<Entry>(Entry{Request(fmt::format("r{}", next_id_++), std::move(t))}));
  }

  Entry* pick_where(bool running) {
    std::vector<Entry*> c;
    for (auto& e : reqs_) {
      if (e->running == running) c.push_back(e.get());
    }
    return c.empty() ? nullptr : c[static_cast<size_t>(pick(static_cast<int>(c.size())))];
  }

  int32_t chunk_of(int32_t rest) {
    static const int32_t chunks[] = {0, 0, 0, 3, 7, 16};
    const int32_t c = chunks[pick(6)];
    return c == 0 ? rest : std::min(rest, c);
  }

  // A plan of another request, made and dropped: it must change nothing (compare() checks).
  void plan_something_else() {
    if (reqs_.empty()) return;
    const Entry& e = *reqs_[static_cast<size_t>(pick(static_cast<int>(reqs_.size())))];
    try {
      (void)planned_.plan_allocation(e.req,
                                     {.num_new_tokens = pick(20), .num_lookahead_tokens = pick(3)});
    } catch (const Error&) {
      // A plan for a request in the wrong state: refused like allocate_slots would be.
    }
  }

  // One allocation on both twins; true when it succeeded.
  bool allocate(Entry& e, const ComputedPages* hit_p, const ComputedPages* hit_d, int32_t num_new,
                int32_t lookahead) {
    plan_something_else();
    const int32_t hit_tokens = hit_p ? hit_p->num_computed_tokens : 0;
    // The planned twin gets a slot hint that is right, absent, or any slot (another request's,
    // a free one, out of range); the direct twin none: hints must not change anything.
    const std::array hints = {planned_.slot_of(e.req.request_id()), -1, pick(10) - 2};
    const int32_t hint = hints[static_cast<size_t>(pick(3))];
    const AllocationRequest ap{.num_new_tokens = num_new,
                               .num_new_computed_tokens = hit_tokens,
                               .new_computed_pages = hit_p ? &hit_p->pages : nullptr,
                               .num_lookahead_tokens = lookahead,
                               .slot_hint = hint};
    AllocationRequest ad = ap;
    ad.new_computed_pages = hit_d ? &hit_d->pages : nullptr;
    ad.slot_hint = -1;
    std::optional<AllocationPlan> plan;
    std::optional<GroupPages> got;
    bool planned_threw = false, direct_threw = false;
    try {
      plan = planned_.plan_allocation(e.req, ap);
    } catch (const CapacityError&) {
      planned_threw = true;
    }
    try {
      got = direct_.allocate_slots(e.req, ad);
    } catch (const CapacityError&) {
      direct_threw = true;
    }
    EXPECT_EQ(planned_threw, direct_threw);
    if (planned_threw || direct_threw) {
      ++num_refused_;
      return false;
    }
    EXPECT_EQ(plan->ok(), got.has_value());
    for (const GroupPlan& g : plan->groups) {
      num_dropped_ += std::ssize(g.dropped_pages);
      num_hit_pages_ += std::ssize(g.hit_pages);
      num_evictable_hits_ += g.num_evictable_hits;
    }
    if (!plan->ok()) {
      ++num_refused_;
      EXPECT_THROW(planned_.apply(*plan), StateError);
      return false;
    }
    EXPECT_EQ(planned_.apply(*plan), *got);
    EXPECT_THROW(planned_.apply(*plan), StateError);  // applied once, now stale
    ++num_applied_;
    num_lookahead_ += lookahead;
    return true;
  }

  void schedule() {
    Entry* e = pick_where(false);
    if (e == nullptr) return;
    const ComputedPages hit_p = planned_.get_computed_pages(e->req, e->preempted);
    const ComputedPages hit_d = direct_.get_computed_pages(e->req, e->preempted);
    ASSERT_EQ(hit_p.pages, hit_d.pages);
    ASSERT_EQ(hit_p.num_computed_tokens, hit_d.num_computed_tokens);
    const int32_t num_new = chunk_of(e->req.num_tokens() - hit_p.num_computed_tokens);
    if (allocate(*e, &hit_p, &hit_d, num_new, pick(4) == 0 ? 3 : 0)) {
      e->req.set_num_computed_tokens(hit_p.num_computed_tokens + num_new);
      e->running = true;
    }
  }

  void step() {
    Entry* e = pick_where(true);
    if (e == nullptr) return;
    const int32_t computed = e->req.num_computed_tokens();
    if (computed == e->req.num_tokens()) {
      if (e->req.num_tokens() >= config_.max_model_len) return;
      const TokenId t[1] = {100 + pick(3)};
      e->req.append_output_token_ids(t);
    }
    const int32_t num_new = chunk_of(e->req.num_tokens() - computed);
    if (allocate(*e, nullptr, nullptr, num_new, pick(4) == 0 ? 2 : 0)) {
      e->req.set_num_computed_tokens(computed + num_new);
    }
  }

  // Finish (the request goes) or preempt (back to waiting, computed reset, resumed lookups).
  void release(bool preempt) {
    Entry* e = pick_where(true);
    if (e == nullptr) return;
    planned_.free(e->req);
    direct_.free(e->req);
    if (preempt) {
      e->req.set_num_computed_tokens(0);
      e->running = false;
      e->preempted = true;
      return;
    }
    reqs_.erase(
        std::find_if(reqs_.begin(), reqs_.end(), [&](const auto& x) { return x.get() == e; }));
  }

  void compare() {
    std::vector<std::string> ids;
    for (const auto& e : reqs_) ids.push_back(e->req.request_id());
    ASSERT_EQ(snapshot(planned_, ids), snapshot(direct_, ids));  // free-queue order included
    ASSERT_EQ(planned_.page_pool().num_evictions(), direct_.page_pool().num_evictions());
    // allocate_slots' decode fast path moves the generation on exactly as apply() does.
    ASSERT_EQ(planned_.generation(), direct_.generation());
    const std::vector<KVEvent> ev_p = planned_.take_events();
    const std::vector<KVEvent> ev_d = direct_.take_events();
    ASSERT_EQ(ev_p.size(), ev_d.size());
    for (size_t i = 0; i < ev_p.size(); ++i) {
      ASSERT_EQ(ev_p[i].kind, ev_d[i].kind);
      ASSERT_EQ(ev_p[i].page_ids, ev_d[i].page_ids);
      ASSERT_EQ(ev_p[i].page_hashes, ev_d[i].page_hashes);
    }
    planned_.verify();
    direct_.verify();
  }

  KVCacheManager planned_;
  KVCacheManager direct_;
  KVCacheConfig config_;
  std::mt19937 rng_;
  std::vector<std::unique_ptr<Entry>> reqs_;
  int next_id_ = 0;
  int num_applied_ = 0;
  int num_refused_ = 0;
  int64_t num_dropped_ = 0, num_hit_pages_ = 0, num_evictable_hits_ = 0, num_lookahead_ = 0;
};

class ApplyMatchesAllocateSlots : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(ApplyMatchesAllocateSlots, OnATwinManagerOverRandomWorkloads) {
  using S = KVCacheGroupSpec;
  const std::vector<KVCacheConfig> configs = {
      twin_config(24, {S::full_attention(4)}),
      twin_config(24, {S::sliding_window_attention(4, 10)}),
      twin_config(48, {S::full_attention(4), S::sliding_window_attention(8, 12)}),
      twin_config(48, {S::full_attention(4), S::sliding_window_attention(4, 9)}, 1),
  };
  const auto [config_index, seed] = GetParam();
  TwinDriver(configs[static_cast<size_t>(config_index)], 1000u + static_cast<uint32_t>(seed))
      .run(3000);
}

INSTANTIATE_TEST_SUITE_P(Configs, ApplyMatchesAllocateSlots,
                         ::testing::Combine(::testing::Range(0, 4), ::testing::Range(0, 2)));

}  // namespace
}  // namespace pagedkv
