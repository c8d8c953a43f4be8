# SPDX-License-Identifier: Apache-2.0
# troupe_component(name SOURCES ... PUBLIC_DEPS ... PRIVATE_DEPS ...)
# One static library per top-level folder: troupe_<name>, alias troupe::<name>.
# A folder may include another folder's headers only if it links that folder's
# target, so a back-reference (say transport -> engine) fails to compile.
function(troupe_component name)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(troupe_${name} STATIC ${arg_SOURCES})
  add_library(troupe::${name} ALIAS troupe_${name})
  set_target_properties(troupe_${name} PROPERTIES EXPORT_NAME ${name} POSITION_INDEPENDENT_CODE ON)
  target_include_directories(troupe_${name}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_compile_features(troupe_${name} PUBLIC cxx_std_20)
  target_compile_options(troupe_${name} PRIVATE -Wall -Wextra -Wpedantic
    $<$<BOOL:${TROUPE_WARNINGS_AS_ERRORS}>:-Werror>)
  target_link_libraries(troupe_${name} PUBLIC ${arg_PUBLIC_DEPS} PRIVATE ${arg_PRIVATE_DEPS})
  if(TROUPE_INSTALL)
    install(TARGETS troupe_${name} EXPORT troupe-targets
            ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
    install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
endfunction()
