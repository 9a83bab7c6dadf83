// Bitwise properties of paged attention: batch invariance (companions, position in the batch,
// thread count, split-KV or not), and layout / page-table / page-placement / workspace
// independence. These compare a computation with itself, so equality is exact.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>

#include "attention_test_util.h"

namespace pagedkv::testing {
namespace {

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Restores the OpenMP thread count when a test ends.
class ThreadGuard {
 public:
  ThreadGuard() : saved_(omp_get_max_threads()) {}
  ~ThreadGuard() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

// Runs the requests `order` (indices into tb) as one batch; returns request `target`'s rows.
std::vector<float> run_subset(const TestCache& cache, const TestBatch& tb,
                              const std::vector<int>& order, int target,
                              const AttentionOptions& opt, bool bf16_query = false) {
  const int32_t row = tb.num_q_heads * tb.head_dim;
  std::vector<int32_t> qsl = {0}, lens;
  std::vector<float> query;
  std::vector<uint16_t> query_bf16;
  std::vector<int32_t> table;
  int32_t mp = 1;
  for (int b : order) mp = std::max<int32_t>(mp, static_cast<int32_t>(tb.pages[b].size()));
  int64_t target_begin = -1;
  for (int b : order) {
    const int32_t q0 = tb.query_start_loc[b], q1 = tb.query_start_loc[b + 1];
    if (b == target) target_begin = qsl.back();
    qsl.push_back(qsl.back() + (q1 - q0));
    lens.push_back(tb.seq_lens[b]);
    query.insert(query.end(), tb.query.begin() + int64_t{q0} * row,
                 tb.query.begin() + int64_t{q1} * row);
    query_bf16.insert(query_bf16.end(), tb.query_bf16.begin() + int64_t{q0} * row,
                      tb.query_bf16.begin() + int64_t{q1} * row);
    std::vector<int32_t> r = tb.pages[b];
    r.resize(mp, 0);
    table.insert(table.end(), r.begin(), r.end());
  }
  std::vector<float> out(query.size());
  const ConstTokenTensor q =
      bf16_query
          ? ConstTokenTensor::bf16(query_bf16.data(), qsl.back(), tb.num_q_heads, tb.head_dim)
          : ConstTokenTensor::f32(query.data(), qsl.back(), tb.num_q_heads, tb.head_dim);
  paged_attention(cache.view(), q, {qsl, lens, PageTableRef::dense(table, mp)}, opt, out);
  const int32_t n = tb.query_start_loc[target + 1] - tb.query_start_loc[target];
  return {out.begin() + target_begin * row, out.begin() + (target_begin + n) * row};
}

TEST(AttentionInvariance, RequestOutputIsBitwiseIdenticalWhateverTheBatchAndThreadCount) {
  IsaCapGuard isa_guard;
  ThreadGuard thread_guard;
  TestCache cache(KVLayout::kHND, DType::kBFloat16, 300, 16, 2, 64);
  // 0: long decode (split across threads when alone), 1: chunked prefill, 2: full prefill,
  // 3..: companions.
  const TestBatch tb = make_batch(
      cache, {{1, 1500}, {40, 600}, {100, 260}, {1, 40}, {1, 900}, {24, 280}, {5, 30}}, 8,
      /*seed=*/11);
  std::vector<AttentionOptions> options = {
      {.scale = 0.3f, .sliding_window = 300, .soft_cap = 2.0f}};
  if (kOptimizedBuild) options.push_back({.scale = 0.3f});
  for (const AttentionOptions& opt : options) {
    for (Isa isa : isa_levels()) {
      set_isa_cap(isa);
      // The best ISA gets the full matrix; lower levels (and unoptimized builds) a sample.
      const bool full = kOptimizedBuild && isa == isa_levels().back();
      for (int target : {0, 1, 2}) {
        // bf16 queries on the decode target (bf16 x bf16 pair dot products where supported).
        const bool bf16 = target == 0;
        omp_set_num_threads(1);
        const std::vector<float> alone = run_subset(cache, tb, {target}, target, opt, bf16);
        std::vector<std::vector<int>> batches = {{3, 4, 5, 6, target}};
        if (full) batches.insert(batches.end(), {{target, 3}, {5, target, 6}});
        for (int threads : full ? std::vector<int>{1, 2, 3} : std::vector<int>{1, 3}) {
          omp_set_num_threads(threads);
          EXPECT_TRUE(bitwise_equal(alone, run_subset(cache, tb, {target}, target, opt, bf16)))
              << "isa " << isa_name(isa) << " target " << target << " threads " << threads;
          for (const auto& order : batches) {
            EXPECT_TRUE(bitwise_equal(alone, run_subset(cache, tb, order, target, opt, bf16)))
                << "isa " << isa_name(isa) << " target " << target << " threads " << threads
                << " batch of " << order.size();
          }
        }
      }
    }
  }
}

TEST(AttentionInvariance, HndAndNhdLayoutsGiveBitwiseIdenticalOutputs) {
  for (DType dt :
       {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}) {
    TestCache hnd(KVLayout::kHND, dt, 60, 16, 2, 128);
    TestCache nhd(KVLayout::kNHD, dt, 60, 16, 2, 128);
    const std::vector<TestRequest> reqs = {{1, 300}, {40, 280}, {1, 17}, {3, 200}};
    const TestBatch a = make_batch(hnd, reqs, 8, /*seed=*/3);
    const TestBatch b = make_batch(nhd, reqs, 8, /*seed=*/3);
    const AttentionOptions opt{.scale = 0.2f, .sliding_window = 100};
    EXPECT_TRUE(bitwise_equal(run_attention(hnd, a, opt), run_attention(nhd, b, opt)))
        << dtype_name(dt);
  }
}

TEST(AttentionInvariance, DenseAndCsrPageTablesGiveBitwiseIdenticalOutputs) {
  TestCache cache(KVLayout::kNHD, DType::kFloat16, 80, 8, 2, 64);
  const TestBatch tb = make_batch(cache, {{1, 300}, {20, 100}, {2, 9}}, 4, /*seed=*/4);
  const AttentionOptions opt{.scale = 0.2f};
  EXPECT_TRUE(bitwise_equal(run_attention(cache, tb, opt, false, false),
                            run_attention(cache, tb, opt, false, true)));
}

TEST(AttentionInvariance, ShuffledAndContiguousPagesGiveBitwiseIdenticalOutputs) {
  for (int32_t ps : {1, 16, 128}) {
    TestCache paged(KVLayout::kHND, DType::kFloat32, 1200 / ps + 4, ps, 2, 64);
    TestCache contiguous(KVLayout::kHND, DType::kFloat32, 1200 / ps + 4, ps, 2, 64);
    const std::vector<TestRequest> reqs = {{1, 700}, {64, 400}};
    const TestBatch a = make_batch(paged, reqs, 8, /*seed=*/9, 1.0f, false);
    const TestBatch b = make_batch(contiguous, reqs, 8, /*seed=*/9, 1.0f, true);
    ASSERT_NE(a.pages, b.pages);
    const AttentionOptions opt{.scale = 0.2f};
    EXPECT_TRUE(bitwise_equal(run_attention(paged, a, opt), run_attention(contiguous, b, opt)))
        << "page size " << ps;
  }
}

// The same keys and values in pages of 1, 16 or 128 slots: attention reads them in key order
// whatever the page size, so the outputs are the same bits.
TEST(AttentionInvariance, PageSizesGiveBitwiseIdenticalOutputs) {
  const std::vector<TestRequest> reqs = {{1, 700}, {64, 400}, {1, 33}};
  constexpr int32_t kHeads = 2, kDim = 64;
  for (DType dt :
       {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}) {
    TestCache base(KVLayout::kHND, dt, 1200 / 16 + 4, 16, kHeads, kDim);
    const TestBatch a = make_batch(base, reqs, 8, /*seed=*/12);
    const AttentionOptions opt{.scale = 0.2f};
    const std::vector<float> want = run_attention(base, a, opt);
    for (int32_t ps : {1, 128}) {
      TestCache other(KVLayout::kHND, dt, 1200 / ps + 4, ps, kHeads, kDim);
      TestBatch b = a;
      int32_t next_page = 1;
      for (size_t r = 0; r < reqs.size(); ++r) {
        const int32_t len = reqs[r].seq_len;
        b.pages[r].resize(static_cast<size_t>((len + ps - 1) / ps));
        for (int32_t& page : b.pages[r]) page = next_page++;
        for (int32_t pos = 0; pos < len; ++pos) {
          const int64_t slot = int64_t{b.pages[r][static_cast<size_t>(pos / ps)]} * ps + pos % ps;
          for (int32_t h = 0; h < kHeads; ++h) {
            const auto at = static_cast<size_t>((pos * kHeads + h) * kDim);
            other.set(slot, h, true, a.k_truth[r].data() + at);
            other.set(slot, h, false, a.v_truth[r].data() + at);
          }
        }
      }
      EXPECT_TRUE(bitwise_equal(run_attention(other, b, opt), want))
          << dtype_name(dt) << " page size " << ps;
    }
  }
}

TEST(AttentionInvariance, ReusedWorkspaceGivesTheSameBitsAsAFreshOne) {
  TestCache small(KVLayout::kHND, DType::kFloat32, 20, 16, 1, 64);
  TestCache big(KVLayout::kNHD, DType::kBFloat16, 60, 16, 2, 256);
  const TestBatch a = make_batch(small, {{1, 100}, {10, 50}}, 4, /*seed=*/1);
  const TestBatch b = make_batch(big, {{100, 300}, {1, 500}}, 16, /*seed=*/2);
  const AttentionOptions opt{.scale = 0.1f};
  int32_t mp = 0;
  const std::vector<int32_t> table = a.dense_table(&mp);
  const AttentionBatch batch{a.query_start_loc, a.seq_lens, PageTableRef::dense(table, mp)};
  const ConstTokenTensor q = ConstTokenTensor::f32(a.query.data(), a.num_tokens(), 4, 64);
  AttentionWorkspace ws;
  std::vector<float> first(a.query.size()), again(a.query.size());
  paged_attention(small.view(), q, batch, opt, first, ws);
  int32_t mp_b = 0;
  const std::vector<int32_t> table_b = b.dense_table(&mp_b);
  std::vector<float> out_b(b.query.size());
  paged_attention(big.view(), ConstTokenTensor::f32(b.query.data(), b.num_tokens(), 16, 256),
                  {b.query_start_loc, b.seq_lens, PageTableRef::dense(table_b, mp_b)}, opt, out_b,
                  ws);
  paged_attention(small.view(), q, batch, opt, again, ws);
  EXPECT_TRUE(bitwise_equal(first, again));
  EXPECT_TRUE(bitwise_equal(first, run_attention(small, a, opt)));
}

}  // namespace
}  // namespace pagedkv::testing
