#include "pagedkv/model/token_scorer.h"

#include <algorithm>
#include <numeric>

#include "pagedkv/common/errors.h"
#include "pagedkv/common/splitmix.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"

namespace pagedkv {

namespace {

// Pages 1..n in a seeded Fisher-Yates order (splitmix64 draws), identity for seed 0.
std::vector<int32_t> page_order(int32_t n, uint64_t seed) {
  std::vector<int32_t> pages(static_cast<size_t>(n));
  std::iota(pages.begin(), pages.end(), 1);
  if (seed == 0) return pages;
  uint64_t state = seed;
  auto next = [&state] { return splitmix64_mix(state += kSplitmix64Gamma); };
  for (int32_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int32_t>(next() % static_cast<uint64_t>(i + 1));
    std::swap(pages[static_cast<size_t>(i)], pages[static_cast<size_t>(j)]);
  }
  return pages;
}

}  // namespace

std::vector<float> score_tokens(LlamaModel& model, std::span<const TokenId> tokens,
                                const ScoreOptions& o) {
  const auto n = static_cast<int32_t>(tokens.size());
  PAGEDKV_CHECK_ARG(n > 0, "score_tokens needs at least one token, got 0");
  PAGEDKV_CHECK_ARG(o.page_size > 0, "page_size must be > 0, got {}", o.page_size);
  PAGEDKV_CHECK_ARG(o.chunk_size >= 0, "chunk_size must be >= 0, got {}", o.chunk_size);
  const int32_t num_seq_pages = (n + o.page_size - 1) / o.page_size;
  PagedKVCache cache(model.kv_cache_metadata(num_seq_pages + 1, o.page_size, o.kv_cache_dtype, n));
  const std::vector<int32_t> pages = page_order(num_seq_pages, o.page_order_seed);
  std::vector<int64_t> slots(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    slots[static_cast<size_t>(i)] =
        int64_t{pages[static_cast<size_t>(i / o.page_size)]} * o.page_size + i % o.page_size;
  }
  std::vector<int32_t> positions(static_cast<size_t>(n));
  std::iota(positions.begin(), positions.end(), 0);
  const int64_t vocab = model.vocab_size();
  std::vector<float> logits(static_cast<size_t>(n * vocab));
  const int32_t chunk = o.chunk_size == 0 ? n : o.chunk_size;
  std::vector<int32_t> rows;
  for (int32_t start = 0; start < n; start += chunk) {
    const int32_t len = std::min(chunk, n - start);
    const std::vector<int32_t> qsl = {0, len};
    const std::vector<int32_t> seq_lens = {start + len};
    rows.resize(static_cast<size_t>(len));
    std::iota(rows.begin(), rows.end(), 0);
    AttentionBatch attention{qsl, seq_lens, PageTableRef::dense(pages, num_seq_pages)};
    ForwardBatch batch{tokens.subspan(static_cast<size_t>(start), static_cast<size_t>(len)),
                       std::span<const int32_t>(positions).subspan(static_cast<size_t>(start),
                                                                   static_cast<size_t>(len)),
                       attention,
                       std::span<const int64_t>(slots).subspan(static_cast<size_t>(start),
                                                               static_cast<size_t>(len)),
                       rows};
    model.forward(batch, cache,
                  std::span<float>(logits).subspan(static_cast<size_t>(start * vocab),
                                                   static_cast<size_t>(len * vocab)));
  }
  return logits;
}

}  // namespace pagedkv
