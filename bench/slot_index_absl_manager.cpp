// Part of slot_index_bench: the KV-cache manager compiled a second time with its request-id
// table on absl::flat_hash_map, under other names (KVCacheManagerAbsl, ...) so that both
// builds of the manager run in one process, and the decode step measured on this build.
#define PAGEDKV_EXPERIMENT_ABSL_SLOT_INDEX 1
#define KVCacheManager KVCacheManagerAbsl
#define AllocationPlan AllocationPlanAbsl
#define allocation_status_name allocation_status_name_absl
#include "../src/manager/kv_cache_manager.cpp"

#include "decode_step_workload.h"

namespace pagedkv::bench {

void BM_DecodeStepAbslIndex(benchmark::State& state) {
  BM_DecodeStepWith<KVCacheManagerAbsl>(state);
}
BENCHMARK(BM_DecodeStepAbslIndex)->Unit(benchmark::kMicrosecond);

}  // namespace pagedkv::bench
