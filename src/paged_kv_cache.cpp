// PLACEHOLDER: paged_kv_cache is being written
