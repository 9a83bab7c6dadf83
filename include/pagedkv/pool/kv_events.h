// pagedkv/pool/kv_events.h - what the prefix cache tells the outside world (vLLM-style KV events):
// pages stored under a hash, pages removed from the index, the whole index cleared.
// Producers buffer events; consumers drain them with take_events().
//
// Example (a pool built with enable_kv_events = true):
//   pool.cache_full_pages(chain, pages, 0, 3, 0);     // one kStored event, 3 hashes
//   pool.get_new_pages(1);                            // reuses a cached page: one kRemoved
//   for (const KVEvent& e : pool.take_events()) publish(e);   // the buffer is now empty
//
// Invariants: events come out in the order the cache changed; a page of a kStored event gets
// exactly one kRemoved event if it is evicted (its page reused), and none once a kAllCleared
// event (reset_prefix_cache) has dropped every hash.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "pagedkv/common/types.h"
#include "pagedkv/hash/page_hash.h"

namespace pagedkv {

struct KVEvent {
  enum class Kind : uint8_t { kStored, kRemoved, kAllCleared };
  Kind kind = Kind::kStored;
  // kStored: the hashes of the newly cached pages (chain order) and the hash of the page
  // before the first of them (empty for a chain starting at page 0).
  // kRemoved: exactly one hash, the evicted page's.
  std::optional<PageHash> parent_hash;
  std::vector<PageHash> page_hashes;
  std::vector<TokenId> token_ids;  // kStored: the tokens of the stored pages, concatenated
  int32_t page_size = 0;           // kStored
  std::optional<int64_t> lora_id;  // kStored
  GroupId group_id = 0;            // kStored / kRemoved
  std::vector<PageId> page_ids;    // kStored / kRemoved: the physical pages concerned
  // The algorithm of every hash above (the pool's): digest_size(hash_algorithm) bytes each.
  HashAlgorithm hash_algorithm = HashAlgorithm::kXxh3_128;
};

}  // namespace pagedkv
