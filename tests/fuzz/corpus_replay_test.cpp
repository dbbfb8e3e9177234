// Replays every file of tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/
// through its fuzz target, so the corpus and every crash ever found are a regression suite in
// every build (gcc included, where no libFuzzer binary exists).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/cluster_fuzz.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace aegaeon::fuzz {
namespace {

const std::filesystem::path kFuzzDir = AEGAEON_FUZZ_DIR;

std::vector<std::filesystem::path> inputs_of(std::string_view target) {
  std::vector<std::filesystem::path> files;
  for (const char* kind : {"corpus", "regressions"}) {
    const auto dir = kFuzzDir / kind / target;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.is_regular_file() && entry.path().filename() != "README.md") {
        files.push_back(entry.path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class CorpusReplay : public ::testing::TestWithParam<FuzzTarget> {};

TEST_P(CorpusReplay, EveryInputRunsCleanly) {
  const auto files = inputs_of(GetParam().name);
  ASSERT_FALSE(files.empty()) << "no seed corpus in " << (kFuzzDir / "corpus" / GetParam().name);
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    const auto bytes = read_file(file);
    // A broken invariant, a sanitizer report or a hang aborts the process: the test fails.
    EXPECT_EQ(GetParam().run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, CorpusReplay, ::testing::ValuesIn(fuzz_targets().begin(), fuzz_targets().end()),
                         [](const auto& info) { return std::string(info.param.name); });

// The RPC seeds must get past framing into the registry, or fuzzing them proves little.
TEST(ClusterRpcFuzz, SeedsRegisterANodeAndWrongTokensDoNot) {
  const auto seeds = cluster_rpc_seeds();
  auto run = [](const std::string& bytes) {
    return fuzz_cluster_rpc(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  };
  run(seeds[2]);  // starts the fixture (its health probe registers one node)
  const auto before = cluster_rpc_registrations();
  run(seeds[2]);  // wrong token
  EXPECT_EQ(cluster_rpc_registrations(), before);
  run(seeds[1]);  // register + heartbeats
  EXPECT_EQ(cluster_rpc_registrations(), before + 1);
}

// The committed cluster seeds are what the builders above produce; set
// AEGAEON_FUZZ_WRITE_SEEDS=1 to regenerate them after a schema change.
TEST(ClusterRpcFuzz, CommittedSeedsMatchTheSchema) {
  const bool write = std::getenv("AEGAEON_FUZZ_WRITE_SEEDS") != nullptr;
  auto check = [&](const std::string& target, const std::vector<std::string>& seeds) {
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      const auto file = kFuzzDir / "corpus" / target / ("seed-" + std::to_string(i) + ".bin");
      if (write) {
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file, std::ios::binary) << seeds[i];
      }
      EXPECT_EQ(read_file(file), seeds[i]) << file << " is stale (AEGAEON_FUZZ_WRITE_SEEDS=1)";
    }
  };
  check("cluster_rpc", cluster_rpc_seeds());
  check("cluster_message", cluster_message_seeds());
}

}  // namespace
}  // namespace aegaeon::fuzz
