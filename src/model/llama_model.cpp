#include "pagedkv/model/llama_model.h"

#include <algorithm>
#include <cmath>

#include "pagedkv/common/errors.h"
#include "pagedkv/kv_cache/kv_cache_write.h"
#include "pagedkv/model/model_ops.h"

namespace pagedkv {

namespace {

RopeParams rope_params_of(const ModelConfig& c) {
  RopeParams p;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::kNone: p.type = RopeParams::Type::kNone; break;
    case RopeScaling::Type::kLinear: p.type = RopeParams::Type::kLinear; break;
    case RopeScaling::Type::kLlama3: p.type = RopeParams::Type::kLlama3; break;
  }
  p.factor = c.rope_scaling.factor;
  p.low_freq_factor = c.rope_scaling.low_freq_factor;
  p.high_freq_factor = c.rope_scaling.high_freq_factor;
  p.original_max_position_embeddings = c.rope_scaling.original_max_position_embeddings;
  return p;
}

// Grows `v` to at least n elements (never shrinks, so warm steps do not allocate).
void reserve_floats(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

}  // namespace

LlamaModel::LlamaModel(const ModelWeights& weights, MatmulMode mode)
    : weights_(&weights),
      config_(weights.config()),
      mode_(mode),
      q_width_(config_.num_attention_heads * config_.head_dim),
      kv_width_(config_.num_key_value_heads * config_.head_dim),
      rope_(config_.head_dim, config_.rope_theta, rope_params_of(config_)),
      lm_head_(weights.lm_head(), nullptr, config_.vocab_size, config_.hidden_size) {
  const int32_t h = config_.hidden_size;
  const int32_t inter = config_.intermediate_size;
  layers_.reserve(static_cast<size_t>(config_.num_hidden_layers));
  for (int32_t i = 0; i < config_.num_hidden_layers; ++i) {
    const LayerWeights& w = weights.layer(i);
    layers_.push_back(
        Layer{&w, Linear(w.q_proj, w.q_bias, q_width_, h), Linear(w.k_proj, w.k_bias, kv_width_, h),
              Linear(w.v_proj, w.v_bias, kv_width_, h), Linear(w.o_proj, nullptr, h, q_width_),
              Linear(w.gate_proj, nullptr, inter, h), Linear(w.up_proj, nullptr, inter, h),
              Linear(w.down_proj, nullptr, h, inter)});
  }
}

int64_t LlamaModel::kv_bytes_per_page(int32_t page_size, DType dtype) const {
  PagedKVCacheMetadata md = kv_cache_metadata(2, page_size, dtype, page_size);
  return md.bytes_per_page_all_layers();
}

PagedKVCacheMetadata LlamaModel::kv_cache_metadata(int64_t num_pages, int32_t page_size,
                                                   DType dtype, int32_t max_model_len) const {
  PAGEDKV_CHECK_ARG(page_size > 0, "page_size must be > 0, got {}", page_size);
  PAGEDKV_CHECK_ARG(num_pages >= 2, "num_pages must be >= 2 (the null page and one more), got {}",
                    num_pages);
  PagedKVCacheMetadata md;
  md.batch_size = 1;
  md.num_hidden_layers = config_.num_hidden_layers;
  md.num_pages_per_layer = num_pages;
  md.page_size = page_size;
  // The cache's own bound is what one sequence can hold in this pool; the scheduler enforces
  // the model length.
  const int64_t pool_tokens = (num_pages - 1) * int64_t{page_size};
  md.max_sequences = static_cast<int32_t>(std::min<int64_t>(max_model_len, pool_tokens));
  md.num_pages_per_sequence = (md.max_sequences + page_size - 1) / page_size;
  md.num_kv_heads = config_.num_key_value_heads;
  md.kv_head_dim_size = config_.head_dim;
  md.hbm_utilization = 1.0;
  md.dtype = dtype;
  md.layout = KVLayout::kHND;
  md.validate();
  return md;
}

void LlamaModel::check(const ForwardBatch& b, const PagedKVCache& cache, size_t logits_size) const {
  const size_t t = b.token_ids.size();
  PAGEDKV_CHECK_ARG(t > 0, "a forward batch needs at least one token, got 0");
  PAGEDKV_CHECK_ARG(b.positions.size() == t, "positions has {} entries, token_ids {}",
                    b.positions.size(), t);
  PAGEDKV_CHECK_ARG(b.slot_mapping.size() == t, "slot_mapping has {} entries, token_ids {}",
                    b.slot_mapping.size(), t);
  const auto& md = cache.metadata();
  PAGEDKV_CHECK_ARG(md.num_hidden_layers == config_.num_hidden_layers &&
                        md.num_kv_heads == config_.num_key_value_heads &&
                        md.kv_head_dim_size == config_.head_dim,
                    "the cache has {} layers x {} kv heads x head_dim {}, the model {} x {} x {}",
                    md.num_hidden_layers, md.num_kv_heads, md.kv_head_dim_size,
                    config_.num_hidden_layers, config_.num_key_value_heads, config_.head_dim);
  for (size_t i = 0; i < t; ++i) {
    const int32_t id = b.token_ids[i];
    if (id < 0 || id >= config_.vocab_size) {
      throw OutOfRange(fmt::format("token_ids[{}] = {} is outside [0, vocab_size {})", i, id,
                                   config_.vocab_size));
    }
    PAGEDKV_CHECK_ARG(b.positions[i] >= 0, "positions[{}] = {} is negative", i, b.positions[i]);
  }
  for (size_t i = 0; i < b.logits_indices.size(); ++i) {
    const int32_t r = b.logits_indices[i];
    if (r < 0 || static_cast<size_t>(r) >= t) {
      throw OutOfRange(
          fmt::format("logits_indices[{}] = {} is outside [0, num_tokens {})", i, r, t));
    }
  }
  const size_t want = b.logits_indices.size() * static_cast<size_t>(config_.vocab_size);
  PAGEDKV_CHECK_ARG(logits_size == want, "logits has {} floats, need {} rows x vocab {} = {}",
                    logits_size, b.logits_indices.size(), config_.vocab_size, want);
}

void LlamaModel::grow_scratch(int32_t num_tokens, int32_t num_logits) {
  if (num_tokens > token_capacity_) {
    const int64_t n = num_tokens;
    reserve_floats(x_, n * config_.hidden_size);
    reserve_floats(normed_, n * config_.hidden_size);
    reserve_floats(q_, n * q_width_);
    reserve_floats(k_, n * kv_width_);
    reserve_floats(v_, n * kv_width_);
    reserve_floats(attn_, n * q_width_);
    reserve_floats(proj_, n * config_.hidden_size);
    reserve_floats(gate_, n * config_.intermediate_size);
    reserve_floats(up_, n * config_.intermediate_size);
    token_capacity_ = num_tokens;
  }
  if (num_logits > logits_capacity_) {
    reserve_floats(last_, int64_t{num_logits} * config_.hidden_size);
    logits_capacity_ = num_logits;
  }
}

void LlamaModel::run_layer(const Layer& layer, int32_t index, const ForwardBatch& b,
                           PagedKVCache& cache) {
  const int32_t t = static_cast<int32_t>(b.token_ids.size());
  const int32_t h = config_.hidden_size;
  const int32_t d = config_.head_dim;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const LayerWeights& w = *layer.weights;

  rms_norm(x_.data(), w.input_layernorm, t, h, eps, normed_.data());
  layer.q_proj.forward(normed_.data(), t, q_.data(), mode_);
  layer.k_proj.forward(normed_.data(), t, k_.data(), mode_);
  layer.v_proj.forward(normed_.data(), t, v_.data(), mode_);
  rope_.apply(q_.data(), t, config_.num_attention_heads, b.positions.data());
  rope_.apply(k_.data(), t, config_.num_key_value_heads, b.positions.data());

  const PagedKVView view = cache.view(index);
  write_slots(view, ConstTokenTensor::f32(k_.data(), t, config_.num_key_value_heads, d),
              ConstTokenTensor::f32(v_.data(), t, config_.num_key_value_heads, d), b.slot_mapping);
  AttentionOptions options;
  options.scale = 1.0f / std::sqrt(static_cast<float>(d));
  // One kernel shape for every request, so chunking and cached prefixes change no bit (rule 49).
  options.shape_invariant = mode_ == MatmulMode::kDeterministic;
  paged_attention(view, ConstTokenTensor::f32(q_.data(), t, config_.num_attention_heads, d),
                  b.attention, options,
                  std::span<float>(attn_.data(), static_cast<size_t>(t) * q_width_),
                  attention_workspace_);
  layer.o_proj.forward(attn_.data(), t, proj_.data(), mode_);
  add_inplace(x_.data(), proj_.data(), int64_t{t} * h);

  rms_norm(x_.data(), w.post_attention_layernorm, t, h, eps, normed_.data());
  layer.gate_proj.forward(normed_.data(), t, gate_.data(), mode_);
  layer.up_proj.forward(normed_.data(), t, up_.data(), mode_);
  silu_mul(gate_.data(), up_.data(), int64_t{t} * config_.intermediate_size, gate_.data());
  layer.down_proj.forward(gate_.data(), t, proj_.data(), mode_);
  add_inplace(x_.data(), proj_.data(), int64_t{t} * h);
}

void LlamaModel::forward(const ForwardBatch& b, PagedKVCache& cache, std::span<float> logits) {
  check(b, cache, logits.size());
  const int32_t t = static_cast<int32_t>(b.token_ids.size());
  const int32_t r = static_cast<int32_t>(b.logits_indices.size());
  const int32_t h = config_.hidden_size;
  grow_scratch(t, r);

  embedding_lookup(weights_->embed_tokens(), config_.vocab_size, h, b.token_ids, x_.data());
  for (int32_t i = 0; i < config_.num_hidden_layers; ++i) {
    run_layer(layers_[static_cast<size_t>(i)], i, b, cache);
  }
  if (r == 0) return;
  // Final norm and head only at the rows that need logits (rule 48).
  for (int32_t i = 0; i < r; ++i) {
    const float* src = x_.data() + static_cast<size_t>(b.logits_indices[i]) * h;
    std::copy(src, src + h, normed_.data() + static_cast<size_t>(i) * h);
  }
  rms_norm(normed_.data(), weights_->norm(), r, h, static_cast<float>(config_.rms_norm_eps),
           last_.data());
  lm_head_.forward(last_.data(), r, logits.data(), mode_);
}

}  // namespace pagedkv
