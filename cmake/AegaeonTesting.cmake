# aegaeon_add_test(<name> SOURCES <files...> LIBS <targets...> [PROPERTIES <ctest properties...>])
# One GoogleTest executable; every TEST becomes its own ctest entry. PROPERTIES go to every
# entry (e.g. RESOURCE_LOCK, so that suites which each start several processes do not run
# side by side on CI's two cores).
include(GoogleTest)
function(aegaeon_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  aegaeon_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 ${ARG_PROPERTIES})
endfunction()

# aegaeon_add_test_dir(<name> LIBS <targets...>)
# One test executable from every *_test.cpp in the current folder, so several people can add
# suites to a folder without editing its CMakeLists.txt.
function(aegaeon_add_test_dir name)
  cmake_parse_arguments(ARG "" "" "LIBS;PROPERTIES" ${ARGN})
  file(GLOB _sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cpp)
  if(_sources)
    aegaeon_add_test(${name} SOURCES ${_sources} LIBS ${ARG_LIBS} PROPERTIES ${ARG_PROPERTIES})
  endif()
endfunction()
