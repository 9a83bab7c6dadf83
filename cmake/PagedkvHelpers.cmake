# One helper per kind of target, so every component is declared the same way.
#
#   pagedkv_cc_library(NAME pool SRCS page_pool.cpp DEPS pagedkv_hash)
#     -> static library pagedkv_pool (alias pagedkv::pool) built from src/pool/, installed and
#        exported, and linked into the umbrella target pagedkv::pagedkv. NAME must be one of
#        PAGEDKV_MODULES; configuring fails when the module links, or its sources or public
#        headers include, a module of a higher layer (see pagedkv_check_layers below).
#   pagedkv_cc_test(NAME page_pool_test SRCS page_pool_test.cpp DEPS pagedkv_pool)
#     -> gtest executable registered with ctest.
#   pagedkv_cc_bench(NAME pool_bench SRCS pool_bench.cpp DEPS pagedkv_pool)
#     -> Google Benchmark executable (not run by ctest).

set(PAGEDKV_WARNINGS -Wall -Wextra -Werror -Wno-error=maybe-uninitialized)

# The modules, lowest layer first: a module may depend on the ones before it, never on one
# after it. The layout of include/pagedkv/<module>/ and src/<module>/ follows this list.
set(PAGEDKV_MODULES
  common memory hash pool manager page_table kv_cache attention
  scheduler model model_io engine server replay compat)

# Fails configuration when module NAME (layer index) reaches a module of the same or a higher
# layer, either through a pagedkv_<module> link dependency or through an
# #include "pagedkv/<module>/..." in its sources, public headers or private headers.
function(pagedkv_check_layers name)
  cmake_parse_arguments(ARG "" "" "DEPS;SOURCES" ${ARGN})
  list(FIND PAGEDKV_MODULES ${name} own)
  if(own EQUAL -1)
    message(FATAL_ERROR "pagedkv module '${name}' is not in PAGEDKV_MODULES (${PAGEDKV_MODULES})")
  endif()
  set(reached)
  foreach(dep IN LISTS ARG_DEPS)
    if(dep MATCHES "^pagedkv(_|::)(.+)$")
      list(APPEND reached "${CMAKE_MATCH_2}|links ${dep}")
    endif()
  endforeach()
  file(GLOB headers ${PROJECT_SOURCE_DIR}/include/pagedkv/${name}/*.h
                    ${PROJECT_SOURCE_DIR}/src/${name}/*.h)
  foreach(file IN LISTS ARG_SOURCES headers)
    if(NOT IS_ABSOLUTE "${file}")
      set(file "${CMAKE_CURRENT_SOURCE_DIR}/${file}")
    endif()
    file(STRINGS "${file}" lines REGEX "^#include [<\"]pagedkv/[a-z_]+/")
    foreach(line IN LISTS lines)
      string(REGEX MATCH "pagedkv/([a-z_]+)/" _ "${line}")
      if(NOT CMAKE_MATCH_1 STREQUAL name)
        list(APPEND reached "${CMAKE_MATCH_1}|${file} includes pagedkv/${CMAKE_MATCH_1}/")
      endif()
    endforeach()
  endforeach()
  foreach(item IN LISTS reached)
    string(REPLACE "|" ";" parts "${item}")
    list(GET parts 0 other)
    list(GET parts 1 how)
    list(FIND PAGEDKV_MODULES ${other} layer)
    if(layer EQUAL -1 OR layer GREATER_EQUAL own)
      message(FATAL_ERROR "pagedkv layering: module '${name}' (layer ${own}) ${how}, "
                          "module '${other}' (layer ${layer}); a module may use only lower layers: "
                          "${PAGEDKV_MODULES}")
    endif()
  endforeach()
endfunction()

function(pagedkv_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  pagedkv_check_layers(${ARG_NAME} DEPS ${ARG_DEPS} ${ARG_PRIVATE_DEPS} SOURCES ${ARG_SRCS})
  set(target pagedkv_${ARG_NAME})
  add_library(${target} STATIC ${ARG_SRCS})
  add_library(pagedkv::${ARG_NAME} ALIAS ${target})
  target_compile_options(${target} PRIVATE ${PAGEDKV_WARNINGS})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  # Private headers shared between modules ("common/...") are found from src/.
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src)
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
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/bench)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
endfunction()
