#include "pagedkv/kv_cache/kv_cache_write.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <immintrin.h>

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/dtype_convert.h"
#include "pagedkv/common/errors.h"

namespace pagedkv {

namespace {

// Converts one head row of `dim` elements from the input dtype to the cache dtype.
// fp8_scale: the per-tensor scale (fp8 caches); scale_out: the row's scale (int8 caches).
using RowFn = void (*)(const void* src, void* dst, int32_t dim, float fp8_scale, float* scale_out);

template <DType In>
inline float load(const void* src, int32_t i) {
  if constexpr (In == DType::kFloat32) {
    return static_cast<const float*>(src)[i];
  } else if constexpr (In == DType::kBFloat16) {
    return bf16_to_float(static_cast<const uint16_t*>(src)[i]);
  } else {
    static_assert(In == DType::kFloat16);
    return detail::fp16_to_float_inline(static_cast<const uint16_t*>(src)[i]);
  }
}

// Round half to even for |x| < 2^22 without a libm call (adding 1.5 * 2^23 leaves no
// fraction bits, so the FPU rounds in its default nearest-even mode).
inline float round_half_even_small(float x) { return (x + 0x1.8p23f) - 0x1.8p23f; }

template <DType In, DType Out>
void convert_row(const void* src, void* dst, int32_t dim, float fp8_scale, float* scale_out) {
  if constexpr (Out == DType::kFloat32) {
    auto* d = static_cast<float*>(dst);
    for (int32_t i = 0; i < dim; ++i) d[i] = load<In>(src, i);
  } else if constexpr (Out == DType::kBFloat16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int32_t i = 0; i < dim; ++i) d[i] = float_to_bf16(load<In>(src, i));
  } else if constexpr (Out == DType::kFloat16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int32_t i = 0; i < dim; ++i) d[i] = detail::float_to_fp16_inline(load<In>(src, i));
  } else if constexpr (Out == DType::kFp8E4M3) {
    auto* d = static_cast<uint8_t*>(dst);
    for (int32_t i = 0; i < dim; ++i)
      d[i] = detail::float_to_fp8_e4m3_inline(load<In>(src, i) / fp8_scale);
  } else {
    static_assert(Out == DType::kInt8);
    // max|x| over the bit patterns: for finite floats the order of |x| is the unsigned order
    // of (bits & 0x7fffffff), and an integer max reduction vectorizes without -ffast-math.
    uint32_t amax_bits = 0;
    for (int32_t i = 0; i < dim; ++i) {
      amax_bits = std::max(amax_bits, std::bit_cast<uint32_t>(load<In>(src, i)) & 0x7fffffffu);
    }
    const float amax = std::bit_cast<float>(amax_bits);
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    auto* d = static_cast<int8_t*>(dst);
    for (int32_t i = 0; i < dim; ++i) {
      const float q = std::clamp(round_half_even_small(load<In>(src, i) * inv), -127.0f, 127.0f);
      d[i] = static_cast<int8_t>(q);
    }
    *scale_out = amax / 127.0f;
  }
}

template <DType In>
RowFn pick_for_input(DType out) {
  switch (out) {
    case DType::kFloat32: return &convert_row<In, DType::kFloat32>;
    case DType::kFloat16: return &convert_row<In, DType::kFloat16>;
    case DType::kBFloat16: return &convert_row<In, DType::kBFloat16>;
    case DType::kInt8: return &convert_row<In, DType::kInt8>;
    case DType::kFp8E4M3: return &convert_row<In, DType::kFp8E4M3>;
  }
  return nullptr;
}

RowFn pick_row_fn(DType in, DType out) {
  switch (in) {
    case DType::kFloat32: return pick_for_input<DType::kFloat32>(out);
    case DType::kFloat16: return pick_for_input<DType::kFloat16>(out);
    case DType::kBFloat16: return pick_for_input<DType::kBFloat16>(out);
    default: return nullptr;
  }
}

// Head rows are short (64..1152 bytes): fixed-size copies compile to inline vector moves,
// which matters when every call moves a single row.
inline void copy_row(void* dst, const void* src, size_t n) {
  switch (n) {
    case 128: std::memcpy(dst, src, 128); return;
    case 256: std::memcpy(dst, src, 256); return;
    default: std::memcpy(dst, src, n); return;
  }
}

// Everything a write needs, resolved once per call. Offsets come from the view's strides,
// affine in (slot, head) for both layouts, so there is no division per row.
struct Plan {
  const char* key;
  const char* value;
  char* k_base;
  char* v_base;
  float* k_scales;  // int8 only
  float* v_scales;
  size_t in_row_bytes;  // bytes of one input head row
  size_t cache_esize;
  KVStrides st;
  int32_t heads;
  int32_t dim;
  float k_scale;
  float v_scale;
  RowFn fn;  // nullptr: raw copy (input dtype == cache dtype)

  inline void write_head(int64_t token, int32_t h, int64_t slot) const {
    const size_t in_off =
        (static_cast<size_t>(token) * static_cast<size_t>(heads) + static_cast<size_t>(h)) *
        in_row_bytes;
    const int64_t elem = st.k_elem(slot, h);
    char* kd = k_base + static_cast<size_t>(elem) * cache_esize;
    char* vd = v_base + static_cast<size_t>(elem + st.v_offset) * cache_esize;
    if (fn == nullptr) {
      copy_row(kd, key + in_off, in_row_bytes);
      copy_row(vd, value + in_off, in_row_bytes);
      return;
    }
    float* ks = nullptr;
    float* vs = nullptr;
    if (k_scales != nullptr) {
      const int64_t si = st.scale_index(slot, h);
      ks = k_scales + si;
      vs = v_scales + si;
    }
    fn(key + in_off, kd, dim, k_scale, ks);
    fn(value + in_off, vd, dim, v_scale, vs);
  }
};

Plan make_plan(const PagedKVView& v, const ConstTokenTensor& key, const ConstTokenTensor& value) {
  Plan p{};
  p.key = static_cast<const char*>(key.data);
  p.value = static_cast<const char*>(value.data);
  p.k_base = static_cast<char*>(v.k_data);
  p.v_base = static_cast<char*>(v.v_base());
  p.in_row_bytes = static_cast<size_t>(key.dim) * dtype_size(key.dtype);  // one head
  p.cache_esize = dtype_size(v.dtype);
  p.st = v.strides();
  p.heads = v.num_kv_heads;
  p.dim = v.head_dim;
  p.k_scales = v.dtype == DType::kInt8 ? v.k_scales : nullptr;
  p.v_scales = v.dtype == DType::kInt8 ? v.v_scales : nullptr;
  p.k_scale = v.k_scale;
  p.v_scale = v.v_scale;
  p.fn = key.dtype == v.dtype ? nullptr : pick_row_fn(key.dtype, v.dtype);
  return p;
}

// Copies `rows` head rows of `row_bytes` each from `src` (rows `src_stride` bytes apart: one
// head of consecutive tokens [token, head, dim]) to `dst`, where they are contiguous (one head
// plane of one kHND page). Used for raw copies (input dtype == cache dtype) only.
using RunCopyFn = void (*)(char* dst, const char* src, int64_t rows, size_t src_stride,
                           size_t row_bytes);

void copy_run_generic(char* dst, const char* src, int64_t rows, size_t src_stride,
                      size_t row_bytes) {
  for (int64_t i = 0; i < rows; ++i) {
    copy_row(dst, src, row_bytes);
    dst += row_bytes;
    src += src_stride;
  }
}

__attribute__((target("avx512f"))) void copy_run_avx512(char* dst, const char* src, int64_t rows,
                                                        size_t src_stride, size_t row_bytes) {
  const size_t vec_bytes = row_bytes & ~size_t{63};
  const size_t tail = row_bytes - vec_bytes;
  for (int64_t i = 0; i < rows; ++i) {
    for (size_t b = 0; b < vec_bytes; b += 64) {
      _mm512_storeu_si512(dst + b, _mm512_loadu_si512(src + b));
    }
    if (tail != 0) std::memcpy(dst + vec_bytes, src + vec_bytes, tail);
    dst += row_bytes;
    src += src_stride;
  }
}

RunCopyFn pick_run_copy() {
  return active_isa() >= Isa::kAvx512 ? &copy_run_avx512 : &copy_run_generic;
}

// kHND runs at least this long are written head by head (see write_tokens); shorter runs
// (decodes, pages of 16) measured faster token by token in bench/kv_write_bench.cpp.
constexpr int64_t kMinHeadMajorRun = 64;
// ... and only for tokens of at most this many input bytes per K (heads * head_dim * dtype):
// wider tokens (4 KiB: 8 x 128 fp32) measured slower head by head than token by token.
constexpr size_t kMaxHeadMajorTokenBytes = 1024;
// Input bytes (K + V) of the tokens written head by head at once.
constexpr size_t kRunInputBytes = size_t{256} << 10;

// Writes tokens [0, n) to the slots slot_of(t) returns (< 0: skip).
//
// Default order: token by token, head by head within a token, K and V side by side. The input
// is read sequentially; kNHD writes one contiguous block per token, kHND one row per head plane.
//
// kHND with pages of >= kMinHeadMajorRun slots and narrow tokens: the slot mapping is cut
// into runs of consecutive slots within one page (a prefill maps whole pages this way). A
// run's rows of one head form one contiguous block of that head's plane, so long runs are
// written head by head, K and V row by row side by side: two destination streams instead of
// 2 * heads, while the run's input stays in cache across the heads. Runs are written in token
// order and the slots within a run are distinct, so a slot written twice still keeps the
// later token.
template <class SlotOf>
void write_tokens(const Plan& p, const PagedKVView& v, int64_t n, SlotOf slot_of) {
  const auto write_token = [&p](int64_t t, int64_t s) {
    for (int32_t h = 0; h < p.heads; ++h) p.write_head(t, h, s);
  };
  const size_t token_bytes = static_cast<size_t>(p.heads) * p.in_row_bytes;
  if (v.layout != KVLayout::kHND || v.page_size < kMinHeadMajorRun ||
      token_bytes > kMaxHeadMajorTokenBytes) {
    for (int64_t t = 0; t < n; ++t) {
      const int64_t s = slot_of(t);
      if (s >= 0) write_token(t, s);
    }
    return;
  }
  const int64_t ps = v.page_size;
  const RunCopyFn copy_run = p.fn == nullptr ? pick_run_copy() : nullptr;
  const size_t row = p.in_row_bytes;
  const size_t src_stride = static_cast<size_t>(p.heads) * row;
  const size_t plane_bytes = static_cast<size_t>(p.st.head_stride) * p.cache_esize;
  const int64_t chunk =
      std::max<int64_t>(16, static_cast<int64_t>(kRunInputBytes / (2 * src_stride)));
  int64_t t = 0;
  while (t < n) {
    const int64_t s = slot_of(t);
    if (s < 0) {
      ++t;
      continue;
    }
    const int64_t page_end = (s / ps + 1) * ps;
    int64_t len = 1;
    while (t + len < n && s + len < page_end && slot_of(t + len) == s + len) ++len;
    if (len < kMinHeadMajorRun) {
      for (int64_t i = 0; i < len; ++i) write_token(t + i, s + i);
    } else if (copy_run != nullptr) {
      // Raw copy: K and V of head h are rows [s, s + len) of plane h.
      // Chunks of the run keep their K + V input within kRunInputBytes, so that it stays in
      // L2 while every head reads its rows from it.
      for (int64_t c0 = 0; c0 < len; c0 += chunk) {
        const int64_t rows = std::min(chunk, len - c0);
        const size_t dst_off = static_cast<size_t>(s + c0) * row;
        const size_t src_off = static_cast<size_t>(t + c0) * src_stride;
        for (int32_t h = 0; h < p.heads; ++h) {
          const size_t plane = static_cast<size_t>(h) * plane_bytes;
          const size_t in_h = static_cast<size_t>(h) * row;
          copy_run(p.k_base + plane + dst_off, p.key + src_off + in_h, rows, src_stride, row);
          copy_run(p.v_base + plane + dst_off, p.value + src_off + in_h, rows, src_stride, row);
        }
      }
    } else {
      for (int32_t h = 0; h < p.heads; ++h) {
        for (int64_t i = 0; i < len; ++i) p.write_head(t + i, h, s + i);
      }
    }
    t += len;
  }
}

}  // namespace

void check_write_inputs(const PagedKVView& v, ConstTokenTensor key, ConstTokenTensor value) {
  v.validate();
  key.check("key");
  value.check("value");
  for (const auto* t : {&key, &value}) {
    const char* name = t == &key ? "key" : "value";
    PAGEDKV_CHECK_ARG(
        t->dtype == DType::kFloat32 || t->dtype == DType::kFloat16 || t->dtype == DType::kBFloat16,
        "{} dtype must be float32, float16 or bfloat16, got {}", name, dtype_name(t->dtype));
    PAGEDKV_CHECK_ARG(t->heads == v.num_kv_heads && t->dim == v.head_dim,
                      "{} is [{}, {}, {}], the cache needs [*, num_kv_heads {}, head_dim {}]", name,
                      t->rows, t->heads, t->dim, v.num_kv_heads, v.head_dim);
  }
  PAGEDKV_CHECK_ARG(key.dtype == value.dtype, "key dtype {} != value dtype {}",
                    dtype_name(key.dtype), dtype_name(value.dtype));
  PAGEDKV_CHECK_ARG(key.rows == value.rows, "key has {} tokens, value {}", key.rows, value.rows);
}

void write_slots(const PagedKVView& v, ConstTokenTensor key, ConstTokenTensor value,
                 std::span<const int64_t> slot_mapping) {
  check_write_inputs(v, key, value);
  PAGEDKV_CHECK_ARG(static_cast<int64_t>(slot_mapping.size()) == key.rows,
                    "slot_mapping has {} entries, key/value have {} tokens", slot_mapping.size(),
                    key.rows);
  const int64_t num_slots = v.num_slots();
  for (size_t t = 0; t < slot_mapping.size(); ++t) {
    PAGEDKV_CHECK_RANGE(slot_mapping[t] < num_slots,
                        "slot_mapping[{}] = {} outside [0, {}) (negative = skip)", t,
                        slot_mapping[t], num_slots);
  }
  const Plan p = make_plan(v, key, value);
  const int64_t* slots = slot_mapping.data();
  write_tokens(p, v, key.rows, [slots](int64_t t) { return slots[t]; });
}

}  // namespace pagedkv
