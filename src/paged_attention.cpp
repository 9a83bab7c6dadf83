// PLACEHOLDER: paged_attention is being written
