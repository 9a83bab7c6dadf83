// PLACEHOLDER: dtype is being written
