// PLACEHOLDER: paged_attention_kernels is being written
