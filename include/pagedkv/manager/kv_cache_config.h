// pagedkv/manager/kv_cache_config.h - the one validated description of a KV cache that a
// KVCacheManager runs over: pool size, model length, and the KV-cache groups (one per attention
// kind / page size, vLLM's "KV cache groups").
//
// Example (a hybrid model: full attention plus a 4096-token sliding window, page size 16):
//   KVCacheConfig config;
//   config.num_pages = 65536;                  // includes the null page
//   config.max_model_len = 32768;
//   config.groups = {KVCacheGroupSpec::full_attention(16),
//                    KVCacheGroupSpec::sliding_window_attention(16, 4096)};
//   config.validate();                         // throws InvalidArgument naming the bad field
//   KVCacheManager manager(config);            // validates again
//
// Invariants (what validate() checks):
//   - num_pages >= 2 (the null page plus at least one usable page);
//   - 1 <= max_model_len <= kMaxModelLen;
//   - at least one group, at most kMaxGroups; each page_size in [1, kMaxPageSize];
//   - a full-attention group has sliding_window == 0, a sliding-window group has
//     sliding_window >= 1;
//   - the lcm of the groups' page sizes fits in int32 (hits are multiples of it - rule 25);
//   - num_speculative_tokens >= 0.
// Group ids are indices into `groups`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pagedkv/hash/page_hash.h"

namespace pagedkv {

enum class AttentionKind : uint8_t {
  kFullAttention,  // every token attends to the whole prefix
  kSlidingWindow,  // every token attends to the last `sliding_window` tokens (itself included)
};

std::string_view attention_kind_name(AttentionKind kind);   // "full_attention" / "sliding_window"
AttentionKind parse_attention_kind(std::string_view name);  // throws InvalidArgument

struct KVCacheGroupSpec {
  AttentionKind kind = AttentionKind::kFullAttention;
  int32_t page_size = 16;      // tokens per page
  int32_t sliding_window = 0;  // tokens; 0 for full attention

  static KVCacheGroupSpec full_attention(int32_t page_size);
  static KVCacheGroupSpec sliding_window_attention(int32_t page_size, int32_t window);

  // Throws InvalidArgument naming the group index and the bad field.
  void validate(int32_t group_index = 0) const;
  friend bool operator==(const KVCacheGroupSpec&, const KVCacheGroupSpec&) = default;
};

struct KVCacheConfig {
  static constexpr int32_t kMaxModelLen = 1 << 28;
  static constexpr int32_t kMaxPageSize = 1 << 20;
  static constexpr int32_t kMaxGroups = 64;

  int32_t num_pages = 0;      // total pages in the pool, the null page included
  int32_t max_model_len = 0;  // tokens; allocate_slots never covers more than this
  std::vector<KVCacheGroupSpec> groups;
  bool enable_caching = true;  // prefix caching (hits, hashing of full pages)
  // The algorithm requests must hash with (RequestOptions::hash_algorithm); a request hashed
  // with another one is refused, since its hashes could never match the index.
  HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128;
  bool enable_kv_events = false;  // buffer KV events for take_events()
  // Draft tokens per step when speculative decoding is on (0 = off). When > 0 the prefix hit is
  // shortened by one more page (rule 17), as vLLM does for EAGLE drafters: the draft model
  // needs the target's hidden states of the last hit page, so that page is recomputed.
  int32_t num_speculative_tokens = 0;

  // One full-attention group over `num_pages` pages of `page_size` tokens.
  static KVCacheConfig single_group(int32_t num_pages, int32_t page_size, int32_t max_model_len,
                                    bool enable_caching = true);

  // Throws InvalidArgument naming the bad field and its limit.
  void validate() const;
  int32_t num_usable_pages() const { return num_pages - 1; }
  // Least common multiple of the groups' page sizes (validate() first).
  int32_t lcm_page_size() const;
};

}  // namespace pagedkv
