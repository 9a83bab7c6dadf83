// Page-table and batch-layout costs at serving shapes: 256 running requests, max_model_len
// 8192 with 16-token pages (512 columns), an 8192-token step budget.
//
// Each pagedkv benchmark has a *Naive* baseline doing the same data movement with no
// validation and no invariants (raw loops over a plain 2-D vector), measured in the same run;
// the ratio is the price of the checks and the page-table invariants.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "pagedkv/page_table/batch_layout.h"
#include "pagedkv/page_table/page_table.h"

namespace pagedkv {
namespace {

constexpr int32_t kReqs = 256;
constexpr int32_t kPageSize = 16;
constexpr int32_t kCols = 8192 / kPageSize;
constexpr int32_t kBudget = 8192;
constexpr int32_t kPagesPerStep = 64;  // a 1024-token prefill chunk per request

std::vector<std::vector<PageId>> random_ids(int32_t rows, int32_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<PageId> page(1, 1 << 20);
  std::vector<std::vector<PageId>> ids(static_cast<size_t>(rows));
  for (auto& r : ids) {
    r.resize(static_cast<size_t>(n));
    for (auto& p : r) p = page(rng);
  }
  return ids;
}

// ---- append_row + commit for 256 requests ----------------------------------------------------

void BM_AppendRowCommit(benchmark::State& state) {
  PageTable table(kReqs, kCols, kBudget);
  const auto ids = random_ids(kReqs, kPagesPerStep, 1);
  for (auto _ : state) {
    for (int32_t r = 0; r < kReqs; ++r) {
      table.add_row(std::span<const PageId>{}, r);  // reset the slot, as a new request would
      table.append_row(ids[static_cast<size_t>(r)], r);
    }
    table.commit(kReqs);
    benchmark::DoNotOptimize(table.get_device_tensor().data);
  }
  state.SetItemsProcessed(state.iterations() * kReqs);
}
BENCHMARK(BM_AppendRowCommit);

void BM_AppendRowCommitNaive(benchmark::State& state) {
  std::vector<PageId> staging(static_cast<size_t>(kReqs) * kCols), device(staging.size());
  std::vector<int32_t> counts(kReqs);
  const auto ids = random_ids(kReqs, kPagesPerStep, 1);
  for (auto _ : state) {
    for (int32_t r = 0; r < kReqs; ++r) {
      PageId* row = staging.data() + static_cast<size_t>(r) * kCols;
      std::fill(row, row + counts[static_cast<size_t>(r)], 0);
      const auto& v = ids[static_cast<size_t>(r)];
      std::copy(v.begin(), v.end(), row);
      counts[static_cast<size_t>(r)] = static_cast<int32_t>(v.size());
    }
    std::memcpy(device.data(), staging.data(), staging.size() * sizeof(PageId));
    benchmark::DoNotOptimize(device.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kReqs);
}
BENCHMARK(BM_AppendRowCommitNaive);

// ---- slot mapping for 8192 tokens ------------------------------------------------------------

struct SlotBatch {
  PageTable table{kReqs, kCols, kBudget};
  std::vector<int32_t> rows, starts, counts;
  std::vector<int64_t> out = std::vector<int64_t>(kBudget);

  SlotBatch() {
    // 256 requests x 32 new tokens at random (unaligned) positions inside 64 held pages.
    const auto ids = random_ids(kReqs, kPagesPerStep, 2);
    std::mt19937 rng(3);
    std::uniform_int_distribution<int32_t> start(0, kPagesPerStep * kPageSize - 32);
    for (int32_t r = 0; r < kReqs; ++r) {
      table.add_row(ids[static_cast<size_t>(r)], r);
      rows.push_back(r);
      starts.push_back(start(rng));
      counts.push_back(kBudget / kReqs);
    }
  }
};

void BM_SlotMapping(benchmark::State& state) {
  SlotBatch b;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        compute_slot_mapping(b.table, kPageSize, {b.rows, b.starts, b.counts}, b.out));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kBudget);
}
BENCHMARK(BM_SlotMapping);

void BM_SlotMappingNaive(benchmark::State& state) {
  SlotBatch b;
  const PageTableView t = b.table.get_cpu_tensor();
  for (auto _ : state) {
    size_t k = 0;
    for (size_t i = 0; i < b.rows.size(); ++i) {
      for (int32_t pos = b.starts[i]; pos < b.starts[i] + b.counts[i]; ++pos) {
        b.out[k++] = int64_t{t(b.rows[i], pos / kPageSize)} * kPageSize + pos % kPageSize;
      }
    }
    std::fill(b.out.begin() + static_cast<std::ptrdiff_t>(k), b.out.end(), -1);
    benchmark::DoNotOptimize(b.out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kBudget);
}
BENCHMARK(BM_SlotMappingNaive);

// ---- FlashInfer export for 256 requests ------------------------------------------------------

struct ExportBatch {
  PageTable table{kReqs, kCols, kBudget};
  std::vector<int32_t> rows, lens;
  std::vector<int32_t> indptr = std::vector<int32_t>(kReqs + 1), last = std::vector<int32_t>(kReqs);
  std::vector<int32_t> indices = std::vector<int32_t>(static_cast<size_t>(kReqs) * kCols);

  ExportBatch() {
    // Decode batch: sequence lengths uniform in [1, 8192] (about 128k indices in total).
    const auto ids = random_ids(kReqs, kCols, 4);
    std::mt19937 rng(5);
    std::uniform_int_distribution<int32_t> len(1, kCols * kPageSize);
    for (int32_t r = 0; r < kReqs; ++r) {
      table.add_row(ids[static_cast<size_t>(r)], r);
      rows.push_back(r);
      lens.push_back(len(rng));
    }
  }
};

void BM_FlashInferExport(benchmark::State& state) {
  ExportBatch b;
  int64_t n = 0;
  for (auto _ : state) {
    n = export_flashinfer_layout(b.table, kPageSize, {b.rows, b.lens},
                                 {b.indptr, b.indices, b.last});
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kReqs);
  state.counters["indices"] = static_cast<double>(n);
}
BENCHMARK(BM_FlashInferExport);

void BM_FlashInferExportNaive(benchmark::State& state) {
  ExportBatch b;
  const PageTableView t = b.table.get_cpu_tensor();
  for (auto _ : state) {
    int32_t k = 0;
    b.indptr[0] = 0;
    for (size_t i = 0; i < b.rows.size(); ++i) {
      const int32_t pages = (b.lens[i] + kPageSize - 1) / kPageSize;
      for (int32_t p = 0; p < pages; ++p) b.indices[static_cast<size_t>(k++)] = t(b.rows[i], p);
      b.indptr[i + 1] = k;
      b.last[i] = b.lens[i] - (pages - 1) * kPageSize;
    }
    benchmark::DoNotOptimize(k);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kReqs);
}
BENCHMARK(BM_FlashInferExportNaive);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
