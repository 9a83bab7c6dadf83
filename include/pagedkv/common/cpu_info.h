// pagedkv/common/cpu_info.h - which SIMD instruction sets the kernels may use, chosen at run time.
//
// The library is built without -march=native; kernels ask `active_isa()` and dispatch.
// The cap exists for valgrind/callgrind (which cannot run AVX-512) and for tests that compare
// the SIMD paths against the scalar one.
//
// Example:
//   pagedkv::set_isa_cap(pagedkv::Isa::kAvx2);   // never use AVX-512 from now on
//   if (pagedkv::active_isa() >= pagedkv::Isa::kAvx512) { ... }
//
// Invariants: active_isa() == min(detected_isa(), isa_cap()). The cap starts at kAvx512Bf16
// unless the program calls set_isa_cap or `isa_cap_from_env()` (PAGEDKV_ISA=scalar|avx2|
// avx512|avx512bf16) - the library never reads the environment on its own.
#pragma once

#include <optional>
#include <string_view>

namespace pagedkv {

enum class Isa : int {
  kScalar = 0,
  kAvx2 = 1,        // AVX2 + FMA + F16C
  kAvx512 = 2,      // AVX-512 F/BW/DQ/VL
  kAvx512Bf16 = 3,  // kAvx512 + AVX512_BF16 (+ AVX512_FP16 where present)
};

// The best ISA this CPU (and OS) supports.
Isa detected_isa();
// The current cap (thread-safe to read; set it before starting kernels).
Isa isa_cap();
void set_isa_cap(Isa cap);
// min(detected_isa(), isa_cap()).
Isa active_isa();

std::string_view isa_name(Isa isa);
// Parses "scalar", "avx2", "avx512", "avx512bf16"; throws InvalidArgument otherwise.
Isa parse_isa(std::string_view name);
// Reads PAGEDKV_ISA; applies and returns it when set. Called by the CLI, tests and benchmarks.
std::optional<Isa> isa_cap_from_env();

}  // namespace pagedkv
