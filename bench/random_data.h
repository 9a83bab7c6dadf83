// Deterministic benchmark inputs: random_floats(n, seed) is n floats uniform in [-1, 1) from a
// Mersenne Twister seeded with `seed`, the same on every run and machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace pagedkv::bench {

inline std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

}  // namespace pagedkv::bench
