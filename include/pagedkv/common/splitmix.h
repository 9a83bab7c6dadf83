// pagedkv/common/splitmix.h - the splitmix64 mixer shared by pagedkv's counter-based generators
// (trace token synthesis, the model maker's weights, score_tokens' page orders): stateless,
// platform independent, so any draw is computed directly from its key and counter.
//
// Example:
//   uint64_t r = pagedkv::splitmix64_mix(key + pagedkv::kSplitmix64Gamma * (i + 1));
//
// splitmix64_mix is a bijection on 64 bits with full avalanche; splitmix64_mix(0) == 0.
#pragma once

#include <cstdint>

namespace pagedkv {

// The golden-ratio increment between consecutive states of a splitmix64 stream.
inline constexpr uint64_t kSplitmix64Gamma = 0x9E3779B97F4A7C15ull;

// The splitmix64 output function.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace pagedkv
