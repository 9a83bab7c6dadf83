#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/replay/trace.h"

namespace pagedkv {
namespace {

std::vector<TokenId> block(uint64_t key, int32_t n) {
  std::vector<TokenId> out(static_cast<size_t>(n));
  synthesize_block(key, n, out.data());
  return out;
}

TEST(TokenSynthesis, SameKeyGivesSameTokensAndTokenMatchesBlock) {
  const auto a = block(42, 512);
  EXPECT_EQ(a, block(42, 512));
  for (int32_t j = 0; j < 512; ++j) EXPECT_EQ(synthetic_token(42, j), a[static_cast<size_t>(j)]);
}

TEST(TokenSynthesis, PartialBlockIsAPrefixOfTheFullBlock) {
  const auto full = block(7, 512);
  const auto part = block(7, 100);
  EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin()));
}

TEST(TokenSynthesis, TokensStayInTheVocabularyAndSpreadOverIt) {
  std::vector<int64_t> buckets(128, 0);
  int64_t total = 0;
  for (uint64_t key = 0; key < 2000; ++key) {
    for (TokenId t : block(key, 512)) {
      ASSERT_GE(t, 0);
      ASSERT_LT(t, kSyntheticVocabSize);
      ++buckets[static_cast<size_t>(t / 1000)];
      ++total;
    }
  }
  // 1,024,000 tokens over 128 buckets of 1000 ids: 8000 expected each, sd ~ 89.
  for (int64_t b : buckets) {
    EXPECT_GT(b, total / 128 * 9 / 10);
    EXPECT_LT(b, total / 128 * 11 / 10);
  }
}

TEST(TokenSynthesis, DifferentKeysGiveDifferentPagesEvenForSmallAdjacentKeys) {
  // Mooncake ids are small consecutive integers; no two of their 16-token pages may collide,
  // and no page may equal a shifted page of another block.
  std::set<std::vector<TokenId>> pages;
  size_t inserted = 0;
  for (uint64_t key = 0; key < 3000; ++key) {
    const auto b = block(key, 64);
    for (size_t start = 0; start + 16 <= b.size(); start += 16) {
      pages.insert(std::vector<TokenId>(b.begin() + static_cast<ptrdiff_t>(start),
                                        b.begin() + static_cast<ptrdiff_t>(start + 16)));
      ++inserted;
    }
  }
  EXPECT_EQ(pages.size(), inserted);
  // Scoped keys differ per scope and per id; tail keys never equal hash-id keys.
  std::set<uint64_t> keys;
  for (uint64_t scope = 0; scope < 4; ++scope) {
    for (uint64_t id = 0; id < 1000; ++id) {
      keys.insert(scoped_block_key(scope, id));
      keys.insert(unique_tail_key(scope, id));
    }
  }
  EXPECT_EQ(keys.size(), 8000u);
}

TEST(TokenSynthesis, GoldenValuesPinTheGenerator) {
  // Changing these changes every replayed hit pattern's hashes (not the hit rates): bump
  // deliberately, never by accident.
  EXPECT_EQ(synthetic_token(0, 0), block(0, 1)[0]);
  const std::vector<TokenId> golden = {synthetic_token(0, 0), synthetic_token(1, 0),
                                       synthetic_token(1, 1), synthetic_token(123456789, 511)};
  EXPECT_EQ(golden, (std::vector<TokenId>{12318, 113046, 49455, 13811}));
  EXPECT_EQ(scoped_block_key(0, 0), 0x15e0e6a489cc380eull);
}

TEST(TokenSynthesis, PromptConcatenatesItsBlocks) {
  TraceRequest r{.timestamp = 0, .input_length = 40, .output_length = 0, .block_keys = {5, 6, 7}};
  std::vector<TokenId> prompt = {99};  // replaced, not appended to
  synthesize_prompt(r, 16, prompt);
  ASSERT_EQ(prompt.size(), 40u);
  const auto b5 = block(5, 16), b6 = block(6, 16), b7 = block(7, 8);
  EXPECT_TRUE(std::equal(b5.begin(), b5.end(), prompt.begin()));
  EXPECT_TRUE(std::equal(b6.begin(), b6.end(), prompt.begin() + 16));
  EXPECT_TRUE(std::equal(b7.begin(), b7.end(), prompt.begin() + 32));
}

TEST(TokenSynthesis, PromptRejectsAMismatchedKeyCountAndLeavesTheOutputAlone) {
  TraceRequest r{.timestamp = 0, .input_length = 40, .output_length = 0, .block_keys = {5, 6}};
  std::vector<TokenId> out = {1, 2, 3};
  EXPECT_THROW(synthesize_prompt(r, 16, out), InvalidArgument);
  EXPECT_EQ(out, (std::vector<TokenId>{1, 2, 3}));
  EXPECT_THROW(synthesize_prompt(r, 0, out), InvalidArgument);
  EXPECT_EQ(out, (std::vector<TokenId>{1, 2, 3}));
}

}  // namespace
}  // namespace pagedkv
