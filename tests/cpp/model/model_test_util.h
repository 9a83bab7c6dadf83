// Helpers shared by the model tests: random data, ISA levels, thread-count guards.
#pragma once

#include <omp.h>

#include <cstdint>
#include <random>
#include <vector>

#include "pagedkv/common/cpu_info.h"

namespace pagedkv::testing {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(rng);
  return v;
}

// The ISA levels this CPU runs, lowest first.
inline std::vector<Isa> model_isa_levels() {
  std::vector<Isa> out = {Isa::kScalar};
  if (detected_isa() >= Isa::kAvx2) out.push_back(Isa::kAvx2);
  if (detected_isa() >= Isa::kAvx512) out.push_back(Isa::kAvx512);
  return out;
}

// Restores the ISA cap when a test ends.
class IsaCap {
 public:
  explicit IsaCap(Isa cap) : saved_(isa_cap()) { set_isa_cap(cap); }
  ~IsaCap() { set_isa_cap(saved_); }

 private:
  Isa saved_;
};

// Restores the OpenMP thread count when a test ends.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

}  // namespace pagedkv::testing
