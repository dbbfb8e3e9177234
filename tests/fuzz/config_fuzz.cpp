// Target "config": untrusted YAML config files and --set overrides.
#include <string_view>

#include "core/config.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace aegaeon::fuzz {

int fuzz_config(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = core::parse_config(text, "fuzz.yaml");
  if (parsed.ok()) {
    // A parsed config must describe itself, and its description must not be empty.
    if (core::describe_config(*parsed).empty()) fuzz_fail("describe_config returned nothing");
  } else if (parsed.error().message.empty()) {
    fuzz_fail("parse_config failed without a message");
  }
  // Every line is also tried as a `--set key=value` override on the defaults.
  core::Config config;
  std::size_t start = 0;
  for (int lines = 0; start <= text.size() && lines < 32; ++lines) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    auto applied = core::apply_override(config, text.substr(start, end - start));
    if (!applied.ok() && applied.error().message.empty()) {
      fuzz_fail("apply_override failed without a message");
    }
    start = end + 1;
  }
  return 0;
}

}  // namespace aegaeon::fuzz
