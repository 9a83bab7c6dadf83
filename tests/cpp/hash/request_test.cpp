// Request: validation, incremental page hashes (each page once), and the per-page extra keys.
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "pagedkv/common/errors.h"
#include "pagedkv/hash/request.h"

namespace pagedkv {
namespace {

std::vector<TokenId> range_tokens(int begin, int end) {
  std::vector<TokenId> t(static_cast<size_t>(end - begin));
  std::iota(t.begin(), t.end(), begin);
  return t;
}

// The chain computed from scratch with a bare PageHasher and explicitly built keys.
std::vector<PageHash> chain_from_scratch(const Request& req, int32_t ps) {
  std::vector<PageHash> out;
  const auto tokens = req.all_token_ids();
  for (int32_t i = 0; i < req.num_tokens() / ps; ++i) {
    const PageExtraKeys keys = req.extra_keys_for_page(i, ps);
    out.push_back(req.hasher().hash_page(
        out.empty() ? nullptr : &out.back(),
        tokens.subspan(static_cast<size_t>(i * ps), static_cast<size_t>(ps)), keys));
  }
  return out;
}

// Everything observable, to show that a failed call changed nothing.
struct Snapshot {
  std::vector<PageHash> hashes16;  // first: tracking page size 16 may hash pages
  std::vector<TokenId> tokens;
  int32_t num_prompt_tokens, num_computed_tokens;
  int64_t num_pages_hashed;

  explicit Snapshot(const Request& r)
      : hashes16(r.page_hashes(16)),
        tokens(r.all_token_ids().begin(), r.all_token_ids().end()),
        num_prompt_tokens(r.num_prompt_tokens()),
        num_computed_tokens(r.num_computed_tokens()),
        num_pages_hashed(r.num_pages_hashed()) {}
  bool operator==(const Snapshot&) const = default;
};

TEST(Request, OnlyFullPagesAreHashedAndAppendFillsThem) {
  Request req("r", range_tokens(0, 47));
  EXPECT_EQ(req.page_hashes(16).size(), 2u);
  req.verify();
  req.append_output_token_ids(std::vector<TokenId>{47});
  EXPECT_EQ(req.page_hashes(16).size(), 3u);
  EXPECT_EQ(req.num_tokens(), 48);
  EXPECT_EQ(req.num_prompt_tokens(), 47);
  EXPECT_EQ(req.num_output_tokens(), 1);
  req.verify();
}

TEST(Request, IncrementalHashesEqualFromScratchForEveryTrackedPageSize) {
  std::mt19937 rng(7);
  RequestOptions opts;
  opts.cache_salt = "tenant";
  opts.lora_id = 11;
  opts.mm_inputs = {{"img-a", 5, 20}, {"img-b", 40, 3}};
  Request req("r", range_tokens(100, 150), opts);
  const std::vector<int32_t> sizes{1, 3, 16, 17, 64};
  for (int32_t ps : sizes) (void)req.page_hashes(ps);
  for (int step = 0; step < 40; ++step) {
    std::vector<TokenId> ids(rng() % 9);
    for (TokenId& t : ids) t = static_cast<TokenId>(rng() % 50000);
    req.append_output_token_ids(ids);
    req.verify();
  }
  for (int32_t ps : sizes) {
    EXPECT_EQ(req.page_hashes(ps), chain_from_scratch(req, ps)) << "page size " << ps;
    EXPECT_EQ(static_cast<int32_t>(req.page_hashes(ps).size()), req.num_tokens() / ps);
  }
  // The same tokens given as one prompt hash identically (prompt/output split is no key).
  std::vector<TokenId> all(req.all_token_ids().begin(), req.all_token_ids().end());
  Request fresh("f", all, opts);
  for (int32_t ps : sizes) EXPECT_EQ(fresh.page_hashes(ps), req.page_hashes(ps));
}

TEST(Request, EachPageIsHashedExactlyOnce) {
  Request req("r", range_tokens(0, 40));
  EXPECT_EQ(req.num_pages_hashed(), 0);  // nothing tracked yet: no hashing
  (void)req.page_hashes(8);
  EXPECT_EQ(req.num_pages_hashed(), 5);
  (void)req.page_hashes(8);
  EXPECT_EQ(req.num_pages_hashed(), 5);  // repeated queries do not re-hash
  (void)req.page_hashes(16);
  EXPECT_EQ(req.num_pages_hashed(), 7);
  for (int i = 0; i < 24; ++i) req.append_output_token_ids(std::vector<TokenId>{i});
  // 64 tokens: 8 pages of 8 and 4 pages of 16, each hashed once.
  EXPECT_EQ(req.num_pages_hashed(), 12);
  req.verify();
}

TEST(Request, PageHashReferencesSurviveNewPageSizesAndAppends) {
  Request req("r", range_tokens(0, 32));
  const std::vector<PageHash>& h16 = req.page_hashes(16);
  for (int32_t ps = 1; ps <= 40; ++ps) (void)req.page_hashes(ps);
  req.append_output_token_ids(range_tokens(32, 64));
  EXPECT_EQ(h16.size(), 4u);
  EXPECT_EQ(&h16, &req.page_hashes(16));
  req.verify();
}

TEST(Request, CacheSaltIsolatesTenantsThroughTheWholeChain) {
  RequestOptions a, b;
  a.cache_salt = "tenant-a";
  b.cache_salt = "tenant-b";
  Request ra("a", range_tokens(0, 64), a);
  Request rb("b", range_tokens(0, 64), b);
  Request ra2("a2", range_tokens(0, 64), a);
  Request plain("p", range_tokens(0, 64));
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NE(ra.page_hashes(16)[i], rb.page_hashes(16)[i]) << i;
    EXPECT_NE(ra.page_hashes(16)[i], plain.page_hashes(16)[i]) << i;
    EXPECT_EQ(ra.page_hashes(16)[i], ra2.page_hashes(16)[i]) << i;
  }
  EXPECT_EQ(ra.extra_keys_for_page(0, 16).cache_salt, "tenant-a");
  EXPECT_TRUE(ra.extra_keys_for_page(1, 16).cache_salt.empty());
  // Page 1 differs only through its parent: its own keys carry no salt.
  const PageHash& parent = ra.page_hashes(16)[0];
  EXPECT_EQ(ra.page_hashes(16)[1],
            ra.hasher().hash_page(&parent, ra.all_token_ids().subspan(16, 16), {}));
}

TEST(Request, LoraChangesEveryPage) {
  RequestOptions l1, l2;
  l1.lora_id = 1;
  l2.lora_id = 2;
  Request r1("1", range_tokens(0, 48), l1);
  Request r2("2", range_tokens(0, 48), l2);
  Request r0("0", range_tokens(0, 48));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NE(r1.page_hashes(16)[i], r2.page_hashes(16)[i]);
    EXPECT_NE(r1.page_hashes(16)[i], r0.page_hashes(16)[i]);
  }
  EXPECT_EQ(r1.extra_keys_for_page(2, 16).lora_id, 1);
}

TEST(Request, MultiModalInputChangesItsPagesAndLaterOnes) {
  RequestOptions opts;
  opts.mm_inputs = {{"img", 20, 5}};  // tokens [20, 25): page 1 at page size 16
  Request with("w", range_tokens(0, 64), opts);
  Request without("o", range_tokens(0, 64));
  EXPECT_EQ(with.page_hashes(16)[0], without.page_hashes(16)[0]);
  for (size_t i = 1; i < 4; ++i) EXPECT_NE(with.page_hashes(16)[i], without.page_hashes(16)[i]);
  RequestOptions other = opts;
  other.mm_inputs[0].content_hash = "img2";
  Request with_other("x", range_tokens(0, 64), other);
  EXPECT_NE(with.page_hashes(16)[1], with_other.page_hashes(16)[1]);
}

TEST(Request, ExtraKeysListTheInputsOverlappingEachPage) {
  RequestOptions opts;
  opts.mm_inputs = {{"a", 0, 16}, {"b", 16, 16}, {"c", 47, 2}, {"d", 60, 1}};
  opts.lora_id = 4;
  Request req("r", range_tokens(0, 70), opts);
  auto names = [&](int32_t page) {
    std::string s;
    for (const MultiModalInput* m : req.extra_keys_for_page(page, 16).mm_inputs)
      s += m->content_hash;
    return s;
  };
  EXPECT_EQ(names(0), "a");  // "a" ends at 16: does not reach page 1
  EXPECT_EQ(names(1), "b");
  EXPECT_EQ(names(2), "c");  // [47, 49) straddles pages 2 and 3
  EXPECT_EQ(names(3), "cd");
  EXPECT_EQ(names(4), "");  // partial page 4 ([64, 70)) has no input
  EXPECT_EQ(req.extra_keys_for_page(4, 16).lora_id, 4);
  // With one page covering everything, all inputs are listed in offset order.
  std::string all;
  for (const MultiModalInput* m : req.extra_keys_for_page(0, 70).mm_inputs) all += m->content_hash;
  EXPECT_EQ(all, "abcd");
}

TEST(Request, ExtraKeysRejectBadPageSizeAndIndex) {
  Request req("r", range_tokens(0, 20));
  const Snapshot before(req);
  EXPECT_THROW((void)req.extra_keys_for_page(0, 0), InvalidArgument);
  EXPECT_THROW((void)req.extra_keys_for_page(-1, 16), OutOfRange);
  EXPECT_THROW((void)req.extra_keys_for_page(2, 16), OutOfRange);  // pages 0..1 hold tokens
  EXPECT_NO_THROW((void)req.extra_keys_for_page(1, 16));
  EXPECT_EQ(Snapshot(req), before);
  req.verify();
}

TEST(Request, ConstructorRejectsInvalidInput) {
  auto make = [](std::string id, std::vector<TokenId> prompt, RequestOptions o = {}) {
    return Request(std::move(id), std::move(prompt), std::move(o));
  };
  EXPECT_THROW(make("", {1}), InvalidArgument);
  EXPECT_THROW(make("r", {}), InvalidArgument);
  EXPECT_THROW(make("r", {1, -2}), InvalidArgument);
  RequestOptions o;
  o.hash_algorithm = static_cast<HashAlgorithm>(0);
  EXPECT_THROW(make("r", {1}, o), InvalidArgument);
  const std::vector<std::vector<MultiModalInput>> bad_mm = {
      {{"a", 4, 2}, {"b", 1, 2}},  // unsorted
      {{"a", 0, 4}, {"b", 3, 2}},  // overlapping
      {{"a", 9, 2}},               // past the prompt (10 tokens)
      {{"a", -1, 2}},              // negative offset
      {{"a", 0, 0}},               // empty range
      {{"", 0, 1}},                // no content hash
  };
  for (const auto& mm : bad_mm) {
    o = {};
    o.mm_inputs = mm;
    EXPECT_THROW(make("r", range_tokens(0, 10), o), InvalidArgument);
  }
  o = {};
  o.mm_inputs = {{"a", 0, 4}, {"b", 4, 6}};  // adjacent, ends at the prompt end: fine
  EXPECT_NO_THROW(make("r", range_tokens(0, 10), o).verify());
}

TEST(Request, AppendingANegativeTokenFailsAndChangesNothing) {
  Request req("r", range_tokens(0, 15));
  const Snapshot before(req);
  EXPECT_THROW(req.append_output_token_ids(std::vector<TokenId>{5, -1}), InvalidArgument);
  EXPECT_EQ(Snapshot(req), before);  // the valid 5 was not appended either
  EXPECT_TRUE(req.page_hashes(16).empty());
  req.verify();
}

TEST(Request, OneTokenAppendMatchesTheSpanAppend) {
  // append_output_token_id's inline path (no page fills) and its fallback (a page fills, a
  // second page size is tracked, a negative id) end as append_output_token_ids would.
  Request one("a", range_tokens(0, 13));
  Request span("a", range_tokens(0, 13));
  (void)one.page_hashes(4);
  (void)span.page_hashes(4);
  for (TokenId t = 100; t < 140; ++t) {
    if (t == 120) {
      (void)one.page_hashes(8);
      (void)span.page_hashes(8);
    }
    one.append_output_token_id(t);
    const TokenId ids[1] = {t};
    span.append_output_token_ids(ids);
    ASSERT_EQ(one.page_hashes(4), span.page_hashes(4));
    ASSERT_EQ(one.num_pages_hashed(), span.num_pages_hashed());
  }
  EXPECT_EQ(one.page_hashes(8), span.page_hashes(8));
  EXPECT_EQ(std::vector<TokenId>(one.all_token_ids().begin(), one.all_token_ids().end()),
            std::vector<TokenId>(span.all_token_ids().begin(), span.all_token_ids().end()));
  EXPECT_THROW(one.append_output_token_id(-1), InvalidArgument);
  EXPECT_EQ(one.num_tokens(), span.num_tokens());
  one.verify();
}

TEST(Request, EqualIdsComparesEveryByte) {
  for (size_t n = 0; n <= 40; ++n) {
    std::string a(n, 'x');
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + i % 26);
    EXPECT_TRUE(equal_ids(a, std::string(a))) << n;
    EXPECT_FALSE(equal_ids(a, a + "z")) << n;
    for (size_t i = 0; i < n; ++i) {
      std::string b = a;
      b[i] = '#';
      EXPECT_FALSE(equal_ids(a, b)) << n << " " << i;
    }
  }
}

TEST(Request, ComputedTokensStayWithinTheTokens) {
  Request req("r", range_tokens(0, 20));
  req.set_num_computed_tokens(20);
  EXPECT_EQ(req.num_computed_tokens(), 20);
  const Snapshot before(req);
  EXPECT_THROW(req.set_num_computed_tokens(21), InvalidArgument);
  EXPECT_THROW(req.set_num_computed_tokens(-1), InvalidArgument);
  EXPECT_EQ(Snapshot(req), before);
  req.set_num_computed_tokens(0);
  EXPECT_EQ(req.num_computed_tokens(), 0);
  req.verify();
}

TEST(Request, NonPositivePageSizeIsRejectedAndNotTracked) {
  Request req("r", range_tokens(0, 20));
  const Snapshot before(req);
  EXPECT_THROW((void)req.page_hashes(0), InvalidArgument);
  EXPECT_THROW((void)req.page_hashes(-16), InvalidArgument);
  EXPECT_EQ(Snapshot(req), before);
  req.verify();
}

TEST(Request, Sha256RequestsChainFullDigests) {
  RequestOptions opts;
  opts.hash_algorithm = HashAlgorithm::kSha256;
  Request req("r", range_tokens(0, 64), opts);
  EXPECT_EQ(req.page_hashes(16), chain_from_scratch(req, 16));
  EXPECT_NE(req.page_hashes(16)[0].words[3], 0u);
  req.verify();
}

}  // namespace
}  // namespace pagedkv
