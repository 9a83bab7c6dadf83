# cmake -DCASE=<dir> -DWORK=<build dir> -P expect_layering_error.cmake
# Configures tests/cmake/<CASE> and passes only if configuration fails with the layering error.
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/${CASE} -B ${WORK}/${CASE}
  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(result EQUAL 0)
  message(FATAL_ERROR "${CASE}: configuration succeeded; the upward dependency was not rejected")
endif()
if(NOT err MATCHES "pagedkv layering: module '[a-z_]+' \\(layer [0-9]+\\)")
  message(FATAL_ERROR "${CASE}: configuration failed, but not with the layering error:\n${err}")
endif()
message(STATUS "${CASE}: rejected as expected")
