// PLACEHOLDER: free_queue is being written
