// PLACEHOLDER: request is being written
