// KVCacheConfig validation: one place that decides what a usable cache description is.
#include "pagedkv/manager/kv_cache_config.h"

#include <limits>
#include <numeric>

#include "pagedkv/common/errors.h"

namespace pagedkv {

std::string_view attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kFullAttention: return "full_attention";
    case AttentionKind::kSlidingWindow: return "sliding_window";
  }
  return "unknown";
}

AttentionKind parse_attention_kind(std::string_view name) {
  if (name == "full_attention") return AttentionKind::kFullAttention;
  if (name == "sliding_window") return AttentionKind::kSlidingWindow;
  PAGEDKV_CHECK_ARG(false,
                    "unknown attention kind '{}' (expected 'full_attention' or "
                    "'sliding_window')",
                    name);
  return AttentionKind::kFullAttention;  // unreachable
}

KVCacheGroupSpec KVCacheGroupSpec::full_attention(int32_t page_size) {
  return KVCacheGroupSpec{AttentionKind::kFullAttention, page_size, 0};
}

KVCacheGroupSpec KVCacheGroupSpec::sliding_window_attention(int32_t page_size, int32_t window) {
  return KVCacheGroupSpec{AttentionKind::kSlidingWindow, page_size, window};
}

void KVCacheGroupSpec::validate(int32_t group_index) const {
  PAGEDKV_CHECK_ARG(kind == AttentionKind::kFullAttention || kind == AttentionKind::kSlidingWindow,
                    "group {}: unknown attention kind {}", group_index, static_cast<int>(kind));
  PAGEDKV_CHECK_ARG(page_size >= 1 && page_size <= KVCacheConfig::kMaxPageSize,
                    "group {}: page_size must be in [1, {}], got {}", group_index,
                    KVCacheConfig::kMaxPageSize, page_size);
  if (kind == AttentionKind::kFullAttention) {
    PAGEDKV_CHECK_ARG(sliding_window == 0,
                      "group {}: a full-attention group has sliding_window 0, got {}", group_index,
                      sliding_window);
  } else {
    PAGEDKV_CHECK_ARG(sliding_window >= 1 && sliding_window <= KVCacheConfig::kMaxModelLen,
                      "group {}: sliding_window must be in [1, {}] tokens, got {}", group_index,
                      KVCacheConfig::kMaxModelLen, sliding_window);
  }
}

KVCacheConfig KVCacheConfig::single_group(int32_t num_pages, int32_t page_size,
                                          int32_t max_model_len, bool enable_caching) {
  KVCacheConfig config;
  config.num_pages = num_pages;
  config.max_model_len = max_model_len;
  config.groups = {KVCacheGroupSpec::full_attention(page_size)};
  config.enable_caching = enable_caching;
  return config;
}

void KVCacheConfig::validate() const {
  PAGEDKV_CHECK_ARG(num_pages >= 2,
                    "num_pages must be >= 2 (the null page plus one usable page), got {}",
                    num_pages);
  PAGEDKV_CHECK_ARG(max_model_len >= 1 && max_model_len <= kMaxModelLen,
                    "max_model_len must be in [1, {}], got {}", kMaxModelLen, max_model_len);
  PAGEDKV_CHECK_ARG(!groups.empty() && groups.size() <= static_cast<size_t>(kMaxGroups),
                    "a config needs 1 to {} KV-cache groups, got {}", kMaxGroups, groups.size());
  for (size_t g = 0; g < groups.size(); ++g) groups[g].validate(static_cast<int32_t>(g));
  PAGEDKV_CHECK_ARG(
      hash_algorithm == HashAlgorithm::kXxh3_128 || hash_algorithm == HashAlgorithm::kSha256,
      "unknown hash algorithm {}", static_cast<int>(hash_algorithm));
  PAGEDKV_CHECK_ARG(num_speculative_tokens >= 0, "num_speculative_tokens must be >= 0, got {}",
                    num_speculative_tokens);
  int64_t lcm = 1;
  for (const KVCacheGroupSpec& g : groups) {
    lcm = std::lcm(lcm, static_cast<int64_t>(g.page_size));
    PAGEDKV_CHECK_ARG(lcm <= std::numeric_limits<int32_t>::max(),
                      "the lcm of the groups' page sizes exceeds {}",
                      std::numeric_limits<int32_t>::max());
  }
}

int32_t KVCacheConfig::lcm_page_size() const {
  int64_t lcm = 1;
  for (const KVCacheGroupSpec& g : groups) lcm = std::lcm(lcm, static_cast<int64_t>(g.page_size));
  return static_cast<int32_t>(lcm);
}

}  // namespace pagedkv
