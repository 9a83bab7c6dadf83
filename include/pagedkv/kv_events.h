// pagedkv/kv_events.h - what the prefix cache tells the outside world (vLLM-style KV events):
// pages stored under a hash, pages removed from the index, the whole index cleared.
// Producers buffer events; consumers drain them with take_events().
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "pagedkv/page_hash.h"
#include "pagedkv/types.h"

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
};

}  // namespace pagedkv
