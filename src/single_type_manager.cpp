// PLACEHOLDER: single_type_manager is being written
