// PLACEHOLDER: kv_cache_manager is being written
