// PLACEHOLDER: page_table is being written
