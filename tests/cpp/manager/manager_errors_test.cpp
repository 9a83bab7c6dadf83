// Every rejected call of KVCacheManager throws its typed error and leaves the manager as it was.
#include <gtest/gtest.h>

#include <functional>

#include "manager/manager_test_util.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/manager/kv_cache_manager.h"

namespace pagedkv {
namespace {

using manager_testing::admit;
using manager_testing::iota_tokens;
using manager_testing::prompt;
using manager_testing::snapshot;

// A manager with some history: a running request "a" (holding pages, 2 of them cached and
// shared with "b"), a freed request whose pages are cached and free, events off.
class ManagerErrors : public ::testing::Test {
 protected:
  ManagerErrors() : m(32, 4, 64), a("a", iota_tokens(10)), b("b", prompt(8, 5, 700)) {
    EXPECT_EQ(admit(m, a), 0);
    EXPECT_EQ(admit(m, b), 8);
    Request gone("gone", prompt(0, 9, 900));
    EXPECT_EQ(admit(m, gone), 0);
    m.free(gone);
    m.verify();
  }

  // Runs `call`, expects error type E, and checks that nothing observable changed.
  template <typename E>
  void expect_rejected(const std::function<void()>& call) {
    const auto before = snapshot(m, ids);
    EXPECT_THROW(call(), E);
    EXPECT_EQ(snapshot(m, ids), before);
    m.verify();
  }

  // allocate_slots(r, alloc) and plan_allocation(r, alloc) must throw E with the same message
  // and change nothing. Returns the message.
  template <typename E>
  std::string expect_alloc_rejected(const Request& r, const AllocationRequest& alloc) {
    std::string allocate_msg, plan_msg;
    expect_rejected<E>([&] {
      try {
        m.allocate_slots(r, alloc);
      } catch (const E& e) {
        allocate_msg = e.what();
        throw;
      }
    });
    expect_rejected<E>([&] {
      try {
        (void)m.plan_allocation(r, alloc);
      } catch (const E& e) {
        plan_msg = e.what();
        throw;
      }
    });
    EXPECT_EQ(plan_msg, allocate_msg);
    return allocate_msg;
  }

  KVCacheManager m;
  Request a, b;
  std::vector<std::string> ids = {"a", "b", "gone", "new"};
};

TEST_F(ManagerErrors, NegativeCountsAreInvalid) {
  Request r("new", iota_tokens(8));
  expect_rejected<InvalidArgument>([&] { m.allocate_slots(r, -1); });
  EXPECT_EQ(expect_alloc_rejected<InvalidArgument>(
                r, {.num_new_tokens = 4, .num_new_computed_tokens = -4}),
            "num_new_computed_tokens must be >= 0, got -4");
  EXPECT_EQ(
      expect_alloc_rejected<InvalidArgument>(r, {.num_new_tokens = 4, .num_lookahead_tokens = -1}),
      "num_lookahead_tokens must be >= 0, got -1");
}

TEST_F(ManagerErrors, TokensBeyondMaxModelLenAreInvalid) {
  expect_rejected<InvalidArgument>([&] { m.allocate_slots(a, 64 - 10 + 1); });
  Request r("new", iota_tokens(8));
  EXPECT_EQ(expect_alloc_rejected<InvalidArgument>(r, {.num_new_tokens = 65}),
            "request 'new': 0 computed + 0 hit + 65 new tokens exceed max_model_len 64");
}

TEST_F(ManagerErrors, HitBeyondTheRequestsTokensIsInvalid) {
  Request r("new", iota_tokens(8));
  GroupPages none(1);
  const AllocationRequest alloc{
      .num_new_tokens = 1, .num_new_computed_tokens = 9, .new_computed_pages = &none};
  EXPECT_EQ(expect_alloc_rejected<InvalidArgument>(r, alloc),
            "request 'new': 0 computed + 9 hit tokens exceed its 8 tokens");
}

TEST_F(ManagerErrors, WrongGroupCountIsInvalid) {
  Request r("new", iota_tokens(8));
  GroupPages two(2);
  expect_alloc_rejected<InvalidArgument>(r, {.num_new_tokens = 8, .new_computed_pages = &two});
  GroupPages zero;
  expect_alloc_rejected<InvalidArgument>(r, {.num_new_tokens = 8, .new_computed_pages = &zero});
}

TEST_F(ManagerErrors, HitPagesCoveringMoreThanTheHitAreInvalid) {
  Request r("new", iota_tokens(10));
  ComputedPages hit = m.get_computed_pages(r);
  ASSERT_EQ(hit.num_computed_tokens, 8);
  expect_alloc_rejected<InvalidArgument>(
      r, {.num_new_tokens = 6, .num_new_computed_tokens = 4, .new_computed_pages = &hit.pages});
}

TEST_F(ManagerErrors, NullHitPageInFullAttentionIsInvalid) {
  Request r("new", iota_tokens(10));
  GroupPages hits = {{kNullPageId, 1}};
  expect_alloc_rejected<InvalidArgument>(
      r, {.num_new_tokens = 2, .num_new_computed_tokens = 8, .new_computed_pages = &hits});
}

TEST_F(ManagerErrors, HitPageIdOutOfRange) {
  Request r("new", iota_tokens(10));
  GroupPages hits = {{1, 32}};
  const AllocationRequest alloc{
      .num_new_tokens = 2, .num_new_computed_tokens = 8, .new_computed_pages = &hits};
  EXPECT_EQ(expect_alloc_rejected<OutOfRange>(r, alloc), "group 0: hit page id 32 outside [0, 32)");
  hits = {{-3, 1}};
  expect_alloc_rejected<OutOfRange>(r, alloc);
}

TEST_F(ManagerErrors, HitPagesWithCachingOffAreInvalid) {
  KVCacheManager off(16, 4, 64, /*enable_caching=*/false);
  Request r("new", iota_tokens(10));
  GroupPages hits = {{1}};
  const auto before = snapshot(off, {"new"});
  EXPECT_THROW(
      off.allocate_slots(
          r, {.num_new_tokens = 6, .num_new_computed_tokens = 4, .new_computed_pages = &hits}),
      InvalidArgument);
  EXPECT_EQ(snapshot(off, {"new"}), before);
  off.verify();
}

TEST_F(ManagerErrors, HitPagesForARequestHoldingPagesAreAStateError) {
  GroupPages hits = {{1}};
  b.set_num_computed_tokens(0);  // even at 0 computed tokens: it holds pages
  expect_alloc_rejected<StateError>(
      b, {.num_new_tokens = 1, .num_new_computed_tokens = 4, .new_computed_pages = &hits});
}

TEST_F(ManagerErrors, ComputedTokensBeyondHeldPagesAreAStateError) {
  Request r("new", iota_tokens(10));
  r.set_num_computed_tokens(4);  // never allocated
  expect_rejected<StateError>([&] { m.allocate_slots(r, 1); });
}

TEST_F(ManagerErrors, OtherHashAlgorithmIsInvalid) {
  RequestOptions opts;
  opts.hash_algorithm = HashAlgorithm::kSha256;
  Request r("new", iota_tokens(10), opts);
  expect_rejected<InvalidArgument>([&] { m.get_computed_pages(r); });
  expect_rejected<InvalidArgument>([&] { m.allocate_slots(r, 10); });
}

TEST_F(ManagerErrors, RequestThatCanNeverFitIsACapacityError) {
  KVCacheManager small(5, 4, 64);  // 4 usable pages
  Request r("new", iota_tokens(17));
  const auto before = snapshot(small, {"new"});
  EXPECT_THROW(small.allocate_slots(r, 17), CapacityError);
  EXPECT_EQ(snapshot(small, {"new"}), before);
  small.verify();
}

TEST_F(ManagerErrors, NonPositiveRunningRequestsAreInvalid) {
  expect_rejected<InvalidArgument>([&] { m.get_num_common_prefix_pages(a, 0); });
  expect_rejected<InvalidArgument>([&] { m.get_num_common_prefix_pages(a, -2); });
}

TEST_F(ManagerErrors, BadGroupIsOutOfRange) {
  expect_rejected<OutOfRange>([&] { m.request_pages("a", 1); });
  expect_rejected<OutOfRange>([&] { m.group_manager(-1); });
}

TEST(ManagerConstruction, InvalidConfigIsRejected) {
  EXPECT_THROW(KVCacheManager(1, 16, 64), InvalidArgument);
  EXPECT_THROW(KVCacheManager(16, 0, 64), InvalidArgument);
  EXPECT_THROW(KVCacheManager(16, 16, 0), InvalidArgument);
  KVCacheConfig config = KVCacheConfig::single_group(16, 16, 64);
  config.groups.clear();
  EXPECT_THROW(KVCacheManager{config}, InvalidArgument);
}

}  // namespace
}  // namespace pagedkv
