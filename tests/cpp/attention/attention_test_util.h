// Test helpers for paged attention: a cache owned by the test and filled directly through
// PagedKVView (independent of the cache-write component), a ragged batch builder, and a dense
// float64 reference attention over the dequantized cache contents.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/dtype.h"
#include "pagedkv/kv_cache/kv_layout.h"

namespace pagedkv::testing {

// Unoptimized (debug / sanitizer) builds run a lighter sample of the sweeps: every axis value
// still appears, fewer combinations and fewer scalar-ISA repeats.
#ifdef __OPTIMIZE__
inline constexpr bool kOptimizedBuild = true;
#else
inline constexpr bool kOptimizedBuild = false;
#endif

// The ISA levels this CPU runs, lowest first.
inline std::vector<Isa> isa_levels() {
  std::vector<Isa> out = {Isa::kScalar};
  if (detected_isa() >= Isa::kAvx2) out.push_back(Isa::kAvx2);
  if (detected_isa() >= Isa::kAvx512) out.push_back(Isa::kAvx512);
  if (detected_isa() >= Isa::kAvx512Bf16) out.push_back(Isa::kAvx512Bf16);
  return out;
}

// Owns the storage behind a PagedKVView.
class TestCache {
 public:
  TestCache(KVLayout layout, DType dtype, int64_t num_pages, int32_t page_size,
            int32_t num_kv_heads, int32_t head_dim, float fp8_k_scale = 0.05f,
            float fp8_v_scale = 0.04f) {
    view_.layout = layout;
    view_.dtype = dtype;
    view_.num_pages = num_pages;
    view_.page_size = page_size;
    view_.num_kv_heads = num_kv_heads;
    view_.head_dim = head_dim;
    const int64_t per_tensor = num_pages * page_size * num_kv_heads * head_dim;
    const size_t es = dtype_size(dtype);
    if (layout == KVLayout::kHND) {
      k_.assign(per_tensor * es, 0);
      v_.assign(per_tensor * es, 0);
      view_.k_data = k_.data();
      view_.v_data = v_.data();
    } else {
      k_.assign(2 * per_tensor * es, 0);
      view_.k_data = k_.data();
    }
    if (dtype == DType::kInt8) {
      ks_.assign(num_pages * page_size * num_kv_heads, 1.0f);
      vs_.assign(num_pages * page_size * num_kv_heads, 1.0f);
      view_.k_scales = ks_.data();
      view_.v_scales = vs_.data();
    }
    if (dtype == DType::kFp8E4M3) {
      view_.k_scale = fp8_k_scale;
      view_.v_scale = fp8_v_scale;
    }
  }
  TestCache(const TestCache&) = delete;
  TestCache& operator=(const TestCache&) = delete;

  const PagedKVView& view() const { return view_; }

  // Quantizes `x` [head_dim] into (slot, head) of K (is_k) or V.
  void set(int64_t slot, int32_t head, bool is_k, const float* x) {
    const int64_t e = is_k ? view_.k_elem(slot, head) : view_.v_elem(slot, head);
    uint8_t* base = static_cast<uint8_t*>(is_k ? view_.k_data : view_.v_base());
    const int32_t D = view_.head_dim;
    switch (view_.dtype) {
      case DType::kFloat32: std::memcpy(base + e * 4, x, sizeof(float) * D); break;
      case DType::kFloat16:
        for (int32_t d = 0; d < D; ++d) store16(base, e + d, float_to_fp16(x[d]));
        break;
      case DType::kBFloat16:
        for (int32_t d = 0; d < D; ++d) store16(base, e + d, float_to_bf16(x[d]));
        break;
      case DType::kInt8: {
        float amax = 0.0f;
        for (int32_t d = 0; d < D; ++d) amax = std::max(amax, std::fabs(x[d]));
        const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
        (is_k ? ks_ : vs_)[view_.scale_index(slot, head)] = scale;
        for (int32_t d = 0; d < D; ++d) {
          const float c = std::clamp(std::nearbyint(x[d] / scale), -127.0f, 127.0f);
          base[e + d] = static_cast<uint8_t>(static_cast<int8_t>(c));
        }
        break;
      }
      case DType::kFp8E4M3: {
        const float scale = is_k ? view_.k_scale : view_.v_scale;
        for (int32_t d = 0; d < D; ++d) base[e + d] = float_to_fp8_e4m3(x[d] / scale);
        break;
      }
    }
  }

  // The dequantized value the kernels see at (slot, head, d).
  float get(int64_t slot, int32_t head, bool is_k, int32_t d) const {
    const int64_t e = (is_k ? view_.k_elem(slot, head) : view_.v_elem(slot, head)) + d;
    const uint8_t* base = static_cast<const uint8_t*>(is_k ? view_.k_data : view_.v_base());
    switch (view_.dtype) {
      case DType::kFloat32: {
        float f;
        std::memcpy(&f, base + e * 4, 4);
        return f;
      }
      case DType::kFloat16: return fp16_to_float(load16(base, e));
      case DType::kBFloat16: return bf16_to_float(load16(base, e));
      case DType::kInt8:
        return static_cast<float>(static_cast<int8_t>(base[e])) *
               (is_k ? ks_ : vs_)[view_.scale_index(slot, head)];
      case DType::kFp8E4M3:
        return fp8_e4m3_to_float(base[e]) * (is_k ? view_.k_scale : view_.v_scale);
    }
    return 0.0f;
  }

 private:
  static void store16(uint8_t* base, int64_t e, uint16_t v) { std::memcpy(base + 2 * e, &v, 2); }
  static uint16_t load16(const uint8_t* base, int64_t e) {
    uint16_t v;
    std::memcpy(&v, base + 2 * e, 2);
    return v;
  }

  PagedKVView view_;
  std::vector<uint8_t> k_, v_;
  std::vector<float> ks_, vs_;
};

// One request of a test batch.
struct TestRequest {
  int32_t q_len = 1;
  int32_t seq_len = 1;
};

// A ragged batch whose K/V (float "truth" values) were written to a TestCache.
struct TestBatch {
  int32_t num_q_heads = 0;
  int32_t head_dim = 0;
  std::vector<int32_t> query_start_loc;
  std::vector<int32_t> seq_lens;
  std::vector<std::vector<int32_t>> pages;  // per request
  std::vector<float> query;                 // [tokens, heads, dim] float values
  std::vector<uint16_t> query_bf16;         // the same, rounded to bf16
  // truth[b][(pos * kv_heads + h) * dim + d] for K and V, before quantization
  std::vector<std::vector<float>> k_truth, v_truth;

  int32_t num_tokens() const { return query_start_loc.back(); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_lens.size()); }

  // Dense [B, max_pages] table (unused columns hold `fill`).
  std::vector<int32_t> dense_table(int32_t* max_pages, int32_t fill = 0) const {
    int32_t mp = 1;
    for (const auto& p : pages) mp = std::max<int32_t>(mp, static_cast<int32_t>(p.size()));
    std::vector<int32_t> t(static_cast<size_t>(num_seqs()) * mp, fill);
    for (int32_t b = 0; b < num_seqs(); ++b)
      std::copy(pages[b].begin(), pages[b].end(), t.begin() + static_cast<size_t>(b) * mp);
    *max_pages = mp;
    return t;
  }
  void csr(std::vector<int32_t>* indptr, std::vector<int32_t>* indices) const {
    indptr->assign(1, 0);
    indices->clear();
    for (const auto& p : pages) {
      indices->insert(indices->end(), p.begin(), p.end());
      indptr->push_back(static_cast<int32_t>(indices->size()));
    }
  }
};

// Builds a batch: distinct random pages (never page 0) per request, random K/V written into
// `cache`, random queries. Values ~ U(-1, 1) scaled by `amplitude`.
inline TestBatch make_batch(TestCache& cache, const std::vector<TestRequest>& reqs,
                            int32_t num_q_heads, uint32_t seed, float amplitude = 1.0f,
                            bool contiguous_pages = false) {
  const PagedKVView& kv = cache.view();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-amplitude, amplitude);
  TestBatch tb;
  tb.num_q_heads = num_q_heads;
  tb.head_dim = kv.head_dim;
  std::vector<int32_t> free_pages(kv.num_pages - 1);
  std::iota(free_pages.begin(), free_pages.end(), 1);
  std::vector<int32_t> shuffled = free_pages;  // always drawn, so data match either way
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  if (!contiguous_pages) free_pages = shuffled;
  size_t next = 0;
  tb.query_start_loc.push_back(0);
  const int32_t D = kv.head_dim, H = kv.num_kv_heads;
  std::vector<float> row(D);
  for (const TestRequest& r : reqs) {
    tb.query_start_loc.push_back(tb.query_start_loc.back() + r.q_len);
    tb.seq_lens.push_back(r.seq_len);
    const int32_t np = (r.seq_len + kv.page_size - 1) / kv.page_size;
    std::vector<int32_t> pg(free_pages.begin() + next, free_pages.begin() + next + np);
    next += np;
    tb.pages.push_back(pg);
    std::vector<float> kt(static_cast<size_t>(r.seq_len) * H * D), vt(kt.size());
    for (int32_t pos = 0; pos < r.seq_len; ++pos) {
      const int64_t slot = int64_t{pg[pos / kv.page_size]} * kv.page_size + pos % kv.page_size;
      for (int32_t h = 0; h < H; ++h) {
        float* kd = kt.data() + (static_cast<size_t>(pos) * H + h) * D;
        float* vd = vt.data() + (static_cast<size_t>(pos) * H + h) * D;
        for (int32_t d = 0; d < D; ++d) kd[d] = uni(rng);
        for (int32_t d = 0; d < D; ++d) vd[d] = uni(rng);
        cache.set(slot, h, true, kd);
        cache.set(slot, h, false, vd);
      }
    }
    tb.k_truth.push_back(std::move(kt));
    tb.v_truth.push_back(std::move(vt));
  }
  tb.query.resize(static_cast<size_t>(tb.num_tokens()) * num_q_heads * D);
  for (float& x : tb.query) x = uni(rng);
  tb.query_bf16.resize(tb.query.size());
  for (size_t i = 0; i < tb.query.size(); ++i) tb.query_bf16[i] = float_to_bf16(tb.query[i]);
  return tb;
}

struct RefOptions {
  double scale = 0.125;
  int32_t window = 0;
  double soft_cap = 0.0;
  bool bf16_query = false;
  bool use_truth = false;  // K/V before quantization instead of the cache contents
};

// Dense float64 attention: out [tokens, heads, dim].
inline std::vector<double> reference_attention(const TestCache& cache, const TestBatch& tb,
                                               const RefOptions& o) {
  const PagedKVView& kv = cache.view();
  const int32_t D = kv.head_dim, H = kv.num_kv_heads, Hq = tb.num_q_heads, G = Hq / H;
  std::vector<double> out(static_cast<size_t>(tb.num_tokens()) * Hq * D, 0.0);
  for (int32_t b = 0; b < tb.num_seqs(); ++b) {
    const int32_t seq = tb.seq_lens[b];
    const int32_t q_len = tb.query_start_loc[b + 1] - tb.query_start_loc[b];
    if (q_len == 0) continue;
    // Dequantized K/V of this request [pos, head, dim].
    std::vector<double> k(static_cast<size_t>(seq) * H * D), v(k.size());
    for (int32_t pos = 0; pos < seq; ++pos) {
      const int64_t slot =
          int64_t{tb.pages[b][pos / kv.page_size]} * kv.page_size + pos % kv.page_size;
      for (int32_t h = 0; h < H; ++h)
        for (int32_t d = 0; d < D; ++d) {
          const size_t i = (static_cast<size_t>(pos) * H + h) * D + d;
          k[i] = o.use_truth ? tb.k_truth[b][i] : cache.get(slot, h, true, d);
          v[i] = o.use_truth ? tb.v_truth[b][i] : cache.get(slot, h, false, d);
        }
    }
    std::vector<double> s(seq);
    for (int32_t t = 0; t < q_len; ++t) {
      const int32_t tok = tb.query_start_loc[b] + t;
      const int32_t pos = seq - q_len + t;
      const int32_t lo = o.window > 0 ? std::max(0, pos - o.window + 1) : 0;
      for (int32_t qh = 0; qh < Hq; ++qh) {
        const int32_t h = qh / G;
        const size_t qoff = (static_cast<size_t>(tok) * Hq + qh) * D;
        double mx = -std::numeric_limits<double>::infinity();
        for (int32_t j = lo; j <= pos; ++j) {
          double dot = 0.0;
          for (int32_t d = 0; d < D; ++d) {
            const double qd =
                o.bf16_query ? bf16_to_float(tb.query_bf16[qoff + d]) : tb.query[qoff + d];
            dot += qd * k[(static_cast<size_t>(j) * H + h) * D + d];
          }
          dot *= o.scale;
          if (o.soft_cap > 0.0) dot = o.soft_cap * std::tanh(dot / o.soft_cap);
          s[j] = dot;
          mx = std::max(mx, dot);
        }
        double sum = 0.0;
        for (int32_t j = lo; j <= pos; ++j) {
          s[j] = std::exp(s[j] - mx);
          sum += s[j];
        }
        double* dst = out.data() + qoff;
        for (int32_t j = lo; j <= pos; ++j) {
          const double w = s[j] / sum;
          const double* vj = v.data() + (static_cast<size_t>(j) * H + h) * D;
          for (int32_t d = 0; d < D; ++d) dst[d] += w * vj[d];
        }
      }
    }
  }
  return out;
}

// Runs paged_attention on a TestBatch (dense table unless `csr`).
inline std::vector<float> run_attention(const TestCache& cache, const TestBatch& tb,
                                        const AttentionOptions& opt, bool bf16_query = false,
                                        bool csr = false) {
  int32_t max_pages = 0;
  const std::vector<int32_t> table = tb.dense_table(&max_pages);
  std::vector<int32_t> indptr, indices;
  tb.csr(&indptr, &indices);
  AttentionBatch batch{
      tb.query_start_loc, tb.seq_lens,
      csr ? PageTableRef::csr(indptr, indices) : PageTableRef::dense(table, max_pages)};
  const ConstTokenTensor q =
      bf16_query
          ? ConstTokenTensor::bf16(tb.query_bf16.data(), tb.num_tokens(), tb.num_q_heads,
                                   tb.head_dim)
          : ConstTokenTensor::f32(tb.query.data(), tb.num_tokens(), tb.num_q_heads, tb.head_dim);
  std::vector<float> out(static_cast<size_t>(tb.num_tokens()) * tb.num_q_heads * tb.head_dim,
                         std::numeric_limits<float>::quiet_NaN());
  paged_attention(cache.view(), q, batch, opt, out);
  return out;
}

// Largest |a - b| over all elements.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}

// Restores the ISA cap when a test ends.
class IsaCapGuard {
 public:
  IsaCapGuard() : saved_(isa_cap()) {}
  ~IsaCapGuard() { set_isa_cap(saved_); }

 private:
  Isa saved_;
};

}  // namespace pagedkv::testing
