// PLACEHOLDER: batch_layout is being written
