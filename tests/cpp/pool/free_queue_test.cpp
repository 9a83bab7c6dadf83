#include "pagedkv/pool/free_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using V = std::vector<PageId>;

FreeQueue queue_of(int32_t capacity, const V& pages) {
  FreeQueue q(capacity);
  q.append_n(pages);
  q.verify();
  return q;
}

TEST(FreeQueue, StartsEmpty) {
  FreeQueue q(4);
  q.verify();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0);
  EXPECT_EQ(q.to_vector(), V{});
  for (PageId p = 0; p < 4; ++p) EXPECT_FALSE(q.contains(p));
}

TEST(FreeQueue, AppendKeepsOrderAndPopFrontTakesTheHead) {
  FreeQueue q = queue_of(6, {3, 1, 5});
  EXPECT_EQ(q.front(), 3);
  EXPECT_EQ(q.pop_front(), 3);
  q.verify();
  q.append(0);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{1, 5, 0}));
  EXPECT_FALSE(q.contains(3));
  EXPECT_TRUE(q.contains(0));
}

TEST(FreeQueue, RemoveUnlinksFromAnyPosition) {
  FreeQueue q = queue_of(8, {1, 2, 3, 4, 5});
  q.remove(3);  // middle
  q.verify();
  q.remove(1);  // head
  q.verify();
  q.remove(5);  // tail
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{2, 4}));
  EXPECT_EQ(q.size(), 2);
  q.append(3);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{2, 4, 3}));
}

TEST(FreeQueue, PopFrontNTakesHeadPagesInOrder) {
  FreeQueue q = queue_of(10, {7, 2, 9, 4, 1});
  V out(3);
  q.pop_front_n(3, out.data());
  q.verify();
  EXPECT_EQ(out, (V{7, 2, 9}));
  EXPECT_EQ(q.to_vector(), (V{4, 1}));
  q.pop_front_n(0, out.data());
  q.pop_front_n(2, out.data());
  q.verify();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(out[0], 4);
  EXPECT_EQ(out[1], 1);
}

TEST(FreeQueue, ForEachVisitsHeadFirst) {
  FreeQueue q = queue_of(5, {4, 0, 2});
  V seen;
  q.for_each([&](PageId p) { seen.push_back(p); });
  EXPECT_EQ(seen, (V{4, 0, 2}));
}

TEST(FreeQueue, NegativeCapacityIsRejected) { EXPECT_THROW(FreeQueue(-1), InvalidArgument); }

TEST(FreeQueue, PopFromEmptyIsAStateErrorAndChangesNothing) {
  FreeQueue q(3);
  EXPECT_THROW(q.pop_front(), StateError);
  EXPECT_THROW(q.front(), StateError);
  q.verify();
  EXPECT_TRUE(q.empty());
}

TEST(FreeQueue, PopFrontNBeyondSizeIsACapacityErrorAndChangesNothing) {
  FreeQueue q = queue_of(5, {1, 2});
  V out(5, -7);
  EXPECT_THROW(q.pop_front_n(3, out.data()), CapacityError);
  EXPECT_THROW(q.pop_front_n(-1, out.data()), InvalidArgument);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{1, 2}));
  EXPECT_EQ(out, V(5, -7));
}

TEST(FreeQueue, AppendOfBadOrQueuedIdFailsAndChangesNothing) {
  FreeQueue q = queue_of(4, {1, 2});
  EXPECT_THROW(q.append(4), OutOfRange);
  EXPECT_THROW(q.append(-1), OutOfRange);
  EXPECT_THROW(q.append(2), StateError);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{1, 2}));
}

TEST(FreeQueue, AppendNWithARepeatOrBadIdFailsAndChangesNothing) {
  FreeQueue q = queue_of(6, {1, 2});
  EXPECT_THROW(q.append_n(V{3, 4, 3}), StateError);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{1, 2}));
  EXPECT_THROW(q.append_n(V{3, 6}), OutOfRange);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{1, 2}));
  EXPECT_THROW(q.append_n(V{3, 1}), StateError);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{1, 2}));
}

TEST(FreeQueue, RemoveOfBadOrUnqueuedIdFailsAndChangesNothing) {
  FreeQueue q = queue_of(4, {1, 2});
  EXPECT_THROW(q.remove(3), StateError);
  EXPECT_THROW(q.remove(9), OutOfRange);
  EXPECT_THROW(q.contains(-2), OutOfRange);
  q.verify();
  EXPECT_EQ(q.to_vector(), (V{1, 2}));
}

TEST(FreeQueue, MatchesAVectorModelUnderRandomOperations) {
  constexpr int32_t kCap = 32;
  FreeQueue q(kCap);
  V model;
  std::mt19937 rng(7);
  for (int step = 0; step < 4000; ++step) {
    const int op = static_cast<int>(rng() % 4);
    const PageId p = static_cast<PageId>(rng() % kCap);
    const bool queued = std::find(model.begin(), model.end(), p) != model.end();
    if (op == 0 && !queued) {
      q.append(p);
      model.push_back(p);
    } else if (op == 1 && queued) {
      q.remove(p);
      model.erase(std::find(model.begin(), model.end(), p));
    } else if (op == 2 && !model.empty()) {
      const int32_t n = static_cast<int32_t>(rng() % (model.size() + 1));
      V out(static_cast<size_t>(n));
      q.pop_front_n(n, out.data());
      EXPECT_EQ(out, V(model.begin(), model.begin() + n));
      model.erase(model.begin(), model.begin() + n);
    } else if (op == 3 && !model.empty()) {
      EXPECT_EQ(q.pop_front(), model.front());
      model.erase(model.begin());
    }
    q.verify();
    ASSERT_EQ(q.to_vector(), model) << "step " << step;
  }
}

}  // namespace
}  // namespace pagedkv
