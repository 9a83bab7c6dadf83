// KV-cache write bandwidth: kv_cache_update (seed 003, NHD rows) and write_slots (HND and NHD)
// against memcpy of the same bytes, measured in the same run.
//
// Rows, named <kernel>/<shape>/<step>/ps<page size>/<cache dtype>[/in_<input dtype>]:
//   memcpy           one memcpy of the bytes (one thread)
//   memcpy_mt        the same bytes cut into one part per OpenMP thread (with 2+ threads only)
//   kv_cache_update  raw copy of [tokens, 2 * heads, dim] rows; input dtype = cache dtype (it
//                    copies the element codes of every dtype, int8 scales untouched)
//   write_slots_nhd, write_slots_hnd
//                    write_slots into a kNHD / kHND cache; in_<dtype> names the input: the
//                    cache dtype itself for float caches (a raw copy), and float32 (what the
//                    model writes) for float16 / bfloat16 (converted) and int8 / fp8_e4m3
//                    (quantized) caches.
// Shapes: Llama-3-8B (8 kv heads x 128), Qwen2-7B (4 x 128), small (2 x 64); steps: one
// 2048-token prefill and 64 one-token decodes; cache dtypes: float32, float16, bfloat16, int8,
// fp8_e4m3. Pages of each step are a random permutation of a cache twice as large, so writes
// scatter as in a serving engine.
//
// Bytes counted on every row ("the same bytes"): K + V of the new tokens in the cache dtype,
// i.e. the element bytes the write stores into the cache. memcpy rows copy exactly that many
// bytes. Not counted: the input bytes a converting write reads beyond them (a float32 input
// reads 4x the bytes of an int8 or fp8 cache, 2x those of a 16-bit one) and the int8 scales
// (4 bytes per head row, 3% of an int8 row of 128).
//
// Run, once per thread count:
//   OMP_NUM_THREADS=1 kv_write_bench --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true --benchmark_out=t1.json
// and compare bytes_per_second medians of each row with the faster of its memcpy/ and
// memcpy_mt/ rows (bench/kv_write_table.py t1.json t2.json prints that table).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <omp.h>

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

constexpr DType kCacheDtypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8,
                                  DType::kFp8E4M3};

// The inputs write_slots takes into a cache of dtype `cache` (see the header comment).
std::vector<DType> inputs_for(DType cache) {
  if (cache == DType::kFloat16 || cache == DType::kBFloat16) return {cache, DType::kFloat32};
  return {DType::kFloat32};
}

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
  // Bytes of K + V of the new tokens in dtype t.
  int64_t kv_bytes(DType t) const {
    return 2 * tokens * md.num_kv_heads * md.kv_head_dim_size * static_cast<int64_t>(dtype_size(t));
  }
};

// n bytes of N(0, 1) values in dtype (float32, float16 or bfloat16), or random codes.
std::vector<uint8_t> random_bytes(size_t n, DType dtype) {
  std::vector<uint8_t> b(n);
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const size_t es = dtype_size(dtype);
  for (size_t i = 0; i + es <= n; i += es) {
    const float f = d(rng);
    uint16_t h = 0;
    switch (dtype) {
      case DType::kFloat32: std::memcpy(&b[i], &f, 4); continue;
      case DType::kFloat16: h = float_to_fp16(f); break;
      case DType::kBFloat16: h = float_to_bf16(f); break;
      default: b[i] = static_cast<uint8_t>(rng()); continue;
    }
    std::memcpy(&b[i], &h, 2);
  }
  return b;
}

// split: one contiguous part per OpenMP thread, copied in parallel.
void bench_memcpy(benchmark::State& state, int64_t bytes, bool split) {
  std::vector<uint8_t> src(static_cast<size_t>(bytes), 1), dst(static_cast<size_t>(bytes), 0);
  const int parts = split ? omp_get_max_threads() : 1;
  for (auto _ : state) {
    if (split) {
#pragma omp parallel for schedule(static)
      for (int i = 0; i < parts; ++i) {
        const int64_t begin = bytes * i / parts, end = bytes * (i + 1) / parts;
        std::memcpy(dst.data() + begin, src.data() + begin, static_cast<size_t>(end - begin));
      }
    } else {
      std::memcpy(dst.data(), src.data(), src.size());
    }
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["threads"] = parts;
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
  state.counters["threads"] = omp_get_max_threads();
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
  state.SetBytesProcessed(state.iterations() * w.kv_bytes(w.md.dtype));
  state.counters["threads"] = omp_get_max_threads();
}

void register_case(const Shape& shape, const Step& step, int32_t ps, DType cd) {
  const std::string tag = fmt::format("{}/{}/ps{}/{}", shape.name, step.name, ps, dtype_name(cd));
  const Workload nhd(shape, step, ps, cd, KVLayout::kNHD);
  const Workload hnd(shape, step, ps, cd, KVLayout::kHND);
  const int64_t bytes = nhd.kv_bytes(cd);
  benchmark::RegisterBenchmark(("memcpy/" + tag).c_str(), bench_memcpy, bytes, false);
  if (omp_get_max_threads() > 1) {
    benchmark::RegisterBenchmark(("memcpy_mt/" + tag).c_str(), bench_memcpy, bytes, true);
  }
  benchmark::RegisterBenchmark(("kv_cache_update/" + tag).c_str(), bench_update, nhd);
  for (const Workload* w : {&nhd, &hnd}) {
    const char* kernel = w == &nhd ? "write_slots_nhd" : "write_slots_hnd";
    for (DType in : inputs_for(cd)) {
      benchmark::RegisterBenchmark(fmt::format("{}/{}/in_{}", kernel, tag, dtype_name(in)).c_str(),
                                   bench_slots, *w, in);
    }
  }
}

void register_all() {
  for (const Shape& shape : kShapes) {
    for (const Step& step : kSteps) {
      for (int32_t ps : {16, 128}) {
        for (DType cd : kCacheDtypes) register_case(shape, step, ps, cd);
      }
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
