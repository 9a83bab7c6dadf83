// The batch forms of PrefixIndex and the group part of its fingerprint.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "pagedkv/pool/prefix_index.h"
#include "pool_test_util.h"

namespace pagedkv {
namespace {

using V = std::vector<PageId>;

PageHash h(uint64_t w0, uint64_t w1 = 0) { return testing::test_hash(w0, w1); }

TEST(PrefixIndexBatch, InsertBatchMatchesInsertOneAtATimeAndSkipsThePage) {
  std::vector<PageHash> hashes = {h(1), h(2), h(1), h(3), h(2), h(4)};
  V pages = {4, 0, 7, 2, 5, 9};
  PrefixIndex batch(10);
  batch.insert_batch(hashes, 3, pages, /*skip=*/0);
  batch.verify();
  PrefixIndex one(10);
  for (size_t i = 0; i < pages.size(); ++i) {
    if (pages[i] != 0) one.insert(hashes[i], 3, pages[i]);
  }
  EXPECT_EQ(batch.size(), 5);
  EXPECT_EQ(batch.num_keys(), 4);
  EXPECT_FALSE(batch.contains(0));
  for (uint64_t w = 1; w <= 4; ++w) EXPECT_EQ(batch.pages_for(h(w), 3), one.pages_for(h(w), 3));
  EXPECT_EQ(batch.pages_for(h(1), 3), (V{4, 7}));
  EXPECT_EQ(batch.pages_for(h(2), 3), (V{5}));  // page 0 was skipped
}

TEST(PrefixIndexBatch, RemoveBatchRemovesOnlyIndexedPagesAndCountsThem) {
  PrefixIndex idx(10);
  for (PageId p : {1, 2, 3}) idx.insert(h(8), 0, p);  // one key, three pages
  idx.insert(h(9), 0, 6);
  const V victims = {5, 2, 6, 0, 1};
  EXPECT_EQ(idx.remove_batch(victims), 3);
  idx.verify();
  EXPECT_EQ(idx.pages_for(h(8), 0), (V{3}));
  EXPECT_EQ(idx.lookup(h(9), 0), PrefixIndex::kNoPage);
  EXPECT_EQ(idx.size(), 1);
  EXPECT_EQ(idx.num_keys(), 1);
}

TEST(PrefixIndexBatch, OneHashUnderManyGroupsKeepsOneKeyPerGroup) {
  // Groups that agree in their low bits (the fingerprint must still tell them apart) and the
  // extremes of the range.
  const std::vector<GroupId> groups = {0, 1, 1 << 24, (1 << 24) + 1, 1 << 30, 0x7fffffff};
  PrefixIndex idx(static_cast<int32_t>(groups.size()));
  for (size_t i = 0; i < groups.size(); ++i) {
    idx.insert(h(42), groups[i], static_cast<PageId>(i));
  }
  idx.verify();
  EXPECT_EQ(idx.num_keys(), static_cast<int64_t>(groups.size()));
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_EQ(idx.lookup(h(42), groups[i]), static_cast<PageId>(i));
    EXPECT_EQ(idx.group_of(static_cast<PageId>(i)), groups[i]);
  }
  EXPECT_EQ(idx.lookup(h(42), 2), PrefixIndex::kNoPage);
  EXPECT_NE(PrefixIndex::fingerprint(h(42), 0), PrefixIndex::fingerprint(h(42), 1 << 24));
}

// Random batches of inserts and evictions, as the pool issues them, against a map model.
TEST(PrefixIndexBatch, BatchesMatchAMapModel) {
  constexpr int32_t kPages = 256;
  PrefixIndex idx(kPages);
  std::map<std::pair<uint64_t, GroupId>, V> model;
  std::vector<std::pair<uint64_t, GroupId>> key_of(kPages, {0, -1});
  std::mt19937 rng(5);
  for (int round = 0; round < 300; ++round) {
    V pages;
    std::vector<PageHash> hashes;
    std::vector<char> picked(kPages, 0);
    const GroupId g = static_cast<GroupId>(rng() % 2);
    const size_t n = round % 3 == 0 ? rng() % 3 : rng() % 40;  // single pages take a shortcut
    for (size_t k = 0; k < n; ++k) {
      const PageId p = static_cast<PageId>(rng() % kPages);
      if (picked[static_cast<size_t>(p)]) continue;
      picked[static_cast<size_t>(p)] = 1;
      pages.push_back(p);
    }
    // Evict whatever of them is indexed, then index them all (skipping page 0).
    int64_t expect_removed = 0;
    for (PageId p : pages) {
      auto& key = key_of[static_cast<size_t>(p)];
      if (key.second < 0) continue;
      V& list = model[key];
      list.erase(std::find(list.begin(), list.end(), p));
      if (list.empty()) model.erase(key);
      key = {0, -1};
      ++expect_removed;
    }
    ASSERT_EQ(idx.remove_batch(pages), expect_removed);
    for (PageId p : pages) {
      const uint64_t w = rng() % 61 + 1;
      hashes.push_back(h(w));
      if (p == 0) continue;
      model[{w, g}].push_back(p);
      key_of[static_cast<size_t>(p)] = {w, g};
    }
    idx.insert_batch(hashes, g, pages, /*skip=*/0);
    idx.verify();
    ASSERT_EQ(idx.num_keys(), static_cast<int64_t>(model.size())) << "round " << round;
  }
  for (uint64_t w = 1; w <= 61; ++w) {
    for (GroupId g = 0; g < 2; ++g) {
      const auto it = model.find({w, g});
      EXPECT_EQ(idx.pages_for(h(w), g), it == model.end() ? V{} : it->second);
    }
  }
}

}  // namespace
}  // namespace pagedkv
