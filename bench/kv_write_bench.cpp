// KV-cache write bandwidth: kv_cache_update (seed 003, NHD rows) and write_slots (HND and NHD)
// against memcpy of the same number of bytes, measured in the same run.
//
// Rows: model shapes (Llama-3-8B 8 kv heads x 128, Qwen2-7B 4 x 128, small 2 x 64) x page
// size {16, 128} x dtype {bf16, fp32} x step {2048-token prefill, 64-request decode}. Pages of
// each step are a random permutation of a cache twice as large, so writes scatter as in a
// serving engine. Bytes counted: K + V of the new tokens (what memcpy moves too).
// Also: write_slots quantizing fp32 input into bf16 / int8 / fp8 caches (Llama-3-8B shape).
//
// Run: kv_write_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// and compare bytes_per_second medians of each row with its memcpy/ row.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/compat/kv_cache_update.h"
#include "pagedkv/kv_cache/kv_cache_write.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"

namespace {

using namespace pagedkv;

struct Shape {
  const char* name;
  int32_t heads;
  int32_t dim;
};
constexpr Shape kShapes[] = {{"llama3_8b", 8, 128}, {"qwen2_7b", 4, 128}, {"small", 2, 64}};

// cached_tokens: each sequence's cache length is drawn from [cached_min, cached_max] (decodes
// at identical positions would all hit the same cache sets, which real batches do not).
struct Step {
  const char* name;
  int32_t seqs;
  int32_t new_tokens_per_seq;
  int32_t cached_min;
  int32_t cached_max;
};
constexpr Step kSteps[] = {{"prefill2048", 1, 2048, 0, 0}, {"decode64", 64, 1, 512, 1023}};

// One step of one layer: a cache, a page table per sequence, the new tokens and their slots.
struct Workload {
  PagedKVCacheMetadata md;
  std::vector<PageId> table;  // [seqs, pages_per_seq]
  int32_t pages_per_seq = 0;
  std::vector<int32_t> positions;  // [seqs] first new position
  std::vector<int32_t> counts;     // [seqs]
  std::vector<int64_t> slots;      // [tokens]
  int64_t tokens = 0;

  Workload(const Shape& shape, const Step& step, int32_t page_size, DType dtype, KVLayout layout) {
    const int32_t max_len = step.cached_max + step.new_tokens_per_seq;
    pages_per_seq = cdiv(max_len, page_size);
    const int64_t pages = 2 * int64_t{step.seqs} * pages_per_seq + 1;
    md.batch_size = step.seqs;
    md.num_hidden_layers = 1;
    md.max_sequences = max_len;
    md.num_pages_per_sequence = pages_per_seq;
    md.num_pages_per_layer = pages;
    md.page_size = page_size;
    md.num_kv_heads = shape.heads;
    md.kv_head_dim_size = shape.dim;
    md.hbm_utilization = 0.9;
    md.dtype = dtype;
    md.layout = layout;
    std::vector<PageId> perm(static_cast<size_t>(pages - 1));
    std::iota(perm.begin(), perm.end(), 1);
    std::mt19937 rng(7);
    std::shuffle(perm.begin(), perm.end(), rng);
    table.assign(perm.begin(), perm.begin() + int64_t{step.seqs} * pages_per_seq);
    std::uniform_int_distribution<int32_t> cached(step.cached_min, step.cached_max);
    for (int32_t s = 0; s < step.seqs; ++s) {
      const int32_t start = cached(rng);
      positions.push_back(start);
      counts.push_back(step.new_tokens_per_seq);
      for (int32_t i = 0; i < step.new_tokens_per_seq; ++i) {
        const int32_t pos = start + i;
        slots.push_back(int64_t{table[static_cast<size_t>(s * pages_per_seq + pos / page_size)]} *
                            page_size +
                        pos % page_size);
      }
    }
    tokens = static_cast<int64_t>(slots.size());
  }
  int64_t kv_bytes(DType in) const {
    return 2 * tokens * md.num_kv_heads * md.kv_head_dim_size *
           static_cast<int64_t>(dtype_size(in));
  }
};

std::vector<uint8_t> random_bytes(size_t n, DType dtype) {
  std::vector<uint8_t> b(n);
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  if (dtype == DType::kFloat32) {
    for (size_t i = 0; i + 4 <= n; i += 4) {
      const float f = d(rng);
      std::memcpy(&b[i], &f, 4);
    }
  } else {
    for (size_t i = 0; i + 2 <= n; i += 2) {
      const uint16_t h = float_to_bf16(d(rng));
      std::memcpy(&b[i], &h, 2);
    }
  }
  return b;
}

void bench_memcpy(benchmark::State& state, int64_t bytes) {
  std::vector<uint8_t> src(static_cast<size_t>(bytes), 1), dst(static_cast<size_t>(bytes), 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

void bench_update(benchmark::State& state, const Workload& w) {
  PagedKVCache cache(w.md);  // kNHD: rows [slots, 2 * heads, dim]
  const int32_t combined = 2 * w.md.num_kv_heads;
  const DType dt = w.md.dtype;
  const auto src = random_bytes(static_cast<size_t>(w.kv_bytes(dt)), dt);
  std::vector<int32_t> slices(
      static_cast<size_t>(3 * count_update_slices(w.positions, w.counts, w.md.page_size)));
  const int64_t n =
      build_update_slices(w.table, w.pages_per_seq, w.positions, w.counts, w.md.page_size, slices);
  const ConstTokenTensor in{src.data(), dt, w.tokens, combined, w.md.kv_head_dim_size};
  const TokenTensor out{cache.kv_pages(0), dt, cache.num_slots(), combined, w.md.kv_head_dim_size};
  kv_cache_update(in, slices, out, n, w.md.page_size);  // first touch of the pages: untimed
  for (auto _ : state) {
    kv_cache_update(in, slices, out, n, w.md.page_size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * w.kv_bytes(dt));
}

void bench_slots(benchmark::State& state, const Workload& w, DType input) {
  PagedKVCache cache(w.md);
  const auto bytes = static_cast<size_t>(w.kv_bytes(input) / 2);
  const auto key = random_bytes(bytes, input), value = random_bytes(bytes, input);
  const ConstTokenTensor k{key.data(), input, w.tokens, w.md.num_kv_heads, w.md.kv_head_dim_size};
  const ConstTokenTensor v{value.data(), input, w.tokens, w.md.num_kv_heads, w.md.kv_head_dim_size};
  const PagedKVView view = cache.view(0);
  write_slots(view, k, v, w.slots);  // first touch of the pages: untimed
  for (auto _ : state) {
    write_slots(view, k, v, w.slots);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * w.kv_bytes(input));
}

void register_all() {
  for (const Shape& shape : kShapes) {
    for (const Step& step : kSteps) {
      for (int32_t ps : {16, 128}) {
        for (DType dt : {DType::kBFloat16, DType::kFloat32}) {
          const std::string tag = fmt::format("{}/{}/ps{}/{}", shape.name, step.name, ps,
                                              dt == DType::kBFloat16 ? "bf16" : "fp32");
          const Workload nhd(shape, step, ps, dt, KVLayout::kNHD);
          const Workload hnd(shape, step, ps, dt, KVLayout::kHND);
          benchmark::RegisterBenchmark(("memcpy/" + tag).c_str(), bench_memcpy, nhd.kv_bytes(dt));
          benchmark::RegisterBenchmark(("kv_cache_update/" + tag).c_str(), bench_update, nhd);
          benchmark::RegisterBenchmark(("write_slots_nhd/" + tag).c_str(), bench_slots, nhd, dt);
          benchmark::RegisterBenchmark(("write_slots_hnd/" + tag).c_str(), bench_slots, hnd, dt);
        }
      }
    }
  }
  // Quantizing / converting writes: fp32 input into bf16, int8 and fp8 caches.
  for (const Step& step : kSteps) {
    for (DType cd : {DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}) {
      const Workload w(kShapes[0], step, 16, cd, KVLayout::kHND);
      benchmark::RegisterBenchmark(
          fmt::format("write_slots_hnd_from_fp32/llama3_8b/{}/ps16/{}", step.name, dtype_name(cd))
              .c_str(),
          bench_slots, w, DType::kFloat32);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  pagedkv::isa_cap_from_env();
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
