// PLACEHOLDER: kv_cache_update is being written
