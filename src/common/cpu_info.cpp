#include "pagedkv/common/cpu_info.h"

#include <atomic>
#include <cstdlib>

#include "pagedkv/common/errors.h"

namespace pagedkv {
namespace {

std::atomic<int> g_cap{static_cast<int>(Isa::kAvx512Bf16)};

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool bf16 = __builtin_cpu_supports("avx512bf16");
  if (avx512 && bf16) return Isa::kAvx512Bf16;
  if (avx512) return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
#endif
  return Isa::kScalar;
}

}  // namespace

Isa detected_isa() {
  static const Isa detected = detect();
  return detected;
}

Isa isa_cap() { return static_cast<Isa>(g_cap.load(std::memory_order_relaxed)); }

void set_isa_cap(Isa cap) { g_cap.store(static_cast<int>(cap), std::memory_order_relaxed); }

Isa active_isa() {
  const Isa d = detected_isa();
  const Isa c = isa_cap();
  return static_cast<int>(d) < static_cast<int>(c) ? d : c;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Bf16: return "avx512bf16";
  }
  return "unknown";
}

Isa parse_isa(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (name == isa_name(isa)) return isa;
  }
  PAGEDKV_CHECK_ARG(false, "unknown ISA '{}': expected scalar, avx2, avx512 or avx512bf16", name);
  return Isa::kScalar;
}

std::optional<Isa> isa_cap_from_env() {
  const char* v = std::getenv("PAGEDKV_ISA");
  if (v == nullptr || *v == '\0') return std::nullopt;
  const Isa isa = parse_isa(v);
  set_isa_cap(isa);
  return isa;
}

}  // namespace pagedkv
