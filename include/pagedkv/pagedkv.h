// pagedkv/pagedkv.h - the whole public C++ API in one include.
//
//   #include "pagedkv/pagedkv.h"
//   pagedkv::KVCacheManager manager(/*num_pages=*/1024, /*page_size=*/16, /*max_model_len=*/4096);
//
// Each module's headers sit in include/pagedkv/<module>/, lowest layer first (docs/design.md).
#pragma once

#include "pagedkv/common/cpu_info.h"
#include "pagedkv/common/dtype.h"
#include "pagedkv/common/errors.h"
#include "pagedkv/common/types.h"
#include "pagedkv/memory/device_mirror.h"
#include "pagedkv/hash/page_hash.h"
#include "pagedkv/hash/request.h"
#include "pagedkv/pool/free_queue.h"
#include "pagedkv/pool/kv_events.h"
#include "pagedkv/pool/page_pool.h"
#include "pagedkv/pool/prefix_index.h"
#include "pagedkv/manager/kv_cache_config.h"
#include "pagedkv/manager/kv_cache_manager.h"
#include "pagedkv/manager/prefix_cache_stats.h"
#include "pagedkv/manager/single_type_manager.h"
#include "pagedkv/page_table/batch_layout.h"
#include "pagedkv/page_table/multi_group_page_table.h"
#include "pagedkv/page_table/page_table.h"
#include "pagedkv/kv_cache/kv_cache_write.h"
#include "pagedkv/kv_cache/kv_layout.h"
#include "pagedkv/kv_cache/paged_kv_cache.h"
#include "pagedkv/kv_cache/paged_kv_cache_metadata.h"
#include "pagedkv/kv_cache/token_tensor.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/replay/default_workload.h"
#include "pagedkv/replay/replay.h"
#include "pagedkv/replay/trace.h"
#include "pagedkv/compat/hbm_page_manager.h"
#include "pagedkv/compat/kv_cache_update.h"
#include "pagedkv/compat/metadata_write.h"
#include "pagedkv/compat/paged_attention_metadata.h"
