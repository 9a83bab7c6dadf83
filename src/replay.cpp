// PLACEHOLDER: replay is being written
