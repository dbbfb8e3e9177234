// The configuration files we ship (deploy/config, deploy/examples) load with the real config
// loader: a misspelled or removed key in any of them fails here, not on a user's machine.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/config.hpp"

namespace aegaeon {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> files;
  for (const char* dir : {"deploy/config", "deploy/examples"}) {
    for (const auto& entry : fs::directory_iterator(fs::path(AEGAEON_SOURCE_DIR) / dir)) {
      if (entry.path().extension() == ".yaml") files.push_back(entry.path());
    }
  }
  return files;
}

TEST(DeployExamples, EveryShippedConfigLoads) {
  auto files = shipped_configs();
  ASSERT_GE(files.size(), 4u) << "deploy/config/aegaeon.yaml and the examples";
  for (const auto& file : files) {
    auto config = core::load_config_file(file);
    EXPECT_TRUE(config.ok()) << file << ": " << config.error().message;
  }
}

TEST(DeployExamples, ATypoInAnyOfThemWouldFail) {
  // The loader must refuse unknown keys, or the test above proves nothing: misspell the first
  // key of each file's sections and expect an error naming it.
  static const std::regex kFirstKey(R"(\n(  )([a-z_]+):)");
  for (const auto& file : shipped_configs()) {
    std::stringstream text;
    text << std::ifstream(file).rdbuf();
    std::smatch key;
    std::string yaml = text.str();
    ASSERT_TRUE(std::regex_search(yaml, key, kFirstKey)) << file;
    const std::string typo = key[2].str() + "s";
    const std::string broken = key.prefix().str() + "\n  " + typo + ":" + key.suffix().str();
    auto config = core::parse_config(broken, file.filename().string());
    ASSERT_FALSE(config.ok()) << file << " with '" << typo << "'";
    EXPECT_NE(config.error().message.find(typo), std::string::npos) << config.error().message;
  }
}

}  // namespace
}  // namespace aegaeon
