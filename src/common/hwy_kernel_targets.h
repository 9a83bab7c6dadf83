// src/common/hwy_kernel_targets.h - the shared start of every Highway kernel file
// (src/<module>/*_kernels.cpp). Included first, before hwy/foreach_target.h:
//
//   #include "common/hwy_kernel_targets.h"
//   #define HWY_TARGET_INCLUDE "my_kernels.cpp"
//   #include <hwy/foreach_target.h>
//
// It keeps kernel loops optimized in unoptimized (debug, sanitizer) builds, which would
// otherwise run them several times slower (sanitizer instrumentation is unaffected), and picks
// the ISA levels compiled: AVX-512, AVX2 and the portable baseline. SSSE3/SSE4 are superseded
// by AVX2 on every CPU we dispatch to, and AVX3_DL adds nothing our kernels use. A build may
// still set HWY_DISABLED_TARGETS itself.
#pragma once

#ifndef __OPTIMIZE__
#pragma GCC optimize("O2")
#endif

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4 | HWY_AVX3_DL)
#endif
