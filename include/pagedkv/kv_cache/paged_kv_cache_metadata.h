// pagedkv/kv_cache/paged_kv_cache_metadata.h - the static shape of a paged KV cache (seed 004's
// PagedAttentionCacheMetaData): how many layers, pages, heads, which dtype and layout, and how
// many pages fit in a memory budget.
//
// Example:
//   pagedkv::PagedKVCacheConfig cfg;
//   cfg.batch_size = 64; cfg.num_hidden_layers = 32; cfg.max_sequences = 8192;
//   cfg.page_size = 16; cfg.num_kv_heads = 8; cfg.kv_head_dim_size = 128;
//   cfg.hbm_utilization = 0.5; cfg.dtype = pagedkv::DType::kBFloat16;
//   cfg.memory_budget_bytes = 8ull << 30;          // 0 = this machine's physical memory
//   auto md = pagedkv::PagedKVCacheMetadata::create(cfg);
//   // md.num_pages_per_layer == floor(8 GiB * 0.5 / md.bytes_per_page_all_layers())
//   auto again = pagedkv::PagedKVCacheMetadata::from_json(md.to_json());   // == md
//
// Sizing (create): one page of one layer holds K and V for page_size tokens of every kv head,
//   bytes_per_page_per_layer = 2 * num_kv_heads * page_size * kv_head_dim_size * dtype_size
//                              (+ 2 * num_kv_heads * page_size * 4 for int8's float scales),
//   num_pages_per_layer = floor(floor(budget * hbm_utilization) / (bytes_per_page_per_layer
//                                                                  * num_hidden_layers)).
// Page 0 is the pool's null page, so the budget must hold num_pages_per_sequence + 1 pages.
//
// Names: `max_sequences` is the seed's name for the maximum model length in tokens (not a
// count of sequences); `hbm_utilization` is the seed's name for the fraction of the memory
// budget given to the cache (`memory_utilization()` returns the same value). On a CPU the
// budget is an explicit byte count or the physical memory (sysconf).
//
// Invariants (validate()): every count > 0; 0 < hbm_utilization <= 1;
// num_pages_per_sequence == cdiv(max_sequences, page_size);
// num_pages_per_layer >= num_pages_per_sequence + 1; the byte size of a layer fits in int64.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pagedkv/common/dtype.h"
#include "pagedkv/kv_cache/kv_layout.h"

namespace pagedkv {

std::string_view kv_layout_name(KVLayout layout);  // "HND", "NHD"
KVLayout parse_kv_layout(std::string_view name);   // throws InvalidArgument

// The inputs of PagedKVCacheMetadata::create (the seed's create() arguments plus dtype,
// layout and the byte budget).
struct PagedKVCacheConfig {
  int32_t batch_size = 0;  // max sequences decoded together
  int32_t num_hidden_layers = 0;
  int32_t max_sequences = 0;  // max model length in tokens (seed name)
  int32_t page_size = 0;      // tokens per page
  int32_t num_kv_heads = 0;
  int32_t kv_head_dim_size = 0;
  double hbm_utilization = 0.9;  // fraction of the budget, in (0, 1]
  DType dtype = DType::kBFloat16;
  KVLayout layout = KVLayout::kHND;
  uint64_t memory_budget_bytes = 0;  // 0: physical memory of this machine
};

struct PagedKVCacheMetadata {
  int32_t batch_size = 0;
  int32_t num_hidden_layers = 0;
  int64_t num_pages_per_layer = 0;     // physical pages per layer, page 0 included
  int32_t num_pages_per_sequence = 0;  // cdiv(max_sequences, page_size)
  int32_t max_sequences = 0;           // max model length in tokens
  int32_t page_size = 0;
  int32_t num_kv_heads = 0;
  int32_t kv_head_dim_size = 0;
  double hbm_utilization = 0.0;
  DType dtype = DType::kBFloat16;
  KVLayout layout = KVLayout::kHND;

  // Sizes num_pages_per_layer from the budget (see above). Throws InvalidArgument naming the
  // bad value (non-positive dims, utilization outside (0, 1], a budget below one max-length
  // sequence plus the null page).
  static PagedKVCacheMetadata create(const PagedKVCacheConfig& config);
  // Physical memory of this machine in bytes (sysconf).
  static uint64_t physical_memory_bytes();

  double memory_utilization() const { return hbm_utilization; }
  // Bytes of K + V (+ int8 scales) for one page of one layer.
  int64_t bytes_per_page_per_layer() const;
  int64_t bytes_per_page_all_layers() const {
    return bytes_per_page_per_layer() * num_hidden_layers;
  }
  int64_t bytes_per_layer() const { return bytes_per_page_per_layer() * num_pages_per_layer; }
  int64_t total_bytes() const { return bytes_per_layer() * num_hidden_layers; }

  // Throws InvalidArgument naming the first field that breaks an invariant.
  void validate() const;

  // One JSON object with every field (dtype and layout by name); from_json(to_json()) == *this,
  // doubles included. from_json rejects missing, unknown or ill-typed keys and validates.
  std::string to_json() const;
  static PagedKVCacheMetadata from_json(std::string_view json);

  bool operator==(const PagedKVCacheMetadata&) const = default;
};

}  // namespace pagedkv
