// Steady-state paged_attention calls do not touch the heap: once a workspace has served a call
// shape, repeating it (on any thread count it has seen) allocates nothing. Counted through the
// replaceable global operator new of this test binary.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "attention_test_util.h"

// The replacements below pair operator new with malloc and operator delete with free; GCC's
// inlining under -O2 with sanitizers cannot see that pairing and would warn at every delete.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace pagedkv::testing {
namespace {

TEST(AttentionAllocation, SteadyStateCallsDoNotAllocate) {
  const int saved_threads = omp_get_max_threads();
  TestCache cache(KVLayout::kNHD, DType::kBFloat16, 120, 16, 2, 64);
  // A lone long decode (split across threads) and a mixed batch (prefill tiles, no split).
  const TestBatch decode = make_batch(cache, {{1, 900}}, 8, /*seed=*/1);
  const TestBatch mixed = make_batch(cache, {{1, 300}, {70, 400}, {3, 9}}, 8, /*seed=*/2);
  AttentionWorkspace ws;
  for (const TestBatch* tb : {&decode, &mixed}) {
    int32_t mp = 0;
    const std::vector<int32_t> table = tb->dense_table(&mp);
    const AttentionBatch batch{tb->query_start_loc, tb->seq_lens, PageTableRef::dense(table, mp)};
    const ConstTokenTensor q = ConstTokenTensor::f32(tb->query.data(), tb->num_tokens(), 8, 64);
    std::vector<float> out(tb->query.size());
    const AttentionOptions opt{.scale = 0.125f, .sliding_window = 500};
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      const long fresh = g_allocations.load();
      paged_attention(cache.view(), q, batch, opt, out, ws);  // grows the workspace
      if (tb == &decode && threads == 1) {
        EXPECT_GT(g_allocations.load() - fresh, 0);  // the counter sees the first growth
      }
      const long before = g_allocations.load();
      for (int i = 0; i < 3; ++i) paged_attention(cache.view(), q, batch, opt, out, ws);
      EXPECT_EQ(g_allocations.load() - before, 0) << "threads " << threads;
    }
  }
  omp_set_num_threads(saved_threads);
}

}  // namespace
}  // namespace pagedkv::testing
