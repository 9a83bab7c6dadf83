// pagedkv/compat/metadata_write.h - seed 004's per-layer cache writes (PagedAttentionCacheView's
// write_prefill_to_cache / write_decodes_to_cache): new keys/values placed through the step's
// PagedAttentionMetadata instead of a slot mapping. Both map their tokens to slots and write
// them with the core write_slots (kv_cache_write.h), so storage conversion, quantization and
// speed are those of write_slots.
//
// Example:
//   pagedkv::PagedKVView v = cache.view(layer);
//   auto md = pagedkv::PagedAttentionMetadata::prefill(37, positions_0_to_47, {5, 9, 2});
//   pagedkv::write_prefill_to_cache(v, key, value, md);   // key, value [48, kv_heads, dim]
//
// Contracts:
//   key, value  as write_slots: [tokens, num_kv_heads, head_dim] float32, float16 or bfloat16
//   prefill     key/value [padded_len, ...] with padded_len == prefill_position.size();
//               token i < prefill_length goes to position i, i.e. page
//               prefill_page_table[i / page_size], offset i % page_size; tokens at index >=
//               prefill_length (padding) are not written
//   decodes     key/value [batch, ...] with batch == decodes_position.size(); row b goes to
//               position p = decodes_position[b] through row b of decodes_page_table; a row
//               with p < 0 is padding and is skipped
// Everything is checked before the first byte is written (strong guarantee): the view and
// key/value as every write checks them (check_write_inputs), then InvalidArgument (shape,
// missing prefill/decode part) or OutOfRange (position or page id past its limit), naming the
// value and the limit. No allocation.
#pragma once

#include "pagedkv/compat/paged_attention_metadata.h"
#include "pagedkv/kv_cache/kv_layout.h"
#include "pagedkv/kv_cache/token_tensor.h"

namespace pagedkv {

void write_prefill_to_cache(const PagedKVView& view, ConstTokenTensor key, ConstTokenTensor value,
                            const PagedAttentionMetadata& metadata);

void write_decodes_to_cache(const PagedKVView& view, ConstTokenTensor key, ConstTokenTensor value,
                            const PagedAttentionMetadata& metadata);

}  // namespace pagedkv
