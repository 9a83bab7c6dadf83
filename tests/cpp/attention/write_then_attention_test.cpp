// End to end through the real storage: a PagedKVCache sized by its metadata, keys/values
// written by write_slots (context first, then the step's new tokens), then paged_attention over
// a mixed batch equals dense float64 attention over the same keys/values - for every layout and
// cache dtype (quantized dtypes within their documented error).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/kv_cache/kv_cache_write.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"
#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"

namespace pagedkv {
namespace {

constexpr int32_t kPageSize = 16, kKvHeads = 2, kQHeads = 4, kDim = 64;

// Error bound against the unquantized data (|K|, |V|, |Q| <= 1; paged_attention.h accuracy).
double tolerance(DType t) {
  switch (t) {
    case DType::kFloat32: return 2e-5;
    case DType::kFloat16: return 1e-3;
    case DType::kBFloat16: return 8e-3;
    case DType::kInt8: return 1.5e-2;
    case DType::kFp8E4M3: return 6e-2;
  }
  return 0.0;
}

class WriteThenAttention : public ::testing::TestWithParam<std::tuple<KVLayout, DType>> {};

TEST_P(WriteThenAttention, EqualsDenseAttentionOverTheWrittenKeysAndValues) {
  const auto [layout, dtype] = GetParam();
  PagedKVCacheConfig cfg;
  cfg.batch_size = 4;
  cfg.num_hidden_layers = 2;
  cfg.max_sequences = 512;
  cfg.page_size = kPageSize;
  cfg.num_kv_heads = kKvHeads;
  cfg.kv_head_dim_size = kDim;
  cfg.hbm_utilization = 1.0;
  cfg.dtype = dtype;
  cfg.layout = layout;
  cfg.memory_budget_bytes = 8u << 20;
  const PagedKVCacheMetadata md = PagedKVCacheMetadata::create(cfg);
  PagedKVCache cache(md);
  const PagedKVView view = cache.view(1);

  // Two decodes and a chunked prefill (21 new tokens on top of 49 cached ones).
  const std::vector<int32_t> seq_lens = {37, 1, 70};
  const std::vector<int32_t> q_lens = {1, 1, 21};
  const int32_t B = 3;
  std::mt19937 rng(1234 + static_cast<int>(dtype) * 7 + static_cast<int>(layout));
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<int32_t> ids(md.num_pages_per_layer - 1);
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), rng);

  int32_t max_pages = 0;
  for (int32_t s : seq_lens) max_pages = std::max(max_pages, (s + kPageSize - 1) / kPageSize);
  std::vector<int32_t> table(static_cast<size_t>(B) * max_pages, 0);
  std::vector<std::vector<float>> k(B), v(B);  // [seq, kv_heads, dim] per request
  size_t next = 0;
  for (int32_t b = 0; b < B; ++b) {
    for (int32_t p = 0; p < (seq_lens[b] + kPageSize - 1) / kPageSize; ++p)
      table[static_cast<size_t>(b) * max_pages + p] = ids[next++];
    k[b].resize(static_cast<size_t>(seq_lens[b]) * kKvHeads * kDim);
    v[b].resize(k[b].size());
    for (float& x : k[b]) x = uni(rng);
    for (float& x : v[b]) x = uni(rng);
  }

  // Writes the positions [from, to) of every request in one write_slots call.
  auto write = [&](bool context) {
    std::vector<float> key, value;
    std::vector<int64_t> slots;
    for (int32_t b = 0; b < B; ++b) {
      const int32_t from = context ? 0 : seq_lens[b] - q_lens[b];
      const int32_t to = context ? seq_lens[b] - q_lens[b] : seq_lens[b];
      for (int32_t pos = from; pos < to; ++pos) {
        const int64_t page = table[static_cast<size_t>(b) * max_pages + pos / kPageSize];
        slots.push_back(page * kPageSize + pos % kPageSize);
        const size_t off = static_cast<size_t>(pos) * kKvHeads * kDim;
        key.insert(key.end(), k[b].begin() + off, k[b].begin() + off + kKvHeads * kDim);
        value.insert(value.end(), v[b].begin() + off, v[b].begin() + off + kKvHeads * kDim);
      }
      slots.push_back(-1);  // a padding token between requests is skipped
      key.resize(key.size() + kKvHeads * kDim, 9.0f);
      value.resize(value.size() + kKvHeads * kDim, 9.0f);
    }
    const int64_t rows = static_cast<int64_t>(slots.size());
    write_slots(view, {key.data(), DType::kFloat32, rows, kKvHeads, kDim},
                {value.data(), DType::kFloat32, rows, kKvHeads, kDim}, slots);
  };
  write(/*context=*/true);
  write(/*context=*/false);

  std::vector<int32_t> qsl = {0};
  for (int32_t q : q_lens) qsl.push_back(qsl.back() + q);
  const int32_t tokens = qsl.back();
  std::vector<float> q(static_cast<size_t>(tokens) * kQHeads * kDim);
  for (float& x : q) x = uni(rng);
  std::vector<float> out(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(kDim));
  AttentionBatch batch{qsl, seq_lens, PageTableRef::dense(table, max_pages)};
  paged_attention(view, ConstTokenTensor::f32(q.data(), tokens, kQHeads, kDim), batch,
                  AttentionOptions{.scale = scale}, out);

  double worst = 0.0;
  for (int32_t b = 0; b < B; ++b) {
    for (int32_t t = 0; t < q_lens[b]; ++t) {
      const int32_t tok = qsl[b] + t, pos = seq_lens[b] - q_lens[b] + t;
      for (int32_t qh = 0; qh < kQHeads; ++qh) {
        const int32_t h = qh / (kQHeads / kKvHeads);
        const float* qv = q.data() + (static_cast<size_t>(tok) * kQHeads + qh) * kDim;
        std::vector<double> w(pos + 1);
        double mx = -1e300, sum = 0.0;
        for (int32_t j = 0; j <= pos; ++j) {
          const float* kj = k[b].data() + (static_cast<size_t>(j) * kKvHeads + h) * kDim;
          double dot = 0.0;
          for (int32_t d = 0; d < kDim; ++d) dot += double{qv[d]} * kj[d];
          w[j] = dot * scale;
          mx = std::max(mx, w[j]);
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int32_t d = 0; d < kDim; ++d) {
          double ref = 0.0;
          for (int32_t j = 0; j <= pos; ++j)
            ref += w[j] / sum * v[b][(static_cast<size_t>(j) * kKvHeads + h) * kDim + d];
          const float got = out[(static_cast<size_t>(tok) * kQHeads + qh) * kDim + d];
          worst = std::max(worst, std::fabs(got - ref));
        }
      }
    }
  }
  EXPECT_LE(worst, tolerance(dtype)) << dtype_name(dtype);
  cache.verify();
}

INSTANTIATE_TEST_SUITE_P(LayoutsAndDtypes, WriteThenAttention,
                         ::testing::Combine(::testing::Values(KVLayout::kHND, KVLayout::kNHD),
                                            ::testing::Values(DType::kFloat32, DType::kFloat16,
                                                              DType::kBFloat16, DType::kInt8,
                                                              DType::kFp8E4M3)));

}  // namespace
}  // namespace pagedkv
