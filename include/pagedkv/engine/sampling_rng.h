// pagedkv/engine/sampling_rng.h - the sampler's randomness: a counter-based generator
// (Philox4x32-10) keyed per request, so the random number behind a request's i-th output token
// depends only on (request key, i): not on the batch, the thread count or earlier calls.
//
// Example:
//   uint64_t key = request_sampling_key("req-7", params.seed);   // stable per request
//   double u = sampling_uniform(key, /*output_index=*/0);          // in [0, 1)
//
// Exact definitions (reproducible anywhere):
//   request_sampling_key(id, seed):
//     seed set:   XXH3_64bits_withSeed(8 little-endian bytes of *seed, 8, /*xxh seed=*/1)
//                 (depends only on the seed: equal seeds give equal streams, as vLLM's
//                 per-request generators do);
//     seed unset: XXH3_64bits_withSeed(bytes of id, id.size(), /*xxh seed=*/0).
//   sampling_uniform(key, i):
//     r = philox4x32_10(counter = {uint32(i), 0, 0, 0}, key = {low32(key), high32(key)});
//     u = (((uint64(r[0]) << 32) | r[1]) >> 11) * 2^-53          (53 random bits, [0, 1)).
//   philox4x32_10 is Random123's Philox4x32 with 10 rounds (Salmon et al., SC'11), checked
//   against its published known-answer vectors in the tests.
//
// Errors: sampling_uniform throws InvalidArgument for a negative output index.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pagedkv {

// Random123's Philox4x32 with 10 rounds: a bijection of the 128-bit counter under a 64-bit key.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// The 64-bit key of a request's random stream (definition above).
uint64_t request_sampling_key(std::string_view request_id, std::optional<int64_t> seed);

// The uniform double in [0, 1) for output token `output_index` (>= 0) of the stream `key`.
double sampling_uniform(uint64_t key, int32_t output_index);

}  // namespace pagedkv
