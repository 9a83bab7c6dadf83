// Paged attention throughput on real model shapes (Llama-3-8B 32/8/128, Qwen2-7B 28/4/128,
// small 8/2/64), page size 16 and 128, float32, float16, bfloat16, int8 and fp8_e4m3 caches.
//
//   decode/<model>/<dtype>/ps<P>/b<B>/ctx<C>/paged       pages of each request shuffled
//   decode/<model>/<dtype>/ps<P>/b<B>/ctx<C>/contiguous  same kernel, consecutive pages
//   decode/.../paged_bf16q                               bf16 queries (bf16 caches only)
//   decode/.../read_only                                 loads of the same KV bytes in address
//                                                        order, no stores, same thread count:
//                                                        the read-bandwidth ceiling
//   decode/.../read_shuffled                             the same loads in decode's order through
//                                                        the shuffled pages: what the page order
//                                                        costs the memory system alone
//   decode/<model>/<dtype>/ps16/b64/ctx256/shared        64 requests reading the same pages:
//                                                        K/V stay in cache, the kernel's own rate
//   prefill/<model>/<dtype>/ps16/q<Q>/ctx<C>             one request, Q new tokens of C
//   peak/fma/<isa>                                        register-resident FMAs on every
//                                                        thread: the compute ceiling
//
// bytes_per_second of decode rows is KV bytes read / time, so paged / contiguous is the paging
// overhead and paged / read_only the fraction of achievable bandwidth. Every attention row
// also reports FLOPS (4 * head_dim * q_heads * visible (query, key) pairs: Q.K and P.V), so
// FLOPS / peak/fma is the fraction of the compute ceiling. Decode does 4 * group FLOPs per
// K/V element pair, i.e. 2 * group / dtype_size FLOPs per KV byte: whichever of the two
// ceilings is lower binds.
//
//   build-*/bench/attention_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/dtype.h"
#include "pagedkv/memory/mapped_region.h"

#include "fma_peak.h"

namespace pagedkv {
namespace {

struct Model {
  const char* name;
  int32_t q_heads, kv_heads, head_dim;
};
constexpr Model kLlama{"llama3_8b", 32, 8, 128};
constexpr Model kQwen{"qwen2_7b", 28, 4, 128};
constexpr Model kSmall{"small", 8, 2, 64};
constexpr Model kLlama70{"llama3_70b", 64, 8, 128};  // group 8

// A HND cache holding `batch` requests of `ctx` tokens each, plus their queries.
struct Setup {
  Model model;
  DType dtype;
  int32_t page_size, batch, ctx, q_len;
  MappedRegion k, v;                      // cache memory as PagedKVCache maps it
  std::vector<float> k_scales, v_scales;  // int8: [kv_heads, num_pages, page_size], 1/127
  PagedKVView view;
  std::vector<int32_t> paged_table, contiguous_table, qsl, lens;
  std::vector<int32_t> shared_table;  // every request given request 0's (shuffled) pages
  int32_t max_pages = 0;
  std::vector<float> query, out;
  std::vector<uint16_t> query_bf16;
  int64_t kv_bytes = 0;  // K and V bytes attention reads
};

void fill(uint8_t* p, int64_t bytes, DType dt, uint32_t seed) {
  // Finite values in (-1, 1) (random bit patterns would include NaN/denormals), stored in the
  // cache dtype: int8 codes are the values times 127 (the scales are 1/127).
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> pool(4096);
  for (float& x : pool) x = uni(rng);
  const size_t es = dtype_size(dt);
  const int64_t n = bytes / static_cast<int64_t>(es);
  uint32_t state = seed;
  for (int64_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    const float x = pool[state >> 20];
    switch (dt) {
      case DType::kFloat32: std::memcpy(p + i * 4, &x, 4); break;
      case DType::kBFloat16: {
        const uint16_t b = float_to_bf16(x);
        std::memcpy(p + i * 2, &b, 2);
        break;
      }
      case DType::kFloat16: {
        const uint16_t h = float_to_fp16(x);
        std::memcpy(p + i * 2, &h, 2);
        break;
      }
      case DType::kInt8:
        p[i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x * 127)));
        break;
      case DType::kFp8E4M3: p[i] = float_to_fp8_e4m3(x); break;
    }
  }
}

std::shared_ptr<Setup> make_setup(const Model& m, DType dt, int32_t ps, int32_t batch, int32_t ctx,
                                  int32_t q_len) {
  // One setup alive at a time bounds memory; consecutive benchmarks share it.
  static std::shared_ptr<Setup> last;
  if (last && last->model.name == m.name && last->dtype == dt && last->page_size == ps &&
      last->batch == batch && last->ctx == ctx && last->q_len == q_len)
    return last;
  last.reset();
  auto s = std::make_shared<Setup>();
  s->model = m;
  s->dtype = dt;
  s->page_size = ps;
  s->batch = batch;
  s->ctx = ctx;
  s->q_len = q_len;
  const int32_t pages_per_req = (ctx + ps - 1) / ps;
  const int64_t num_pages = int64_t{pages_per_req} * batch + 1;
  const int64_t elems = num_pages * ps * m.kv_heads * m.head_dim;
  const int64_t bytes = elems * static_cast<int64_t>(dtype_size(dt));
  s->k = MappedRegion(static_cast<size_t>(bytes));
  s->v = MappedRegion(static_cast<size_t>(bytes));
  fill(static_cast<uint8_t*>(s->k.data()), bytes, dt, 1);
  fill(static_cast<uint8_t*>(s->v.data()), bytes, dt, 2);
  s->view = PagedKVView{.layout = KVLayout::kHND,
                        .dtype = dt,
                        .num_pages = num_pages,
                        .page_size = ps,
                        .num_kv_heads = m.kv_heads,
                        .head_dim = m.head_dim,
                        .k_data = s->k.data(),
                        .v_data = s->v.data()};
  if (dt == DType::kInt8) {
    const auto scales = static_cast<size_t>(num_pages * ps * m.kv_heads);
    s->k_scales.assign(scales, 1.0f / 127);
    s->v_scales.assign(scales, 1.0f / 127);
    s->view.k_scales = s->k_scales.data();
    s->view.v_scales = s->v_scales.data();
  }
  std::vector<int32_t> ids(num_pages - 1);
  std::iota(ids.begin(), ids.end(), 1);
  s->contiguous_table = ids;
  std::shuffle(ids.begin(), ids.end(), std::mt19937(3));
  s->paged_table = ids;
  for (int32_t b = 0; b < batch; ++b)
    s->shared_table.insert(s->shared_table.end(), ids.begin(), ids.begin() + pages_per_req);
  s->max_pages = pages_per_req;
  s->qsl = {0};
  for (int32_t b = 0; b < batch; ++b) {
    s->qsl.push_back(s->qsl.back() + q_len);
    s->lens.push_back(ctx);
  }
  const int64_t tokens = int64_t{batch} * q_len;
  s->query.resize(tokens * m.q_heads * m.head_dim);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (float& x : s->query) x = uni(rng);
  for (float x : s->query) s->query_bf16.push_back(float_to_bf16(x));
  s->out.resize(s->query.size());
  // K and V bytes attention reads (int8 also reads one float scale per 128-byte row, 3% more,
  // not counted, so int8 rows slightly understate its bandwidth).
  s->kv_bytes =
      2 * int64_t{batch} * ctx * m.kv_heads * m.head_dim * static_cast<int64_t>(dtype_size(dt));
  last = s;
  return s;
}

// Which page table the requests read through.
enum class Pages { kShuffled, kInOrder, kShared };

void run(Setup& s, Pages pages, bool bf16_query, AttentionWorkspace& ws) {
  const auto& table = pages == Pages::kInOrder  ? s.contiguous_table
                      : pages == Pages::kShared ? s.shared_table
                                                : s.paged_table;
  const ConstTokenTensor q = bf16_query ? ConstTokenTensor::bf16(s.query_bf16.data(), s.qsl.back(),
                                                                 s.model.q_heads, s.model.head_dim)
                                        : ConstTokenTensor::f32(s.query.data(), s.qsl.back(),
                                                                s.model.q_heads, s.model.head_dim);
  paged_attention(s.view, q, {s.qsl, s.lens, PageTableRef::dense(table, s.max_pages)},
                  {.scale = 1.0f / std::sqrt(static_cast<float>(s.model.head_dim))}, s.out, ws);
}

void BM_Attention(benchmark::State& state, Model m, DType dt, int32_t ps, int32_t batch,
                  int32_t ctx, int32_t q_len, Pages pages, bool bf16_query) {
  auto s = make_setup(m, dt, ps, batch, ctx, q_len);
  AttentionWorkspace ws;
  run(*s, pages, bf16_query, ws);  // warm the workspace
  for (auto _ : state) {
    run(*s, pages, bf16_query, ws);
    benchmark::ClobberMemory();
  }
  if (q_len == 1) state.SetBytesProcessed(state.iterations() * s->kv_bytes);
  // Causal (query, key) pairs of one request with q_len new tokens at the end of ctx.
  const double pairs =
      static_cast<double>(q_len) * (ctx - q_len) + static_cast<double>(q_len) * (q_len + 1) / 2.0;
  const double flops = 4.0 * pairs * m.head_dim * m.q_heads * batch;
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
}

// Times `part(t)` for t in [0, threads) on `threads` threads per iteration (the benchmark's own
// thread runs part 0).
void time_parts(benchmark::State& state, int threads, const std::function<void(int)>& part) {
  std::atomic<int64_t> go{0}, done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) {
    workers.emplace_back([&, t] {
      int64_t seen = 0;
      while (true) {
        int64_t g;
        while ((g = go.load(std::memory_order_acquire)) == seen) {
          if (stop.load(std::memory_order_relaxed)) return;
        }
        seen = g;
        part(t);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  int64_t round = 0;
  for (auto _ : state) {
    done.store(0, std::memory_order_relaxed);
    go.store(++round, std::memory_order_release);
    part(0);
    while (done.load(std::memory_order_acquire) < threads - 1) {
    }
    benchmark::ClobberMemory();
  }
  stop.store(true);
  for (auto& w : workers) w.join();
  state.counters["threads"] = threads;
}

// Loads every byte of [p, p + bytes) (a multiple of 64, 16-byte aligned) and folds them into
// `acc`: four independent 16-byte load streams, no stores, so the loop runs at the memory's read
// rate (16-byte loads already outpace DRAM and the caches these sizes spill to).
inline void read_bytes(const uint8_t* p, int64_t bytes, __m128i& acc) {
  __m128i a = acc, b = _mm_setzero_si128(), c = b, d = b;
  for (int64_t o = 0; o < bytes; o += 64) {
    a = _mm_xor_si128(a, _mm_load_si128(reinterpret_cast<const __m128i*>(p + o)));
    b = _mm_xor_si128(b, _mm_load_si128(reinterpret_cast<const __m128i*>(p + o + 16)));
    c = _mm_xor_si128(c, _mm_load_si128(reinterpret_cast<const __m128i*>(p + o + 32)));
    d = _mm_xor_si128(d, _mm_load_si128(reinterpret_cast<const __m128i*>(p + o + 48)));
  }
  acc = _mm_xor_si128(_mm_xor_si128(a, b), _mm_xor_si128(c, d));
}

// A read-only pass over the same K/V bytes in address order, on as many threads as attention
// uses (each reads its share of K, then of V): the read-bandwidth ceiling of decode.
void BM_ReadOnly(benchmark::State& state, Model m, DType dt, int32_t ps, int32_t batch,
                 int32_t ctx) {
  auto s = make_setup(m, dt, ps, batch, ctx, 1);
  const int threads = std::max(1, omp_get_max_threads());
  const int64_t lines = s->kv_bytes / 2 / 64;  // 64-byte lines of K (V the same)
  time_parts(state, threads, [&](int part) {
    __m128i acc = _mm_setzero_si128();
    const int64_t begin = lines * part / threads * 64, end = lines * (part + 1) / threads * 64;
    for (const void* region : {s->k.data(), s->v.data()})
      read_bytes(static_cast<const uint8_t*>(region) + begin, end - begin, acc);
    benchmark::DoNotOptimize(acc);
  });
  state.SetBytesProcessed(state.iterations() * s->kv_bytes);
}

// The same read-only pass in decode's order through the shuffled page tables: per (request, KV
// head), one page's rows after another, K and V alternating in pieces of at most 1 KiB, with
// software prefetches 8 KiB ahead as the kernel issues them (the hardware prefetcher stops at
// each scattered page). Against read_only it is what the page order costs the memory system
// alone, with no attention arithmetic.
void BM_ReadShuffled(benchmark::State& state, Model m, DType dt, int32_t ps, int32_t batch,
                     int32_t ctx) {
  auto s = make_setup(m, dt, ps, batch, ctx, 1);
  const int threads = std::max(1, omp_get_max_threads());
  const int64_t es = static_cast<int64_t>(dtype_size(dt));
  const int64_t page_bytes = int64_t{ps} * m.head_dim * es;    // one KV head's rows of a page
  const int64_t piece = std::gcd(page_bytes, int64_t{1024});   // divides a page
  const int64_t pieces = s->max_pages * (page_bytes / piece);  // of one (request, head)
  const int64_t ahead = std::max<int64_t>(1, 8192 / piece);
  const int32_t units = batch * m.kv_heads;
  const auto* k = static_cast<const uint8_t*>(s->k.data());
  const auto* v = static_cast<const uint8_t*>(s->v.data());
  time_parts(state, threads, [&](int part) {
    __m128i acc = _mm_setzero_si128();
    for (int32_t u = units * part / threads; u < units * (part + 1) / threads; ++u) {
      const int32_t* table = s->paged_table.data() + int64_t{u / m.kv_heads} * s->max_pages;
      const int64_t plane = int64_t{u % m.kv_heads} * s->view.num_pages * page_bytes;
      // Byte offset (in K, and likewise in V) of piece i of this (request, head).
      auto offset = [&](int64_t i) {
        const int64_t at = i * piece;
        return plane + int64_t{table[at / page_bytes]} * page_bytes + at % page_bytes;
      };
      for (int64_t i = 0; i < pieces; ++i) {
        if (i + ahead < pieces) {
          const int64_t pf = offset(i + ahead);
          for (int64_t b = 0; b < piece; b += 64) {
            __builtin_prefetch(k + pf + b, 0, 2);
            __builtin_prefetch(v + pf + b, 0, 2);
          }
        }
        const int64_t off = offset(i);
        read_bytes(k + off, piece, acc);
        read_bytes(v + off, piece, acc);
      }
    }
    benchmark::DoNotOptimize(acc);
  });
  state.SetBytesProcessed(state.iterations() * s->kv_bytes);
}

// FMA throughput (fma_peak.h) on as many threads as attention uses.
void BM_FmaPeak(benchmark::State& state, Isa isa) {
  if (active_isa() < isa) {
    state.SkipWithError("ISA not available");
    return;
  }
  constexpr int64_t kIters = 1 << 20;
  const int threads = std::max(1, omp_get_max_threads());
  std::vector<float> sink(threads);
  auto work = [&](int t) { sink[t] += bench::fma_loop(isa >= Isa::kAvx512, kIters); };
  for (auto _ : state) {
    std::vector<std::thread> others;
    for (int t = 1; t < threads; ++t) others.emplace_back(work, t);
    work(0);
    for (auto& th : others) th.join();
  }
  benchmark::DoNotOptimize(sink.data());
  const double flops = bench::fma_loop_flops(isa >= Isa::kAvx512, kIters) * threads;
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

std::string name_of(const char* kind, const Model& m, DType dt, int32_t ps) {
  return std::string(kind) + "/" + m.name + "/" + std::string(dtype_name(dt)) + "/ps" +
         std::to_string(ps);
}

void register_decode(const Model& m, DType dt, int32_t ps, int32_t batch, int32_t ctx) {
  const std::string base =
      name_of("decode", m, dt, ps) + "/b" + std::to_string(batch) + "/ctx" + std::to_string(ctx);
  benchmark::RegisterBenchmark((base + "/paged").c_str(), BM_Attention, m, dt, ps, batch, ctx, 1,
                               Pages::kShuffled, false)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark((base + "/contiguous").c_str(), BM_Attention, m, dt, ps, batch, ctx,
                               1, Pages::kInOrder, false)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  if (dt == DType::kBFloat16) {
    // bf16 queries: bf16 x bf16 pair dot products on AVX512-BF16 CPUs.
    benchmark::RegisterBenchmark((base + "/paged_bf16q").c_str(), BM_Attention, m, dt, ps, batch,
                                 ctx, 1, Pages::kShuffled, true)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark((base + "/read_only").c_str(), BM_ReadOnly, m, dt, ps, batch, ctx)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark((base + "/read_shuffled").c_str(), BM_ReadShuffled, m, dt, ps, batch,
                               ctx)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

// Decode of `batch` requests that all read the same `ctx` tokens' pages: K and V (for 256
// tokens 0.5-2 MiB over all KV heads, by dtype) stay in the core's L2 and the L3, so the row
// measures the kernel's arithmetic rate with DRAM out of the way.
void register_shared(const Model& m, DType dt, int32_t batch, int32_t ctx) {
  const std::string name = name_of("decode", m, dt, 16) + "/b" + std::to_string(batch) + "/ctx" +
                           std::to_string(ctx) + "/shared";
  benchmark::RegisterBenchmark(name.c_str(), BM_Attention, m, dt, 16, batch, ctx, 1, Pages::kShared,
                               false)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

void register_prefill(const Model& m, DType dt, int32_t q_len, int32_t ctx) {
  const std::string name =
      name_of("prefill", m, dt, 16) + "/q" + std::to_string(q_len) + "/ctx" + std::to_string(ctx);
  benchmark::RegisterBenchmark(name.c_str(), BM_Attention, m, dt, 16, 1, ctx, q_len,
                               Pages::kShuffled, false)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void register_all() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2})
    benchmark::RegisterBenchmark(fmt::format("peak/fma/{}", isa_name(isa)).c_str(), BM_FmaPeak, isa)
        ->UseRealTime();
  // Decode grid: every cache dtype, page sizes 16 and 128 (shuffled pages beside the same pages
  // in order, and the read-only baseline), contexts 1k-32k at batch 1 and 8, and 64 x 1k; cases
  // whose K + V exceed 2 GiB are left out. Qwen2-7B (7 query heads per KV head) on the same
  // grid (scripts/ggml_attention_compare.py times ggml on these shapes); the small model on
  // bf16 only; a group-8 shape (Llama-3-70B) on 16-bit and int8 caches.
  const std::vector<std::pair<int32_t, int32_t>> cases = {
      {1, 1024}, {1, 4096}, {1, 16384}, {1, 32768}, {8, 1024},
      {8, 4096}, {8, 8192}, {8, 16384}, {8, 32768}, {64, 1024}};
  for (const Model& m : {kLlama, kQwen}) {
    for (DType dt :
         {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}) {
      for (int32_t ps : {16, 128}) {
        for (auto [b, c] : cases) {
          const int64_t bytes =
              int64_t{2} * b * c * m.kv_heads * m.head_dim * static_cast<int64_t>(dtype_size(dt));
          if (bytes <= (int64_t{2} << 30)) register_decode(m, dt, ps, b, c);
        }
      }
    }
  }
  for (auto [b, c] : {std::pair{1, 32768}, {8, 8192}, {64, 1024}})
    register_decode(kSmall, DType::kBFloat16, 16, b, c);
  // Group 8 (Llama-3-70B, Qwen2-72B): the widest P.V row group.
  for (DType dt : {DType::kFloat16, DType::kBFloat16, DType::kInt8}) {
    for (auto [b, c] : {std::pair{1, 16384}, {8, 4096}}) register_decode(kLlama70, dt, 16, b, c);
  }
  for (const Model& m : {kLlama, kQwen}) {
    for (DType dt :
         {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8, DType::kFp8E4M3}) {
      register_shared(m, dt, 64, 256);
    }
  }
  // Prefill chunks 512..4096 from an empty context, and a 512-token chunk after 3584 tokens.
  for (DType dt : {DType::kBFloat16, DType::kFloat16, DType::kFloat32}) {
    for (int32_t q : {512, 1024, 2048, 4096}) register_prefill(kLlama, dt, q, q);
    register_prefill(kLlama, dt, 512, 4096);
  }
  register_prefill(kQwen, DType::kBFloat16, 2048, 2048);
  register_prefill(kSmall, DType::kBFloat16, 2048, 2048);
}

}  // namespace
}  // namespace pagedkv

int main(int argc, char** argv) {
  pagedkv::isa_cap_from_env();
  pagedkv::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
