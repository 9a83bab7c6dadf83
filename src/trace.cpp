// PLACEHOLDER: trace is being written
