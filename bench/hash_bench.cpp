// Page hashing throughput (pages/s) for both algorithms, against the bare digest of a message
// of the same size (the floor any encoding can reach), and a request's incremental hashing.
//
//   build-*/bench/hash_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#define XXH_INLINE_ALL
#include <openssl/evp.h>
#include <xxhash.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "pagedkv/hash/page_hash.h"
#include "pagedkv/hash/request.h"

namespace pagedkv {
namespace {

constexpr int kChain = 256;  // pages per iteration, chained like a 4096-token prompt at 16

std::vector<TokenId> make_tokens(size_t n) {
  std::vector<TokenId> t(n);
  std::iota(t.begin(), t.end(), 1000);
  return t;
}

// PageHasher over a chain of pages: page i's parent is page i-1's hash.
void BM_HashPageChain(benchmark::State& state, HashAlgorithm algo) {
  const auto ps = static_cast<size_t>(state.range(0));
  const auto tokens = make_tokens(ps * kChain);
  const PageHasher hasher(algo);
  const PageExtraKeys keys{.lora_id = 3};
  for (auto _ : state) {
    PageHash h = hasher.hash_page(nullptr, std::span(tokens).first(ps), keys);
    for (size_t i = 1; i < kChain; ++i) {
      h = hasher.hash_page(&h, std::span(tokens).subspan(i * ps, ps), keys);
    }
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations() * kChain);
}

// Baseline: one digest call over a message as long as a page's (parent + count + tokens +
// LoRA key), chained through the previous digest, without any encoding or validation.
size_t message_bytes(size_t ps, size_t digest) { return digest + 4 + 4 * ps + 9; }

void BM_BareXxh3(benchmark::State& state) {
  const auto ps = static_cast<size_t>(state.range(0));
  std::vector<unsigned char> msg(message_bytes(ps, 16) * kChain, 0x5a);
  const size_t len = message_bytes(ps, 16);
  for (auto _ : state) {
    XXH128_hash_t h{};
    for (size_t i = 0; i < kChain; ++i) {
      // Chained like the real thing: each message starts with the previous digest.
      std::memcpy(msg.data() + i * len, &h, sizeof(h));
      h = XXH3_128bits(msg.data() + i * len, len);
    }
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations() * kChain);
}

void BM_BareSha256(benchmark::State& state) {
  const auto ps = static_cast<size_t>(state.range(0));
  const size_t len = message_bytes(ps, 32);
  std::vector<unsigned char> msg(len * kChain, 0x5a);
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char out[32] = {};
  unsigned int out_len = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kChain; ++i) {
      std::memcpy(msg.data() + i * len, out, sizeof(out));
      EVP_DigestInit_ex2(ctx, md, nullptr);
      EVP_DigestUpdate(ctx, msg.data() + i * len, len);
      EVP_DigestFinal_ex(ctx, out, &out_len);
      benchmark::DoNotOptimize(out);
    }
  }
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
  state.SetItemsProcessed(state.iterations() * kChain);
}

// The common shortcut of one EVP_Digest call per page (a context allocation each time).
void BM_OneShotEvpDigestSha256(benchmark::State& state) {
  const auto ps = static_cast<size_t>(state.range(0));
  const size_t len = message_bytes(ps, 32);
  std::vector<unsigned char> msg(len * kChain, 0x5a);
  unsigned char out[32];
  unsigned int out_len = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kChain; ++i) {
      EVP_Digest(msg.data() + i * len, len, out, &out_len, EVP_sha256(), nullptr);
      benchmark::DoNotOptimize(out);
    }
  }
  state.SetItemsProcessed(state.iterations() * kChain);
}

// A 4096-token prompt: construct the request and hash its 256 full pages (page size 16).
void BM_RequestPromptHashes(benchmark::State& state, HashAlgorithm algo) {
  const auto prompt = make_tokens(4096);
  RequestOptions opts;
  opts.cache_salt = "tenant";
  opts.hash_algorithm = algo;
  for (auto _ : state) {
    Request req("bench", prompt, opts);
    benchmark::DoNotOptimize(req.page_hashes(16).back());
  }
  state.SetItemsProcessed(state.iterations() * 256);
}

// Decode: a 4096-token prompt whose page-16 hashes are tracked, then 512 output tokens
// appended one at a time (32 more pages hashed eagerly as they fill).
void BM_RequestDecodeAppend(benchmark::State& state) {
  const auto prompt = make_tokens(4096);
  for (auto _ : state) {
    state.PauseTiming();
    Request req("bench", prompt);
    (void)req.page_hashes(16);
    state.ResumeTiming();
    for (TokenId t = 0; t < 512; ++t) req.append_output_token_ids(std::span(&t, 1));
    benchmark::DoNotOptimize(req.page_hashes(16).back());
  }
  state.SetItemsProcessed(state.iterations() * 512);  // tokens appended
}

BENCHMARK_CAPTURE(BM_HashPageChain, xxh3_128, HashAlgorithm::kXxh3_128)->Arg(16)->Arg(128);
BENCHMARK(BM_BareXxh3)->Arg(16)->Arg(128);
BENCHMARK_CAPTURE(BM_HashPageChain, sha256, HashAlgorithm::kSha256)->Arg(16)->Arg(128);
BENCHMARK(BM_BareSha256)->Arg(16)->Arg(128);
BENCHMARK(BM_OneShotEvpDigestSha256)->Arg(16)->Arg(128);
BENCHMARK_CAPTURE(BM_RequestPromptHashes, xxh3_128, HashAlgorithm::kXxh3_128);
BENCHMARK_CAPTURE(BM_RequestPromptHashes, sha256, HashAlgorithm::kSha256);
BENCHMARK(BM_RequestDecodeAppend);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
