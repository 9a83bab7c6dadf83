// pagedkv/kv_cache/kv_cache_write.h - writing new keys/values of one layer into its paged cache
// (PagedKVView from kv_layout.h), for every layout and cache dtype, quantizing on the way in.
// (The seed-004 writes through PagedAttentionMetadata are in compat/metadata_write.h.)
//
// Example:
//   pagedkv::PagedKVView v = cache.view(layer);
//   // key, value: [tokens, num_kv_heads, head_dim] float32 / float16 / bfloat16
//   pagedkv::write_slots(v, key, value, slot_mapping);                  // vLLM-style
//
// Contracts:
//   key, value    [tokens, num_kv_heads, head_dim] float32, float16 or bfloat16 (dense);
//                 heads and head_dim equal the view's
//   slot_mapping  [tokens] int64 | slot = page_id * page_size + offset < view.num_slots();
//                 a negative slot is a padding token and is skipped
// Every index and shape is checked before the first byte is written (strong guarantee): the
// view by view.validate() (kv_layout.h), key and value by check_write_inputs, then
// InvalidArgument (slot_mapping size) or OutOfRange (a slot past the cache), naming the value
// and the limit.
// Storage conversion: to the cache dtype with round-to-nearest-even; int8 and fp8_e4m3 follow
// the quantization scheme documented in paged_kv_cache.h (int8 writes the per-(slot, head)
// scales; fp8 divides by view.k_scale / view.v_scale). A slot written twice in one call keeps
// the later token. Undefined: non-finite inputs on an int8 cache; inputs overlapping the cache.
// Speed: equal input and cache dtypes copy rows with inline vector moves; conversions run on
// SIMD kernels picked by active_isa() (AVX-512, AVX2 or scalar; every level writes the same
// bytes). Writes of 128 KiB or more (bytes read + written) run on up to omp_get_max_threads()
// OpenMP threads, each taking a range of slots. No allocation. bench/kv_write_bench.cpp and
// docs/attention-performance.md ("KV-cache writes") compare the bandwidth with memcpy.
#pragma once

#include <cstdint>
#include <span>

#include "pagedkv/kv_cache/kv_layout.h"
#include "pagedkv/kv_cache/token_tensor.h"

namespace pagedkv {

void write_slots(const PagedKVView& view, ConstTokenTensor key, ConstTokenTensor value,
                 std::span<const int64_t> slot_mapping);

// The checks every write makes before its own: view.validate(), key and value check(), input
// dtypes float32 / float16 / bfloat16 and equal, [rows, num_kv_heads, head_dim] with equal
// rows. Throws InvalidArgument naming the tensor, the value and the limit.
void check_write_inputs(const PagedKVView& view, ConstTokenTensor key, ConstTokenTensor value);

}  // namespace pagedkv
