// PLACEHOLDER: default_workload is being written
