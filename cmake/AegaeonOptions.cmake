# Compiler flags shared by every aegaeon target. Third-party headers are SYSTEM includes,
# so -Werror only bites on our own code.

set(AEGAEON_WARNINGS -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
if(AEGAEON_WERROR)
  list(APPEND AEGAEON_WARNINGS -Werror)
endif()

if(AEGAEON_SANITIZE)
  add_compile_options(-fsanitize=${AEGAEON_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${AEGAEON_SANITIZE})
endif()

# Applies warnings and the include root to one of our targets.
function(aegaeon_target_defaults target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${AEGAEON_WARNINGS}>)
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)
endfunction()

# Adds every immediate subfolder of the current source dir that has a CMakeLists.txt.
macro(aegaeon_add_subdirectories)
  file(GLOB _aegaeon_children LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
       ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT _aegaeon_children)
  foreach(_child IN LISTS _aegaeon_children)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${_child}/CMakeLists.txt)
      add_subdirectory(${_child})
    endif()
  endforeach()
endmacro()
