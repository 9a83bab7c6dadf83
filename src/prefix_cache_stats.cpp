// PLACEHOLDER: prefix_cache_stats is being written
