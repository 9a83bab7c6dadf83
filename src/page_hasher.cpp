// PLACEHOLDER: page_hasher is being written
