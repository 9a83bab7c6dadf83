// Times ggml's CPU flash attention (ggml_flash_attn_ext) on one attention shape, for
// scripts/ggml_attention_compare.py. Not part of the pagedkv build: the script compiles it at run
// time against a ggml build the user made (headers ggml.h / ggml-cpu.h, libraries ggml,
// ggml-base, ggml-cpu); nothing of ggml is kept in this repository.
//
//   ggml_attention_timer --q-heads 32 --kv-heads 8 --head-dim 128 --batch 1 --ctx 4096
//       --q-len 1 --kv-type f32|f16|bf16 [--kv-layout hnd|nhd] [--threads 2] [--warmup 2]
//       [--reps 5] [--min-time 0.2] [--dump DIR]
//
// What is computed, per sequence b < batch (ggml's 4th dimension), query head h, query row i:
//   out[b, i, h, :] = softmax(scale * q[b, h, i, :] . k[b, h / group, j, :]  +  mask[i, j]) v
// with scale = 1/sqrt(head_dim), max_bias 0 (no ALiBi), logit_softcap 0 (none), no sinks, and
// ggml's default precision. Queries are float32 (ggml requires it); K and V are stored as
// --kv-type. The q_len new tokens sit at the end of the ctx-token context: decode (q_len 1) has
// no mask, prefill (q_len > 1) a float16 causal mask [ctx, q_len] that lets row i see keys
// j <= ctx - q_len + i (0 where visible, -inf elsewhere).
//
// Tensor shapes (ggml order, innermost first):
//   q    [head_dim, q_len, q_heads, batch]   float32, contiguous
//   k, v [head_dim, ctx, kv_heads, batch]    --kv-type; hnd: contiguous, every head's keys in one
//                                            block (ggml's best case); nhd: a permuted view of
//                                            [head_dim, kv_heads, ctx, batch] (token-major, the
//                                            way llama.cpp's cache tensors are laid out)
//   mask [ctx, q_len, 1, 1]                  float16, prefill only
//   out  [head_dim, q_heads, q_len, batch]   float32 (ggml's permuted result)
//
// Timing: a persistent ggml threadpool and work buffer, --warmup untimed calls, then --reps
// repetitions; each repetition runs the graph as many times as fit in --min-time seconds (at
// least once) and records the mean. Prints one JSON object: median, min and every repetition in
// microseconds. --dump DIR also writes q, k, v (as float32, logical order [batch, heads, tokens,
// head_dim]) and out (in the same order as q: [batch, q_heads, q_len, head_dim]) as raw
// little-endian float32 files for a reference check.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "ggml-cpu.h"
#include "ggml.h"

namespace {

struct Options {
  int q_heads = 32, kv_heads = 8, head_dim = 128;
  int batch = 1, ctx = 4096, q_len = 1;
  std::string kv_type = "f32", kv_layout = "hnd";
  int threads = 1, warmup = 2, reps = 5;
  double min_time = 0.2;
  std::string dump;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "ggml_attention_timer: %s\n", msg.c_str());
  std::exit(2);
}

int to_int(const char* s, const char* flag) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < 0 || v > (1L << 30)) die(std::string("bad value for ") + flag + ": " + s);
  return static_cast<int>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  const std::pair<const char*, int*> ints[] = {
      {"--q-heads", &o.q_heads}, {"--kv-heads", &o.kv_heads}, {"--head-dim", &o.head_dim},
      {"--batch", &o.batch},     {"--ctx", &o.ctx},           {"--q-len", &o.q_len},
      {"--threads", &o.threads}, {"--warmup", &o.warmup},     {"--reps", &o.reps}};
  const std::pair<const char*, std::string*> strings[] = {
      {"--kv-type", &o.kv_type}, {"--kv-layout", &o.kv_layout}, {"--dump", &o.dump}};
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) die("missing value after " + flag);
    const char* value = argv[i + 1];
    bool known = flag == "--min-time";
    if (known) o.min_time = std::atof(value);
    for (const auto& [name, field] : ints) {
      if (flag != name) continue;
      *field = to_int(value, name);
      known = true;
    }
    for (const auto& [name, field] : strings) {
      if (flag != name) continue;
      *field = value;
      known = true;
    }
    if (!known) die("unknown option " + flag);
  }
  if (o.q_heads < 1 || o.kv_heads < 1 || o.q_heads % o.kv_heads != 0)
    die("q_heads must be a positive multiple of kv_heads");
  if (o.head_dim < 1 || o.batch < 1 || o.ctx < 1 || o.q_len < 1 || o.q_len > o.ctx)
    die("need head_dim, batch, ctx >= 1 and 1 <= q_len <= ctx");
  if (o.kv_layout != "hnd" && o.kv_layout != "nhd") die("kv-layout must be hnd or nhd");
  if (o.threads < 1 || o.reps < 1) die("threads and reps must be >= 1");
  return o;
}

ggml_type kv_type_of(const std::string& name) {
  if (name == "f32") return GGML_TYPE_F32;
  if (name == "f16") return GGML_TYPE_F16;
  if (name == "bf16") return GGML_TYPE_BF16;
  die("kv-type must be f32, f16 or bf16, got " + name);
}

// Uniform values in (-1, 1) from a 64-bit LCG (the top 24 bits), stored as `t`.
void fill_uniform(ggml_tensor* t, uint64_t seed) {
  const int64_t n = ggml_nelements(t);
  std::vector<float> chunk(1 << 16);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t done = 0; done < n;) {
    const int64_t len = std::min<int64_t>(static_cast<int64_t>(chunk.size()), n - done);
    for (int64_t i = 0; i < len; ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      chunk[i] = static_cast<float>(s >> 40) / static_cast<float>(1 << 23) - 1.0f;
    }
    char* dst = static_cast<char*>(t->data) + done * static_cast<int64_t>(ggml_type_size(t->type));
    switch (t->type) {
      case GGML_TYPE_F32: std::memcpy(dst, chunk.data(), len * sizeof(float)); break;
      case GGML_TYPE_F16:
        ggml_fp32_to_fp16_row(chunk.data(), reinterpret_cast<ggml_fp16_t*>(dst), len);
        break;
      case GGML_TYPE_BF16:
        ggml_fp32_to_bf16_row(chunk.data(), reinterpret_cast<ggml_bf16_t*>(dst), len);
        break;
      default: die("unsupported fill type");
    }
    done += len;
  }
}

// Row i (the query at position ctx - q_len + i) sees keys j <= ctx - q_len + i.
void fill_causal_mask(ggml_tensor* mask, int ctx, int q_len) {
  const ggml_fp16_t zero = ggml_fp32_to_fp16(0.0f), neg_inf = ggml_fp32_to_fp16(-INFINITY);
  auto* m = static_cast<ggml_fp16_t*>(mask->data);
  for (int i = 0; i < q_len; ++i)
    for (int j = 0; j < ctx; ++j)
      m[static_cast<int64_t>(i) * ctx + j] = j <= ctx - q_len + i ? zero : neg_inf;
}

// Writes tensor `t` (logical ggml shape [n0, n1, n2, n3]) as float32 in the order the loops
// name, outermost first: (i3, i2, i1, i0), or (i3, i1, i2, i0) when swap12.
void dump_tensor(const ggml_tensor* t, const std::string& path, bool swap12) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) die("cannot write " + path);
  const int n0 = static_cast<int>(t->ne[0]), n1 = static_cast<int>(t->ne[1]);
  const int n2 = static_cast<int>(t->ne[2]), n3 = static_cast<int>(t->ne[3]);
  std::vector<float> row(n0);
  const int outer = swap12 ? n1 : n2, inner = swap12 ? n2 : n1;
  for (int i3 = 0; i3 < n3; ++i3)
    for (int a = 0; a < outer; ++a)
      for (int b = 0; b < inner; ++b) {
        const int i1 = swap12 ? a : b, i2 = swap12 ? b : a;
        for (int i0 = 0; i0 < n0; ++i0) row[i0] = ggml_get_f32_nd(t, i0, i1, i2, i3);
        std::fwrite(row.data(), sizeof(float), n0, f);
      }
  std::fclose(f);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const ggml_type kv_type = kv_type_of(o.kv_type);
  ggml_cpu_init();

  const int64_t d = o.head_dim, kv_elems = d * o.ctx * o.kv_heads * o.batch;
  const size_t data_bytes = d * o.q_len * o.q_heads * o.batch * sizeof(float) * 2 +  // q, out
                            2 * kv_elems * ggml_type_size(kv_type) +                 // k, v
                            static_cast<size_t>(o.ctx) * o.q_len * sizeof(ggml_fp16_t);
  ggml_init_params params = {};
  params.mem_size = data_bytes + 16 * ggml_tensor_overhead() + ggml_graph_overhead() + (1 << 20);
  params.no_alloc = false;
  ggml_context* ctx = ggml_init(params);
  if (!ctx) die("ggml_init failed");

  ggml_tensor* q = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, d, o.q_len, o.q_heads, o.batch);
  ggml_tensor *k, *v, *k_store, *v_store;
  if (o.kv_layout == "hnd") {
    k = k_store = ggml_new_tensor_4d(ctx, kv_type, d, o.ctx, o.kv_heads, o.batch);
    v = v_store = ggml_new_tensor_4d(ctx, kv_type, d, o.ctx, o.kv_heads, o.batch);
  } else {
    k_store = ggml_new_tensor_4d(ctx, kv_type, d, o.kv_heads, o.ctx, o.batch);
    v_store = ggml_new_tensor_4d(ctx, kv_type, d, o.kv_heads, o.ctx, o.batch);
    k = ggml_permute(ctx, k_store, 0, 2, 1, 3);  // -> [d, ctx, kv_heads, batch], strided
    v = ggml_permute(ctx, v_store, 0, 2, 1, 3);
  }
  ggml_tensor* mask = nullptr;
  if (o.q_len > 1) {
    mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, o.ctx, o.q_len, 1, 1);
    fill_causal_mask(mask, o.ctx, o.q_len);
  }
  fill_uniform(q, 1);
  fill_uniform(k_store, 2);
  fill_uniform(v_store, 3);

  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  ggml_tensor* out = ggml_flash_attn_ext(ctx, q, k, v, mask, scale, /*max_bias=*/0.0f,
                                         /*logit_softcap=*/0.0f);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, out);

  ggml_threadpool_params tpp = ggml_threadpool_params_default(o.threads);
  ggml_threadpool* pool = ggml_threadpool_new(&tpp);
  ggml_cplan plan = ggml_graph_plan(graph, o.threads, pool);
  std::vector<uint8_t> work(plan.work_size);
  plan.work_data = work.data();
  auto compute = [&] {
    if (ggml_graph_compute(graph, &plan) != GGML_STATUS_SUCCESS) die("ggml_graph_compute failed");
  };

  for (int i = 0; i < o.warmup; ++i) compute();
  std::vector<double> reps_us;
  int64_t total_iters = 0;
  for (int r = 0; r < o.reps; ++r) {
    const double t0 = now_seconds();
    double t1 = t0;
    int64_t iters = 0;
    do {
      compute();
      ++iters;
      t1 = now_seconds();
    } while (t1 - t0 < o.min_time);
    reps_us.push_back((t1 - t0) * 1e6 / static_cast<double>(iters));
    total_iters += iters;
  }
  std::vector<double> sorted = reps_us;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);

  if (!o.dump.empty()) {
    dump_tensor(q, o.dump + "/q.f32", false);
    dump_tensor(k, o.dump + "/k.f32", false);
    dump_tensor(v, o.dump + "/v.f32", false);
    dump_tensor(out, o.dump + "/out.f32", true);
  }

  std::printf("{\"median_us\": %.3f, \"min_us\": %.3f, \"iterations\": %lld, \"reps_us\": [",
              median, sorted.front(), static_cast<long long>(total_iters));
  for (size_t i = 0; i < reps_us.size(); ++i) std::printf("%s%.3f", i ? ", " : "", reps_us[i]);
  std::printf("], \"threads\": %d, \"kv_type\": \"%s\", \"kv_layout\": \"%s\"}\n", o.threads,
              o.kv_type.c_str(), o.kv_layout.c_str());

  ggml_threadpool_free(pool);
  ggml_free(ctx);
  return 0;
}
