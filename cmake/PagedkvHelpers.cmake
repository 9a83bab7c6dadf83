# One helper per kind of target, so every component is declared the same way.
#
#   pagedkv_cc_library(NAME pool SRCS page_pool.cpp DEPS pagedkv_hash)
#     -> static library pagedkv_pool (alias pagedkv::pool), installed and exported,
#        and linked into the umbrella target pagedkv::pagedkv.
#   pagedkv_cc_test(NAME page_pool_test SRCS page_pool_test.cpp DEPS pagedkv_pool)
#     -> gtest executable registered with ctest.
#   pagedkv_cc_bench(NAME pool_bench SRCS pool_bench.cpp DEPS pagedkv_pool)
#     -> Google Benchmark executable (not run by ctest).

set(PAGEDKV_WARNINGS -Wall -Wextra -Werror -Wno-error=maybe-uninitialized)

function(pagedkv_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target pagedkv_${ARG_NAME})
  add_library(${target} STATIC ${ARG_SRCS})
  add_library(pagedkv::${ARG_NAME} ALIAS ${target})
  target_compile_options(${target} PRIVATE ${PAGEDKV_WARNINGS})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${ARG_NAME})
  install(TARGETS ${target} EXPORT pagedkvTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  set_property(GLOBAL APPEND PROPERTY PAGEDKV_COMPONENTS ${target})
endfunction()

function(pagedkv_cc_test)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_compile_options(${ARG_NAME} PRIVATE ${PAGEDKV_WARNINGS})
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests/cpp)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set_tests_properties(${ARG_NAME} PROPERTIES ENVIRONMENT "PAGEDKV_SHARED_DIR=${PAGEDKV_SHARED_DIR}")
endfunction()

function(pagedkv_cc_bench)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_compile_options(${ARG_NAME} PRIVATE ${PAGEDKV_WARNINGS})
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/bench)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
endfunction()
