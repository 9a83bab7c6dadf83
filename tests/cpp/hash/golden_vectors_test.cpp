// The golden vectors of docs/hash-spec.md (version 1). tests/python/test_hash.py holds the same
// table and checks it against an independent pure-Python implementation of the spec: a change
// here is a change of the spec and needs a version bump.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "pagedkv/hash/page_hash.h"
#include "pagedkv/hash/request.h"

namespace pagedkv {
namespace {

struct Golden {
  const char* xxh3_128;
  const char* sha256;
};

std::string golden(HashAlgorithm algo, const Golden& g) {
  return algo == HashAlgorithm::kXxh3_128 ? g.xxh3_128 : g.sha256;
}

std::vector<TokenId> range_tokens(int begin, int end) {
  std::vector<TokenId> t(static_cast<size_t>(end - begin));
  std::iota(t.begin(), t.end(), begin);
  return t;
}

// Spec table "Golden vectors".
const Golden kRoot{"f6b40017283a1ff01294cd5a537f0885",
                   "1f4af830164235e9a8b97d86ddd6c9dfab8198004613769ab83cea5b6e69c7d2"};
const Golden kPage0{"1d9778e14ccc2e83b3c91b5e5ae188e1",
                    "4bfd3ee1d15e03d55a378d8b5d267933b239abfa4fd75ed30f554cd04c727d8b"};
const Golden kShort{"45deef38982b5c64b11ab1c07bdbbb32",
                    "2444f8c25bacc58a0e9604734b5ed205982dfaf325a9f5ebcf35a816d2743c4f"};
const Golden kLora7{"424edb25c55fb0c198267acfe38c370a",
                    "40ad63683be3103e02b2a96ff48fd7cf4f10a35dff0c2448e02bbf2b2488f9e1"};
const Golden kSalt{"1e468d9d5bbc75aea59416d52cc8df7d",
                   "e64bb14aafd8ebceb26c139e1732c3c964b9747c66eb6c08db23859284aa9c7d"};
const Golden kMm{"7fd6f104951db35e0576c1c0e8565e41",
                 "2d4cb1deea08aecdfdf917772acdcc5695c3097fe61358d87ff5e58bb92b035d"};
const Golden kAll{"072b3a5a019e6448beeb94b09d9d99a1",
                  "51669783372c3c1e543358cb3d19bc137fe4979d795cd882f8f7f251e7c70326"};
const Golden kEdge{"5e22e8b5c275262f97533a00cde12c7b",
                   "6b934255e9736fed4542475becbef64f5ce8ec94cdc3e1809b6452d57c3ded76"};
const Golden kWorked{"dca901b4fc7a732eed9d841f14086bf8",
                     "4c5eb98d799f48d9f27edf9229403c46132e80f59a99ae32671dff20b7f587f3"};
const Golden kLarge{"5924dcd981f2e1f8df4a510c1f33c936",
                    "e586d3e00ca398a207da907b6903267a6cda3e6153ed4e67430c55e52fd12e92"};
const Golden kChain[3] = {
    {"1d9778e14ccc2e83b3c91b5e5ae188e1",
     "4bfd3ee1d15e03d55a378d8b5d267933b239abfa4fd75ed30f554cd04c727d8b"},
    {"e4d482a46393c451be65a1658a59774b",
     "dd5180a3221b9c7d718ceeec95a9f105d33bda4b1fefd4cbc8d7469840908408"},
    {"415ae77af43d5eee8f82d5cd17d7d005",
     "1ead585a8ce6b86a91be13a782beb7462a08da7ee257faab9b90d080c06abff8"},
};
const Golden kRequest[3] = {
    {"24f2e0409b0af369ca520d626efed27a",
     "86cb2ef81ca77e39a3678c668a47f0293f01bf4e408f750288b54bd6b6d959fe"},
    {"a1af1b9e9ec659336036700e38582f33",
     "0500b6470a6099e464d49e9bf8a93e6a93113a01d99b4af356689f2803eec11f"},
    {"9053bdcc915ce69aa441828164d59ae7",
     "371fea29e22ca91e5c72fa9c496779f822ec031fc2099a14c5a3f31f49fda079"},
};

class GoldenVectorTest : public ::testing::TestWithParam<HashAlgorithm> {
 protected:
  PageHasher hasher_{GetParam()};
  int size_ = digest_size(GetParam());
  std::string hex(const PageHash& h) const { return h.hex(size_); }
  std::string want(const Golden& g) const { return golden(GetParam(), g); }
};

TEST_P(GoldenVectorTest, RootIsTheDigestOfTheRootLabel) {
  EXPECT_EQ(hex(hasher_.root()), want(kRoot));
}

TEST_P(GoldenVectorTest, SinglePagesMatchTheSpecTable) {
  const auto t16 = range_tokens(0, 16);
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, t16, {})), want(kPage0));
  const std::vector<TokenId> t3{1, 2, 3};
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, t3, {})), want(kShort));
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, t16, {.lora_id = 7})), want(kLora7));
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, t16, {.cache_salt = "tenant-a"})), want(kSalt));

  const MultiModalInput img{"img-0", 4, 8};
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, t16, {.mm_inputs = {&img}})), want(kMm));

  const MultiModalInput a{"a", 2, 3};
  const MultiModalInput b{"b", 10, 3};
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, t16,
                                  {.lora_id = 7, .mm_inputs = {&a, &b}, .cache_salt = "s"})),
            want(kAll));

  // The spec's worked example: every field once.
  const MultiModalInput img0{"img-0", 4, 1};
  EXPECT_EQ(
      hex(hasher_.hash_page(nullptr, t3, {.lora_id = -1, .mm_inputs = {&img0}, .cache_salt = "s"})),
      want(kWorked));

  const std::vector<TokenId> edge{2147483647, 0, 1};
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, edge, {.lora_id = -1})), want(kEdge));
}

TEST_P(GoldenVectorTest, LargePageTakesTheStreamingPathWithTheSameEncoding) {
  const auto t300 = range_tokens(0, 300);
  EXPECT_EQ(hex(hasher_.hash_page(nullptr, t300, {.lora_id = 1, .cache_salt = "tenant-a"})),
            want(kLarge));
}

TEST_P(GoldenVectorTest, ThreePageChainMatchesTheSpecTable) {
  PageHash prev;
  for (int i = 0; i < 3; ++i) {
    const auto t = range_tokens(16 * i, 16 * i + 16);
    const PageHash h = hasher_.hash_page(i == 0 ? nullptr : &prev, t, {});
    EXPECT_EQ(hex(h), want(kChain[i])) << "page " << i;
    prev = h;
  }
}

TEST_P(GoldenVectorTest, RequestWithSaltLoraAndImageMatchesTheSpecTable) {
  RequestOptions opts;
  opts.cache_salt = "tenant-a";
  opts.lora_id = 3;
  opts.mm_inputs = {{"image-hash", 10, 12}};  // tokens [10, 22): pages 0 and 1
  opts.hash_algorithm = GetParam();
  Request req("golden", range_tokens(0, 48), opts);
  const auto& hashes = req.page_hashes(16);
  ASSERT_EQ(hashes.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(hex(hashes[static_cast<size_t>(i)]), want(kRequest[i]));
  req.verify();
}

INSTANTIATE_TEST_SUITE_P(Algorithms, GoldenVectorTest,
                         ::testing::Values(HashAlgorithm::kXxh3_128, HashAlgorithm::kSha256),
                         [](const auto& info) {
                           return std::string(hash_algorithm_name(info.param));
                         });

}  // namespace
}  // namespace pagedkv
