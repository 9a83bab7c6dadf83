// Paged attention driver, in phases: validate_call (every check before any work), make_params
// (the kernels' view of the call), plan_work (a WorkPlan: tiles of (request, kv head, query
// tokens), whether long tiles split into per-chunk items, the items in run order) and run_plan
// (the items on OpenMP threads with the kernels of the active ISA).
//
// Why the split never changes results: a tile's chunks always produce the same partial states
// and are always merged in chunk order, whether one item runs them back to back or several
// items run them on different threads and a merge item combines the stored states. So the
// split decision may depend on the batch and the thread count without breaking batch
// invariance.
#include "pagedkv/attention/paged_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "paged_attention_kernels.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/common/types.h"

namespace pagedkv {

using attention_detail::kChunk;
using attention_detail::KernelParams;
using attention_detail::KernelScratch;
using attention_detail::KernelTable;
using attention_detail::TileDesc;

static_assert(kChunk == kAttentionKvChunk);

namespace {

// Partial states of split tiles are capped so a huge decode batch never allocates gigabytes;
// above the cap tiles simply run whole (same results).
constexpr int64_t kMaxPartialFloats = int64_t{64} << 20;  // 256 MiB
// Below this much work (rows x keys) a call runs on the calling thread only.
constexpr int64_t kSerialWork = 16 * 1024;

// A 64-byte aligned buffer that only grows.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  ~AlignedBuffer() { std::free(ptr_); }

  void* reserve(size_t bytes) {
    if (bytes > bytes_) {
      const size_t rounded = (bytes + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, rounded);
      if (p == nullptr) throw std::bad_alloc();
      std::memset(p, 0, rounded);  // scratch is read before written only under masks
      std::free(ptr_);
      ptr_ = p;
      bytes_ = rounded;
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct ThreadScratch {
  AlignedBuffer buffer;
  int32_t rows = 0;  // capacity in padded rows
  int32_t dim = 0;
  KernelScratch k;

  void ensure(int32_t padded_rows, int32_t head_dim) {
    if (padded_rows <= rows && head_dim <= dim) return;
    const int32_t R = std::max(padded_rows, rows), D = std::max(head_dim, dim);
    const int64_t fq = int64_t{D} * R;
    const int64_t fs = int64_t{kChunk} * R;
    const int64_t fkv = int64_t{kChunk} * D;
    const int64_t fstate = attention_detail::state_floats(R, D);
    const int64_t floats = fq + fs + 2 * fkv + 2 * fstate;
    const size_t bytes =
        sizeof(float) * floats + 2 * sizeof(float*) * kChunk + sizeof(int32_t) * R + 64 * 8;
    auto* base = static_cast<char*>(buffer.reserve(bytes));
    auto carve = [&base](size_t n) {
      char* p = base;
      base += (n + 63) / 64 * 64;
      return p;
    };
    k.q = reinterpret_cast<float*>(carve(sizeof(float) * fq));
    k.s = reinterpret_cast<float*>(carve(sizeof(float) * fs));
    k.kf = reinterpret_cast<float*>(carve(sizeof(float) * fkv));
    k.vf = reinterpret_cast<float*>(carve(sizeof(float) * fkv));
    k.krow = reinterpret_cast<const float**>(carve(sizeof(float*) * kChunk));
    k.vrow = reinterpret_cast<const float**>(carve(sizeof(float*) * kChunk));
    k.row_pos = reinterpret_cast<int32_t*>(carve(sizeof(int32_t) * R));
    k.chunk_state = reinterpret_cast<float*>(carve(sizeof(float) * fstate));
    k.run_state = reinterpret_cast<float*>(carve(sizeof(float) * fstate));
    rows = R;
    dim = D;
  }
};

struct WorkItem {
  int32_t tile;
  int32_t chunk;  // -1: the whole tile
  int64_t cost;
};

int32_t padded_rows(int32_t rows) { return (rows + 15) / 16 * 16; }

// ---------------------------------------------------------------------------------------------
// Validation: every check before any work.

void validate_query(const PagedKVView& kv, const ConstTokenTensor& q, std::span<float> out) {
  kv.validate();
  PAGEDKV_CHECK_ARG(kv.head_dim % 16 == 0 && kv.head_dim <= attention_detail::kMaxHeadDim,
                    "paged_attention needs head_dim a multiple of 16 in [16, {}], got {}",
                    attention_detail::kMaxHeadDim, kv.head_dim);
  q.check("query");
  PAGEDKV_CHECK_ARG(q.dtype == DType::kFloat32 || q.dtype == DType::kBFloat16,
                    "query dtype must be float32 or bfloat16, got {}", dtype_name(q.dtype));
  PAGEDKV_CHECK_ARG(q.rows <= std::numeric_limits<int32_t>::max(),
                    "query rows (num_tokens) must be < 2^31, got {}", q.rows);
  PAGEDKV_CHECK_ARG(q.heads % kv.num_kv_heads == 0,
                    "query heads ({}) must be a multiple of num_kv_heads ({})", q.heads,
                    kv.num_kv_heads);
  PAGEDKV_CHECK_ARG(q.dim == kv.head_dim, "query head_dim {} != cache head_dim {}", q.dim,
                    kv.head_dim);
  const int64_t out_size = q.elements();
  PAGEDKV_CHECK_ARG(static_cast<int64_t>(out.size()) == out_size,
                    "out has {} elements, expected num_tokens * num_q_heads * head_dim = {}",
                    out.size(), out_size);
}

void validate_options(const AttentionOptions& opt) {
  PAGEDKV_CHECK_ARG(std::isfinite(opt.scale) && opt.scale > 0.0f,
                    "scale must be finite and > 0, got {}", opt.scale);
  PAGEDKV_CHECK_ARG(opt.sliding_window >= 0, "sliding_window must be >= 0 (0 = off), got {}",
                    opt.sliding_window);
  PAGEDKV_CHECK_ARG(std::isfinite(opt.soft_cap) && opt.soft_cap >= 0.0f,
                    "soft_cap must be finite and >= 0 (0 = off), got {}", opt.soft_cap);
}

// The sizes of the batch arrays; returns the number of requests B.
size_t validate_batch_sizes(const AttentionBatch& batch, int64_t num_tokens) {
  const auto& qsl = batch.query_start_loc;
  PAGEDKV_CHECK_ARG(!qsl.empty(), "query_start_loc must have num_seqs + 1 >= 1 entries");
  const size_t B = qsl.size() - 1;
  PAGEDKV_CHECK_ARG(batch.seq_lens.size() == B,
                    "seq_lens has {} entries, query_start_loc implies {} requests",
                    batch.seq_lens.size(), B);
  PAGEDKV_CHECK_ARG(qsl[0] == 0, "query_start_loc[0] must be 0, got {}", qsl[0]);
  PAGEDKV_CHECK_ARG(qsl[B] == num_tokens, "query_start_loc[{}] = {} must equal num_tokens {}", B,
                    qsl[B], num_tokens);
  const PageTableRef& pt = batch.pages;
  if (pt.is_csr()) {
    PAGEDKV_CHECK_ARG(pt.indptr.size() == B + 1, "page indptr has {} entries, expected {}",
                      pt.indptr.size(), B + 1);
    PAGEDKV_CHECK_ARG(pt.indptr[0] >= 0, "page indptr[0] must be >= 0, got {}", pt.indptr[0]);
    PAGEDKV_CHECK_ARG(static_cast<size_t>(pt.indptr[B]) <= pt.page_ids.size(),
                      "page indptr[{}] = {} exceeds the {} page indices", B, pt.indptr[B],
                      pt.page_ids.size());
  } else if (B > 0) {
    PAGEDKV_CHECK_ARG(pt.row_stride > 0, "page table row stride must be > 0, got {}",
                      pt.row_stride);
    PAGEDKV_CHECK_ARG(pt.page_ids.size() >= B * static_cast<size_t>(pt.row_stride),
                      "page table has {} entries, {} requests x {} pages need {}",
                      pt.page_ids.size(), B, pt.row_stride, B * static_cast<size_t>(pt.row_stride));
  }
  return B;
}

// Offsets are monotonic, so every request's rows below lie inside their arrays.
void validate_offsets(const AttentionBatch& batch, size_t B) {
  const auto& qsl = batch.query_start_loc;
  const PageTableRef& pt = batch.pages;
  for (size_t b = 0; b < B; ++b) {
    PAGEDKV_CHECK_ARG(qsl[b + 1] >= qsl[b],
                      "query_start_loc must be non-decreasing: [{}] = {} > [{}] = {}", b, qsl[b],
                      b + 1, qsl[b + 1]);
    if (pt.is_csr()) {
      PAGEDKV_CHECK_ARG(pt.indptr[b + 1] >= pt.indptr[b],
                        "page indptr must be non-decreasing: [{}] = {} > [{}] = {}", b,
                        pt.indptr[b], b + 1, pt.indptr[b + 1]);
    }
  }
}

// Request b: its context covers its queries, its page-table row has the pages the context
// needs, and the pages it reads (those inside its window) lie in the cache.
void validate_request(const PagedKVView& kv, const AttentionBatch& batch,
                      const AttentionOptions& opt, size_t b) {
  const auto& qsl = batch.query_start_loc;
  const PageTableRef& pt = batch.pages;
  const int64_t ps = kv.page_size;
  const int32_t q_len = qsl[b + 1] - qsl[b];
  const int32_t seq = batch.seq_lens[b];
  PAGEDKV_CHECK_ARG(seq >= q_len, "seq_lens[{}] = {} is shorter than its {} query tokens", b, seq,
                    q_len);
  const int64_t needed = cdiv<int64_t>(seq, ps);
  const int32_t* row = nullptr;
  if (pt.is_csr()) {
    const int64_t have = pt.indptr[b + 1] - pt.indptr[b];
    PAGEDKV_CHECK_ARG(have >= needed, "request {} has {} pages, seq_len {} needs {}", b, have, seq,
                      needed);
    row = pt.page_ids.data() + pt.indptr[b];
  } else {
    PAGEDKV_CHECK_ARG(pt.row_stride >= needed,
                      "request {}: seq_len {} needs {} pages, the page table has {} columns", b,
                      seq, needed, pt.row_stride);
    row = pt.page_ids.data() + b * static_cast<size_t>(pt.row_stride);
  }
  if (q_len == 0) return;
  const int32_t first_pos = seq - q_len;
  const int32_t first_key =
      opt.sliding_window > 0 ? std::max(0, first_pos - opt.sliding_window + 1) : 0;
  for (int64_t i = first_key / ps; i < needed; ++i) {
    PAGEDKV_CHECK_RANGE(row[i] >= 0 && row[i] < kv.num_pages,
                        "request {} page {} is page id {}, outside the cache's [0, {})", b, i,
                        row[i], kv.num_pages);
  }
}

void validate_call(const PagedKVView& kv, const ConstTokenTensor& q, const AttentionBatch& batch,
                   const AttentionOptions& opt, std::span<float> out) {
  validate_query(kv, q, out);
  validate_options(opt);
  const size_t B = validate_batch_sizes(batch, q.rows);
  validate_offsets(batch, B);
  for (size_t b = 0; b < B; ++b) validate_request(kv, batch, opt, b);
}

// ---------------------------------------------------------------------------------------------
// Work plan: what each thread runs. A plain struct, filled in place so that its vectors keep
// their capacity across calls (steady-state calls do not allocate).

struct WorkPlan {
  std::vector<TileDesc> tiles;        // (request, kv head, query tokens)
  std::vector<int64_t> state_offset;  // per tile: offset of its chunk states, -1 if whole
  std::vector<int32_t> split_tiles;   // tiles run as per-chunk items, then merged
  std::vector<WorkItem> items;        // longest first
  int threads = 1;                    // OpenMP threads of the call
  int32_t max_rows = 0;               // rows of the largest tile
  int64_t partial_floats = 0;         // chunk states of the split tiles
};

// Cuts the batch into tiles; returns the largest tile's row count.
int32_t plan_tiles(const AttentionBatch& batch, const AttentionOptions& opt, int32_t group,
                   int32_t num_kv_heads, std::vector<TileDesc>& tiles) {
  tiles.clear();
  int32_t max_rows = 0;
  const auto& qsl = batch.query_start_loc;
  const PageTableRef& pt = batch.pages;
  for (size_t b = 0; b + 1 < qsl.size(); ++b) {
    const int32_t q_len = qsl[b + 1] - qsl[b];
    if (q_len == 0) continue;
    const int32_t seq = batch.seq_lens[b];
    const size_t first_page =
        pt.is_csr() ? static_cast<size_t>(pt.indptr[b]) : b * static_cast<size_t>(pt.row_stride);
    const int32_t* pages = pt.page_ids.data() + first_page;
    // The kernel shape depends on this request alone (and on nothing when shape_invariant).
    const bool gemm =
        !opt.shape_invariant && int64_t{q_len} * group >= attention_detail::kGemmMinRows;
    const int32_t per_tile = std::max(1, attention_detail::kGemmTileRows / group);
    for (int32_t t0 = 0; t0 < q_len; t0 += per_tile) {
      TileDesc t;
      t.token_begin = qsl[b] + t0;
      t.num_tokens = std::min(per_tile, q_len - t0);
      t.first_pos = seq - q_len + t0;
      t.pages = pages;
      const int32_t last_pos = t.first_pos + t.num_tokens - 1;
      t.key_begin = opt.sliding_window > 0 ? std::max(0, t.first_pos - opt.sliding_window + 1) : 0;
      t.key_end = last_pos + 1;
      t.chunk_begin = t.key_begin / kChunk;
      t.chunk_end = (t.key_end - 1) / kChunk + 1;
      t.gemm = gemm;
      max_rows = std::max(max_rows, t.rows(group));
      for (int32_t h = 0; h < num_kv_heads; ++h) {
        t.kv_head = h;
        tiles.push_back(t);
      }
    }
  }
  return max_rows;
}

int64_t tile_cost(const TileDesc& t, int32_t group, int32_t k0, int32_t k1) {
  return int64_t{t.rows(group)} * std::max(1, k1 - k0);
}

// Small calls run on the calling thread only.
int plan_threads(const std::vector<TileDesc>& tiles, int32_t group) {
  int64_t total_work = 0;
  for (const TileDesc& t : tiles) total_work += tile_cost(t, group, t.key_begin, t.key_end);
  return total_work < kSerialWork ? 1 : std::max(1, omp_get_max_threads());
}

// Long tiles are split into per-chunk items when there are too few tiles to feed the threads,
// as long as their partial states fit under kMaxPartialFloats.
void plan_splits(int32_t group, int32_t head_dim, WorkPlan& plan) {
  const size_t num_tiles = plan.tiles.size();
  plan.state_offset.assign(num_tiles, -1);
  plan.split_tiles.clear();
  plan.partial_floats = 0;
  if (plan.threads == 1 || num_tiles >= static_cast<size_t>(4 * plan.threads)) return;
  for (size_t i = 0; i < num_tiles; ++i) {
    const TileDesc& t = plan.tiles[i];
    const int32_t chunks = t.chunk_end - t.chunk_begin;
    const int64_t need = chunks * attention_detail::state_floats(t.rows(group), head_dim);
    if (chunks < 2 || plan.partial_floats + need > kMaxPartialFloats) continue;
    plan.state_offset[i] = plan.partial_floats;
    plan.split_tiles.push_back(static_cast<int32_t>(i));
    plan.partial_floats += need;
  }
}

// One item per whole tile or per chunk of a split tile, longest first: better load balance
// under dynamic scheduling (order never affects results).
void plan_items(int32_t group, WorkPlan& plan) {
  plan.items.clear();
  for (size_t i = 0; i < plan.tiles.size(); ++i) {
    const TileDesc& t = plan.tiles[i];
    const auto tile = static_cast<int32_t>(i);
    if (plan.state_offset[i] < 0) {
      plan.items.push_back({tile, -1, tile_cost(t, group, t.key_begin, t.key_end)});
      continue;
    }
    for (int32_t c = t.chunk_begin; c < t.chunk_end; ++c) {
      const int32_t k0 = std::max(c * kChunk, t.key_begin);
      const int32_t k1 = std::min(c * kChunk + kChunk, t.key_end);
      plan.items.push_back({tile, c, tile_cost(t, group, k0, k1)});
    }
  }
  // std::sort, unlike stable_sort, sorts in place without a temporary buffer.
  std::sort(plan.items.begin(), plan.items.end(), [](const WorkItem& a, const WorkItem& b) {
    if (a.cost != b.cost) return a.cost > b.cost;
    return a.tile != b.tile ? a.tile < b.tile : a.chunk < b.chunk;
  });
}

void plan_work(const AttentionBatch& batch, const AttentionOptions& opt, const KernelParams& p,
               WorkPlan& plan) {
  plan.max_rows = plan_tiles(batch, opt, p.group, p.kv.num_kv_heads, plan.tiles);
  plan.threads = plan_threads(plan.tiles, p.group);
  plan_splits(p.group, p.head_dim, plan);
  plan_items(p.group, plan);
}

// ---------------------------------------------------------------------------------------------
// Parameters and run.

// kernels_for asks the CPU for its targets; do that once per ISA level.
KernelTable kernels_cached(Isa isa) {
  static const KernelTable tables[] = {
      attention_detail::kernels_for(Isa::kScalar), attention_detail::kernels_for(Isa::kAvx2),
      attention_detail::kernels_for(Isa::kAvx512), attention_detail::kernels_for(Isa::kAvx512Bf16)};
  return tables[static_cast<int>(isa)];
}

KernelParams make_params(const PagedKVView& kv, const ConstTokenTensor& query,
                         const AttentionOptions& options, std::span<float> out, Isa isa,
                         const KernelTable& kernels) {
  KernelParams p;
  p.kv = kv;
  p.st = kv.strides();
  p.query = query.data;
  p.query_bf16 = query.dtype == DType::kBFloat16;
  p.num_q_heads = query.heads;
  p.group = query.heads / kv.num_kv_heads;
  p.head_dim = kv.head_dim;
  p.scale = options.scale;
  p.window = options.sliding_window;
  p.soft_cap = options.soft_cap;
  p.out = out.data();
  p.bf16_dot = p.query_bf16 && kv.dtype == DType::kBFloat16 && isa >= Isa::kAvx512Bf16 &&
               kernels.isa == Isa::kAvx512;
  return p;
}

// Runs the plan's items on its threads, then merges the split tiles.
void run_plan(const KernelParams& p, const KernelTable& kernels, const WorkPlan& plan,
              std::vector<ThreadScratch>& scratch, float* partials) {
  const int64_t num_items = static_cast<int64_t>(plan.items.size());
  const int64_t num_split = static_cast<int64_t>(plan.split_tiles.size());
  const int32_t D = p.head_dim;
#pragma omp parallel num_threads(plan.threads)
  {
    KernelScratch& s = scratch[omp_get_thread_num()].k;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_items; ++i) {
      const WorkItem& item = plan.items[i];
      const TileDesc& t = plan.tiles[item.tile];
      if (item.chunk < 0) {
        kernels.tile(p, t, s);
      } else {
        const int64_t state = attention_detail::state_floats(t.rows(p.group), D);
        float* dst = partials + plan.state_offset[item.tile] + (item.chunk - t.chunk_begin) * state;
        kernels.chunk(p, t, item.chunk, dst, s);
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_split; ++i) {
      const int32_t tile = plan.split_tiles[i];
      const TileDesc& t = plan.tiles[tile];
      kernels.merge(p, t, partials + plan.state_offset[tile], t.chunk_end - t.chunk_begin, s);
    }
  }
}

}  // namespace

struct AttentionWorkspace::Impl {
  WorkPlan plan;
  std::vector<ThreadScratch> threads;
  AlignedBuffer partials;
};

AttentionWorkspace::AttentionWorkspace() : impl_(std::make_unique<Impl>()) {}
AttentionWorkspace::~AttentionWorkspace() = default;

void paged_attention(const PagedKVView& kv, const ConstTokenTensor& query,
                     const AttentionBatch& batch, const AttentionOptions& options,
                     std::span<float> out, AttentionWorkspace& workspace) {
  validate_call(kv, query, batch, options, out);
  if (query.rows == 0) return;

  const Isa isa = active_isa();
  const KernelTable kernels = kernels_cached(isa);
  const KernelParams p = make_params(kv, query, options, out, isa, kernels);
  AttentionWorkspace::Impl& ws = workspace.impl();
  WorkPlan& plan = ws.plan;
  plan_work(batch, options, p, plan);

  if (ws.threads.size() < static_cast<size_t>(plan.threads)) ws.threads.resize(plan.threads);
  for (int i = 0; i < plan.threads; ++i) {
    ws.threads[i].ensure(padded_rows(plan.max_rows), p.head_dim);
  }
  float* partials =
      plan.partial_floats > 0
          ? static_cast<float*>(ws.partials.reserve(sizeof(float) * plan.partial_floats))
          : nullptr;
  run_plan(p, kernels, plan, ws.threads, partials);
}

void paged_attention(const PagedKVView& kv, const ConstTokenTensor& query,
                     const AttentionBatch& batch, const AttentionOptions& options,
                     std::span<float> out) {
  thread_local AttentionWorkspace workspace;
  paged_attention(kv, query, batch, options, out, workspace);
}

}  // namespace pagedkv
