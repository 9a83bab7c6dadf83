// pagedkv/kv_cache/kv_cache_write.h - writing new keys/values of one layer into its paged cache
// (PagedKVView from kv_layout.h), for every layout and cache dtype, quantizing on the way in.
//
// Example:
//   pagedkv::PagedKVView v = cache.view(layer);
//   // key, value: [tokens, num_kv_heads, head_dim] float32 / float16 / bfloat16
//   pagedkv::write_slots(v, key, value, slot_mapping);                  // vLLM-style
//   pagedkv::write_prefill_to_cache(v, key, value, attn_metadata);      // seed 004
//   pagedkv::write_decodes_to_cache(v, key, value, attn_metadata);      // seed 004
//
// Contracts:
//   key, value    [tokens, num_kv_heads, head_dim] float32, float16 or bfloat16 (dense);
//                 heads and head_dim equal the view's
//   slot_mapping  [tokens] int64 | slot = page_id * page_size + offset < view.num_slots();
//                 a negative slot is a padding token and is skipped
//   prefill       key/value [padded_len, ...] with padded_len == prefill_position.size();
//                 token i < prefill_length goes to position i, i.e. page
//                 prefill_page_table[i / page_size], offset i % page_size; tokens at index >=
//                 prefill_length (padding) are not written
//   decodes       key/value [batch, ...] with batch == decodes_position.size(); row b goes to
//                 position p = decodes_position[b] through row b of decodes_page_table; a row
//                 with p < 0 is padding and is skipped
// Every index, page id and shape is checked before the first byte is written (strong
// guarantee): the view by view.validate() (kv_layout.h), then InvalidArgument (shape, dtype,
// missing prefill/decode part) or OutOfRange (slot, position or page id past its limit),
// naming the value and the limit.
// Storage conversion: to the cache dtype with round-to-nearest-even; int8 and fp8_e4m3 follow
// the quantization scheme documented in paged_kv_cache.h (int8 writes the per-(slot, head)
// scales; fp8 divides by view.k_scale / view.v_scale). A slot written twice in one call keeps
// the later token. Undefined: non-finite inputs on an int8 cache; inputs overlapping the cache.
// Speed: equal input and cache dtypes copy rows with memcpy-class moves; no allocation.
#pragma once

#include <cstdint>
#include <span>

#include "pagedkv/kv_cache/kv_layout.h"
#include "pagedkv/kv_cache/paged_attention_metadata.h"
#include "pagedkv/kv_cache/token_tensor.h"

namespace pagedkv {

void write_slots(const PagedKVView& view, ConstTokenTensor key, ConstTokenTensor value,
                 std::span<const int64_t> slot_mapping);

void write_prefill_to_cache(const PagedKVView& view, ConstTokenTensor key, ConstTokenTensor value,
                            const PagedAttentionMetadata& metadata);

void write_decodes_to_cache(const PagedKVView& view, ConstTokenTensor key, ConstTokenTensor value,
                            const PagedAttentionMetadata& metadata);

}  // namespace pagedkv
