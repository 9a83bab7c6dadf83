// PLACEHOLDER: prefix_index is being written
