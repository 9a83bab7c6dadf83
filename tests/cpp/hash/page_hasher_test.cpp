// PageHasher: chain property, extra keys, digest encodings and input validation.
#include <gtest/gtest.h>

#include <cctype>
#include <numeric>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/hash/page_hash.h"

namespace pagedkv {
namespace {

std::vector<TokenId> iota_tokens(int n, TokenId first = 0) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

class PageHasherTest : public ::testing::TestWithParam<HashAlgorithm> {};

TEST_P(PageHasherTest, SameInputsGiveSameHashAndAnyTokenChangeAltersIt) {
  PageHasher hasher(GetParam());
  const auto tokens = iota_tokens(16);
  const PageHash a = hasher.hash_page(nullptr, tokens, {});
  EXPECT_EQ(a, hasher.hash_page(nullptr, tokens, {}));
  EXPECT_FALSE(a.empty());
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto changed = tokens;
    changed[i] += 1;
    EXPECT_NE(a, hasher.hash_page(nullptr, changed, {})) << "token " << i;
  }
}

TEST_P(PageHasherTest, ChildHashDependsOnParent) {
  PageHasher hasher(GetParam());
  const auto t0 = iota_tokens(16);
  const auto t0b = iota_tokens(16, 100);
  const auto t1 = iota_tokens(16, 16);
  const PageHash p = hasher.hash_page(nullptr, t0, {});
  const PageHash q = hasher.hash_page(nullptr, t0b, {});
  EXPECT_NE(hasher.hash_page(&p, t1, {}), hasher.hash_page(&q, t1, {}));
  EXPECT_NE(hasher.hash_page(&p, t1, {}), hasher.hash_page(nullptr, t1, {}));
  // The ROOT parent is what page 0 chains onto.
  const PageHash root = hasher.root();
  EXPECT_EQ(hasher.hash_page(&root, t1, {}), hasher.hash_page(nullptr, t1, {}));
}

TEST_P(PageHasherTest, DigestSizeMatchesAlgorithm) {
  PageHasher hasher(GetParam());
  const PageHash h = hasher.hash_page(nullptr, iota_tokens(4), {});
  if (GetParam() == HashAlgorithm::kXxh3_128) {
    EXPECT_EQ(hasher.digest_size(), 16);
    EXPECT_EQ(h.words[2] | h.words[3], 0u);
  } else {
    EXPECT_EQ(hasher.digest_size(), 32);
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PageHasherTest,
                         ::testing::Values(HashAlgorithm::kXxh3_128, HashAlgorithm::kSha256),
                         [](const auto& info) {
                           return std::string(hash_algorithm_name(info.param));
                         });

}  // namespace
}  // namespace pagedkv

namespace pagedkv {
namespace {

const std::vector<TokenId> kTokens = iota_tokens(16);

TEST(PageHasherExtraKeys, LoraIdentityEntersTheHash) {
  PageHasher hasher;
  const PageHash none = hasher.hash_page(nullptr, kTokens, {});
  const PageHash zero = hasher.hash_page(nullptr, kTokens, {.lora_id = 0});
  const PageHash one = hasher.hash_page(nullptr, kTokens, {.lora_id = 1});
  EXPECT_NE(none, zero);  // "no adapter" differs from adapter 0
  EXPECT_NE(zero, one);
  EXPECT_EQ(one, hasher.hash_page(nullptr, kTokens, {.lora_id = 1}));
}

TEST(PageHasherExtraKeys, MultiModalContentOffsetAndOrderEnterTheHash) {
  PageHasher hasher;
  const MultiModalInput a{"aaaa", 2, 4};
  const MultiModalInput a_moved{"aaaa", 3, 4};
  const MultiModalInput b{"bbbb", 2, 4};
  const MultiModalInput c{"cccc", 9, 4};
  const PageHash ha = hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&a}});
  EXPECT_NE(ha, hasher.hash_page(nullptr, kTokens, {}));
  EXPECT_NE(ha, hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&a_moved}}));
  EXPECT_NE(ha, hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&b}}));
  EXPECT_NE(ha, hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&a, &c}}));
  // The placeholder length is not a key: the tokens already cover it.
  const MultiModalInput a_longer{"aaaa", 2, 6};
  EXPECT_EQ(ha, hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&a_longer}}));
}

TEST(PageHasherExtraKeys, SaltEntersPageZeroAndKeysAreNotConfusable) {
  PageHasher hasher;
  const PageHash plain = hasher.hash_page(nullptr, kTokens, {});
  const PageHash a = hasher.hash_page(nullptr, kTokens, {.cache_salt = "tenant-a"});
  const PageHash b = hasher.hash_page(nullptr, kTokens, {.cache_salt = "tenant-b"});
  EXPECT_NE(plain, a);
  EXPECT_NE(a, b);
  // A salt that spells an mm key's bytes is still a different key (tags + lengths).
  const MultiModalInput m{"x", 0, 1};
  EXPECT_NE(hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&m}}),
            hasher.hash_page(nullptr, kTokens, {.cache_salt = "x"}));
  // The token count is encoded: tokens cannot spill into the keys.
  const std::vector<TokenId> three{1, 2, 3};
  const std::vector<TokenId> two{1, 2};
  EXPECT_NE(hasher.hash_page(nullptr, three, {}), hasher.hash_page(nullptr, two, {}));
}

TEST(PageHasherExtraKeys, AlgorithmsGiveDifferentDigests) {
  const PageHash x = PageHasher(HashAlgorithm::kXxh3_128).hash_page(nullptr, kTokens, {});
  const PageHash s = PageHasher(HashAlgorithm::kSha256).hash_page(nullptr, kTokens, {});
  EXPECT_NE(x.hex(16), s.hex(16));
}

TEST(PageHashEncoding, HexAndBytesRoundTrip) {
  const PageHash h = PageHasher(HashAlgorithm::kSha256).hash_page(nullptr, kTokens, {});
  EXPECT_EQ(PageHash::from_hex(h.hex()), h);
  EXPECT_EQ(PageHash::from_bytes(h.bytes()), h);
  EXPECT_EQ(h.bytes().size(), 32u);
  EXPECT_EQ(h.hex().size(), 64u);
  const PageHash x = PageHasher().hash_page(nullptr, kTokens, {});
  EXPECT_EQ(PageHash::from_hex(x.hex(16)), x);
  EXPECT_EQ(PageHash::from_bytes(x.bytes(16)), x);

  std::string upper = x.hex(16);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(PageHash::from_hex(upper), x);
}

TEST(PageHashEncoding, WordsAreLittleEndianLoadsOfTheDigestBytes) {
  const PageHash h = PageHash::from_hex("0102030405060708090a0b0c0d0e0f10");
  EXPECT_EQ(h.words[0], 0x0807060504030201ull);
  EXPECT_EQ(h.words[1], 0x100f0e0d0c0b0a09ull);
  EXPECT_EQ(h.words[2], 0u);
  EXPECT_EQ(h.words[3], 0u);
  EXPECT_EQ(h.hex(16), "0102030405060708090a0b0c0d0e0f10");
  EXPECT_TRUE(PageHash{}.empty());
  EXPECT_EQ(PageHash{}.hex(4), "00000000");
}

TEST(PageHashEncoding, MalformedHexAndSizesAreRejected) {
  EXPECT_THROW(PageHash::from_hex(""), InvalidArgument);
  EXPECT_THROW(PageHash::from_hex("abc"), InvalidArgument);
  EXPECT_THROW(PageHash::from_hex("zz"), InvalidArgument);
  EXPECT_THROW(PageHash::from_hex(std::string(66, 'a')), InvalidArgument);
  EXPECT_THROW(PageHash::from_bytes(""), InvalidArgument);
  EXPECT_THROW(PageHash::from_bytes(std::string(33, 'a')), InvalidArgument);
  const PageHash h = PageHash::from_hex("ff");
  EXPECT_THROW((void)h.hex(0), InvalidArgument);
  EXPECT_THROW((void)h.hex(33), InvalidArgument);
  EXPECT_THROW((void)h.bytes(0), InvalidArgument);
  EXPECT_EQ(h.hex(1), "ff");  // unchanged
}

TEST(HashAlgorithmNames, RoundTripAndUnknownNamesAreRejected) {
  for (HashAlgorithm a : {HashAlgorithm::kXxh3_128, HashAlgorithm::kSha256}) {
    EXPECT_EQ(parse_hash_algorithm(hash_algorithm_name(a)), a);
  }
  EXPECT_EQ(digest_size(HashAlgorithm::kXxh3_128), 16);
  EXPECT_EQ(digest_size(HashAlgorithm::kSha256), 32);
  EXPECT_THROW(parse_hash_algorithm("md5"), InvalidArgument);
  EXPECT_THROW(parse_hash_algorithm(""), InvalidArgument);
  EXPECT_THROW(PageHasher(static_cast<HashAlgorithm>(9)), InvalidArgument);
}

TEST(PageHasherErrors, InvalidInputsThrowAndLaterCallsAreUnaffected) {
  PageHasher hasher;
  const PageHash good = hasher.hash_page(nullptr, kTokens, {});
  const PageHash empty;
  const PageHash sha_parent = PageHasher(HashAlgorithm::kSha256).hash_page(nullptr, kTokens, {});
  const MultiModalInput no_hash{"", 0, 4};
  const MultiModalInput no_length{"h", 0, 0};
  const MultiModalInput late{"h", 8, 2};
  const MultiModalInput early{"h", 2, 2};

  EXPECT_THROW(hasher.hash_page(nullptr, {}, {}), InvalidArgument);
  EXPECT_THROW(hasher.hash_page(&empty, kTokens, {}), InvalidArgument);
  EXPECT_THROW(hasher.hash_page(&sha_parent, kTokens, {}), InvalidArgument);
  EXPECT_THROW(hasher.hash_page(&good, kTokens, {.cache_salt = "s"}), InvalidArgument);
  EXPECT_THROW(hasher.hash_page(nullptr, kTokens, {.mm_inputs = {nullptr}}), InvalidArgument);
  EXPECT_THROW(hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&no_hash}}), InvalidArgument);
  EXPECT_THROW(hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&no_length}}), InvalidArgument);
  EXPECT_THROW(hasher.hash_page(nullptr, kTokens, {.mm_inputs = {&late, &early}}), InvalidArgument);

  EXPECT_EQ(hasher.algorithm(), HashAlgorithm::kXxh3_128);
  EXPECT_EQ(hasher.hash_page(nullptr, kTokens, {}), good);
  // A sha256 hasher accepts a full 32-byte parent.
  EXPECT_NO_THROW(PageHasher(HashAlgorithm::kSha256).hash_page(&sha_parent, kTokens, {}));
}

}  // namespace
}  // namespace pagedkv
