# aegaeon_embed_file(<out.cpp> <symbol> <file>)
# Writes a C++ source defining `std::string_view aegaeon::embedded::<symbol>()` with the file's
# bytes, regenerated when the file changes.
function(aegaeon_embed_file out symbol file)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${file})
  file(READ ${file} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  file(WRITE ${out}.tmp
    "// Generated from ${file} by cmake/AegaeonEmbed.cmake; do not edit.\n"
    "#include <string_view>\n"
    "namespace aegaeon::embedded {\n"
    "namespace { const unsigned char k_${symbol}[] = {${bytes}}; }\n"
    "std::string_view ${symbol}() {\n"
    "  return {reinterpret_cast<const char*>(k_${symbol}), sizeof(k_${symbol})};\n"
    "}\n"
    "}  // namespace aegaeon::embedded\n")
  file(COPY_FILE ${out}.tmp ${out} ONLY_IF_DIFFERENT)
endfunction()
