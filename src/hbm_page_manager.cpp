// PLACEHOLDER: hbm_page_manager is being written
