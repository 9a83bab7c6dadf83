// PLACEHOLDER: paged_kv_cache_metadata is being written
