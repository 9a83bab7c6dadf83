// PLACEHOLDER: multi_group_page_table is being written
