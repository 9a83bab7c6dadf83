// PLACEHOLDER: kv_cache_write is being written
