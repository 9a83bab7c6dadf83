// After a warm-up, build(), split_sampled_tokens() and update_from_sampled() do not allocate
// over steady decode steps of a stable batch (page boundaries included). Global operator
// new/delete are replaced in this binary and count while `g_counting` is set.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "pagedkv/model_io/model_input_builder.h"
#include "pagedkv/scheduler/scheduler.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};

void* counted_alloc(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) { return counted_alloc(size); }
void* operator new[](std::size_t size) { return counted_alloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace pagedkv {
namespace {

TEST(ModelInputAllocation, SteadyDecodeStepsDoNotAllocate) {
  constexpr int32_t kReqs = 8, kPageSize = 16, kMaxModelLen = 512;
  KVCacheManager manager(/*num_pages=*/512, kPageSize, kMaxModelLen);
  SchedulerConfig sc;
  sc.max_num_seqs = kReqs;
  sc.max_num_batched_tokens = 256;
  sc.max_model_len = kMaxModelLen;
  Scheduler scheduler(sc, manager);
  ModelInputBuilder builder({.max_num_reqs = kReqs,
                             .max_model_len = kMaxModelLen,
                             .max_num_batched_tokens = 256,
                             .page_sizes = {kPageSize}});
  for (int32_t r = 0; r < kReqs; ++r) {
    std::vector<TokenId> prompt(static_cast<size_t>(20 + r));
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = 100 + r * 50 + static_cast<int32_t>(i);
    SamplingParams params;
    params.max_tokens = 400;
    scheduler.add_request(Request("request-with-a-long-id-" + std::to_string(r), prompt), params);
  }
  SchedulerOutput out;
  std::vector<TokenId> sampled;
  std::vector<std::vector<TokenId>> split;
  int64_t allocations = 0, steps = 0, logits_rows = 0;
  for (int32_t step = 0; step < 140; ++step) {
    scheduler.schedule(out);
    const bool measure = step >= 40;  // prefills and the first page boundaries are warm-up
    if (measure) {
      sampled.reserve(kReqs);
      g_allocations = 0;
      g_counting = true;
    }
    const ModelInput& in = builder.build(out);
    sampled.assign(static_cast<size_t>(in.num_logits()), 7 + step);
    split_sampled_tokens(in, sampled, split);
    builder.update_from_sampled(out, split);
    if (measure) {
      g_counting = false;
      allocations += g_allocations.load();
      ++steps;
      logits_rows += in.num_logits();
      ASSERT_EQ(in.num_reqs, kReqs);
    }
    scheduler.update_from_output(out, split);
    builder.verify();
  }
  EXPECT_EQ(steps, 100);
  EXPECT_EQ(logits_rows, 100 * kReqs);
  EXPECT_EQ(allocations, 0) << "allocations over " << steps << " steady decode steps";
}

// The counter works: a build that tracks new requests allocates (their ids enter the index).
TEST(ModelInputAllocation, CounterSeesTheFirstBuild) {
  KVCacheManager manager(/*num_pages=*/64, 16, 256);
  SchedulerConfig sc;
  sc.max_num_seqs = 4;
  sc.max_num_batched_tokens = 128;
  sc.max_model_len = 256;
  Scheduler scheduler(sc, manager);
  ModelInputBuilder builder(
      {.max_num_reqs = 4, .max_model_len = 256, .max_num_batched_tokens = 128, .page_sizes = {16}});
  scheduler.add_request(Request("a", std::vector<TokenId>(30, 5)), SamplingParams{});
  SchedulerOutput out = scheduler.schedule();
  g_allocations = 0;
  g_counting = true;
  builder.build(out);
  g_counting = false;
  EXPECT_GT(g_allocations.load(), 0);
}

}  // namespace
}  // namespace pagedkv
