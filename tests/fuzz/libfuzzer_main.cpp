// libFuzzer entry point for one target; AEGAEON_FUZZ_ENTRY (set per binary by
// tests/fuzz/CMakeLists.txt) names the target function from fuzz_targets.hpp.
#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return aegaeon::fuzz::AEGAEON_FUZZ_ENTRY(data, size);
}
