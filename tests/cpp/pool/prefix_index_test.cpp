#include "pagedkv/pool/prefix_index.h"
#include "pool_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

using V = std::vector<PageId>;

PageHash h(uint64_t w0, uint64_t w1 = 0) { return testing::test_hash(w0, w1); }

TEST(PrefixIndex, LookupFindsInsertedPageUnderItsKey) {
  PrefixIndex idx(8);
  idx.insert(h(1), 0, 3);
  idx.verify();
  EXPECT_EQ(idx.lookup(h(1), 0), 3);
  EXPECT_EQ(idx.lookup(h(2), 0), PrefixIndex::kNoPage);
  EXPECT_TRUE(idx.contains(3));
  EXPECT_EQ(idx.hash_of(3), h(1));
  EXPECT_EQ(idx.group_of(3), 0);
  EXPECT_EQ(idx.size(), 1);
  EXPECT_EQ(idx.num_keys(), 1);
}

TEST(PrefixIndex, KeyIncludesTheGroup) {
  PrefixIndex idx(8);
  idx.insert(h(1), 0, 3);
  idx.insert(h(1), 1, 4);
  idx.verify();
  EXPECT_EQ(idx.lookup(h(1), 0), 3);
  EXPECT_EQ(idx.lookup(h(1), 1), 4);
  EXPECT_EQ(idx.lookup(h(1), 2), PrefixIndex::kNoPage);
  EXPECT_EQ(idx.num_keys(), 2);
}

TEST(PrefixIndex, DuplicatesAreKeptInInsertionOrderAndLookupReturnsTheFirst) {
  PrefixIndex idx(8);
  idx.insert(h(9), 0, 5);
  idx.insert(h(9), 0, 2);
  idx.insert(h(9), 0, 7);
  idx.verify();
  EXPECT_EQ(idx.lookup(h(9), 0), 5);
  EXPECT_EQ(idx.pages_for(h(9), 0), (V{5, 2, 7}));
  EXPECT_EQ(idx.num_keys(), 1);
  EXPECT_EQ(idx.size(), 3);
}

TEST(PrefixIndex, RemovingOneDuplicateKeepsTheRestInOrder) {
  PrefixIndex idx(8);
  for (PageId p : {5, 2, 7, 1}) idx.insert(h(9), 0, p);
  idx.remove(2);  // middle
  idx.verify();
  EXPECT_EQ(idx.pages_for(h(9), 0), (V{5, 7, 1}));
  idx.remove(5);  // head: the next one becomes the lookup result
  idx.verify();
  EXPECT_EQ(idx.lookup(h(9), 0), 7);
  idx.remove(1);  // tail
  idx.verify();
  EXPECT_EQ(idx.pages_for(h(9), 0), (V{7}));
  idx.remove(7);  // last: the key disappears
  idx.verify();
  EXPECT_EQ(idx.lookup(h(9), 0), PrefixIndex::kNoPage);
  EXPECT_EQ(idx.num_keys(), 0);
  EXPECT_FALSE(idx.contains(7));
}

TEST(PrefixIndex, LookupPrefixAppendsHitsUntilTheFirstMiss) {
  PrefixIndex idx(40);
  std::vector<PageHash> hashes;
  for (uint64_t i = 1; i <= 30; ++i) hashes.push_back(h(i, 5));
  for (PageId p = 0; p < 20; ++p) idx.insert(hashes[static_cast<size_t>(p)], 0, p + 10);
  V out;
  EXPECT_EQ(idx.lookup_prefix(hashes, 0, out), 20);  // longer than the prefetch window
  ASSERT_EQ(out.size(), 20u);
  for (PageId p = 0; p < 20; ++p) EXPECT_EQ(out[static_cast<size_t>(p)], p + 10);
  out.clear();
  EXPECT_EQ(idx.lookup_prefix(std::span<const PageHash>(hashes).subspan(20), 0, out), 0);
  EXPECT_EQ(idx.lookup_prefix(hashes, 1, out), 0);
  EXPECT_TRUE(out.empty());
}

TEST(PrefixIndex, ClearEmptiesEverything) {
  PrefixIndex idx(8);
  for (PageId p = 0; p < 8; ++p) idx.insert(h(static_cast<uint64_t>(p % 3) + 1), 0, p);
  idx.clear();
  idx.verify();
  EXPECT_EQ(idx.size(), 0);
  EXPECT_EQ(idx.num_keys(), 0);
  for (PageId p = 0; p < 8; ++p) EXPECT_FALSE(idx.contains(p));
  idx.insert(h(1), 0, 4);
  idx.verify();
  EXPECT_EQ(idx.lookup(h(1), 0), 4);
}

TEST(PrefixIndex, HoldsOneKeyPerPageWhenEveryPageIsCached) {
  constexpr int32_t kPages = 5000;
  PrefixIndex idx(kPages);
  for (PageId p = 0; p < kPages; ++p) idx.insert(h(static_cast<uint64_t>(p) + 1, 77), 0, p);
  idx.verify();
  for (PageId p = 0; p < kPages; ++p) {
    ASSERT_EQ(idx.lookup(h(static_cast<uint64_t>(p) + 1, 77), 0), p);
  }
}

TEST(PrefixIndex, InsertRejectsBadInputAndChangesNothing) {
  PrefixIndex idx(4);
  idx.insert(h(1), 0, 1);
  EXPECT_THROW(idx.insert(h(2), 0, 4), OutOfRange);
  EXPECT_THROW(idx.insert(h(2), 0, -1), OutOfRange);
  EXPECT_THROW(idx.insert(PageHash{}, 0, 2), InvalidArgument);
  EXPECT_THROW(idx.insert(h(2), -1, 2), InvalidArgument);
  EXPECT_THROW(idx.insert(h(2), 0, 1), StateError);  // already carries h(1)
  idx.verify();
  EXPECT_EQ(idx.size(), 1);
  EXPECT_EQ(idx.hash_of(1), h(1));
  EXPECT_EQ(idx.lookup(h(2), 0), PrefixIndex::kNoPage);
}

TEST(PrefixIndex, RemoveAndQueriesOfUnindexedPagesFailAndChangeNothing) {
  PrefixIndex idx(4);
  idx.insert(h(1), 0, 1);
  EXPECT_THROW(idx.remove(2), StateError);
  EXPECT_THROW(idx.remove(4), OutOfRange);
  EXPECT_THROW(idx.hash_of(2), StateError);
  EXPECT_THROW(idx.group_of(-3), OutOfRange);
  idx.verify();
  EXPECT_EQ(idx.lookup(h(1), 0), 1);
  EXPECT_EQ(idx.size(), 1);
}

// Keys drawn from a small set (many duplicates and many probe collisions after removals),
// compared with an ordered-map model after every step.
TEST(PrefixIndex, MatchesAMapModelUnderRandomInsertsAndRemovals) {
  constexpr int32_t kPages = 300;
  PrefixIndex idx(kPages);
  std::map<std::pair<uint64_t, GroupId>, V> model;
  std::vector<std::pair<uint64_t, GroupId>> key_of(kPages, {0, -1});
  std::mt19937 rng(11);
  for (int step = 0; step < 6000; ++step) {
    const PageId p = static_cast<PageId>(rng() % kPages);
    if (key_of[static_cast<size_t>(p)].second < 0) {
      const auto key = std::make_pair(uint64_t{rng() % 97} + 1, static_cast<GroupId>(rng() % 2));
      idx.insert(h(key.first), key.second, p);
      model[key].push_back(p);
      key_of[static_cast<size_t>(p)] = key;
    } else {
      const auto key = key_of[static_cast<size_t>(p)];
      idx.remove(p);
      V& pages = model[key];
      pages.erase(std::find(pages.begin(), pages.end(), p));
      if (pages.empty()) model.erase(key);
      key_of[static_cast<size_t>(p)] = {0, -1};
    }
    idx.verify();
    ASSERT_EQ(idx.num_keys(), static_cast<int64_t>(model.size())) << "step " << step;
  }
  idx.verify();
  for (uint64_t w = 1; w <= 97; ++w) {
    for (GroupId g = 0; g < 2; ++g) {
      const auto it = model.find({w, g});
      EXPECT_EQ(idx.pages_for(h(w), g), it == model.end() ? V{} : it->second);
    }
  }
}

}  // namespace
}  // namespace pagedkv
