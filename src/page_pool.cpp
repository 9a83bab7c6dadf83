// PLACEHOLDER: page_pool is being written
