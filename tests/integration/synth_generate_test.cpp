// `aegaeon model synth` and `aegaeon generate` as a user runs them: the real binary writes a tiny
// model of each architecture, generates from it (raw and chat prompts, greedy and sampled), and
// reports bad flags, folders and files with a non-zero exit and a message naming them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "tests/support/child_process.hpp"

namespace aegaeon {
namespace {

namespace fs = std::filesystem;
using testing::run_command;

const fs::path kTestTokenizers = fs::path(AEGAEON_SOURCE_DIR) / "tests/text/testdata/tokenizers";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs `aegaeon args...`; returns {exit code, stdout+stderr}.
std::pair<int, std::string> aegaeon(std::vector<std::string> args) {
  args.insert(args.begin(), AEGAEON_BINARY);
  return run_command(args);
}

// The generated text of `aegaeon generate` output: everything before its stats line.
std::string generated_text(const std::string& output) {
  const auto stats = output.rfind("generate: prompt ");
  return stats == std::string::npos ? output : output.substr(0, stats);
}

// One tiny model per architecture, synthesized once for the whole suite.
class SynthGenerateTest : public ::testing::TestWithParam<std::string> {
 public:
  static void SetUpTestSuite() {
    root_ = fs::path(AEGAEON_TEST_DATA_DIR) / ("synth-generate-" + std::to_string(::getpid()));
    fs::create_directories(root_);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

 protected:
  // The arch's tiny model (written on first use).
  fs::path model_dir() {
    const fs::path dir = root_ / GetParam();
    if (!fs::exists(dir / "generation_config.json")) {
      auto [code, output] = aegaeon({"model", "synth", "--arch", GetParam(), "--dtype", "f32", "--out", dir.string()});
      EXPECT_EQ(code, 0) << output;
    }
    return dir;
  }

  static fs::path root_;
};

fs::path SynthGenerateTest::root_;

TEST_P(SynthGenerateTest, SynthWritesTheCommittedTestTokenizer) {
  const fs::path dir = model_dir();
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                           "generation_config.json"}) {
    EXPECT_TRUE(fs::exists(dir / file)) << file;
  }
  // The parity-tested tokenizers in testdata are exactly what synth writes (the tiny preset's vocab).
  const fs::path committed = kTestTokenizers / ("synth-" + GetParam());
  EXPECT_TRUE(read_file(dir / "tokenizer.json") == read_file(committed / "tokenizer.json"))
      << "tokenizer.json differs from " << committed << ": run synth_tokenizers.sh there";
  EXPECT_TRUE(read_file(dir / "tokenizer_config.json") == read_file(committed / "tokenizer_config.json"));
}

TEST_P(SynthGenerateTest, GreedyGenerationIsDeterministicAndReportsSpeed) {
  const fs::path dir = model_dir();
  const std::vector<std::string> args = {"generate", "--model", dir.string(), "--prompt",
                                         "The lighthouse keeper wrote", "--max-tokens", "24", "--threads", "1"};
  auto [code, output] = aegaeon(args);
  ASSERT_EQ(code, 0) << output;
  EXPECT_NE(output.find("prefill"), std::string::npos) << output;
  EXPECT_NE(output.find("tokens/s"), std::string::npos) << output;
  const std::string text = generated_text(output);
  EXPECT_GT(text.size(), 1U) << output;
  auto [code2, output2] = aegaeon(args);
  ASSERT_EQ(code2, 0) << output2;
  EXPECT_EQ(generated_text(output2), text);
}

TEST_P(SynthGenerateTest, ChatAndSampledGenerationRun) {
  const fs::path dir = model_dir();
  auto [chat_code, chat] = aegaeon({"generate", "--model", dir.string(), "--prompt", "Hello!", "--chat",
                                    "--max-tokens", "8", "--threads", "1"});
  EXPECT_EQ(chat_code, 0) << chat;
  const std::vector<std::string> sampled = {"generate", "--model", dir.string(), "--prompt", "Numbers: 1 2 3",
                                            "--max-tokens", "16", "--temperature", "0.8", "--top-p", "0.9",
                                            "--top-k", "50", "--seed", "5", "--threads", "1"};
  auto [code_a, a] = aegaeon(sampled);
  auto [code_b, b] = aegaeon(sampled);
  ASSERT_EQ(code_a, 0) << a;
  ASSERT_EQ(code_b, 0) << b;
  EXPECT_EQ(generated_text(a), generated_text(b)) << "same seed, same text";
}

INSTANTIATE_TEST_SUITE_P(Architectures, SynthGenerateTest, ::testing::Values("qwen2", "llama", "mistral"),
                         [](const auto& info) { return std::string(info.param); });

TEST(SynthGenerateErrors, BadFlagsNameTheFlag) {
  const std::string out = (fs::path(AEGAEON_TEST_DATA_DIR) / "synth-never-written").string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"model", "synth", "--arch", "gpt5", "--out", out}, "--arch"},
      {{"model", "synth", "--dtype", "f8", "--out", out}, "--dtype"},
      {{"model", "synth", "--hidden", "64", "--heads", "5", "--out", out}, "--heads"},
      {{"model", "synth", "--heads", "4", "--kv-heads", "3", "--out", out}, "--kv-heads"},
      {{"model", "synth", "--arch", "mistral", "--vocab", "260", "--out", out}, "--vocab"},
      {{"model", "synth", "--arch", "qwen2"}, "--out"},
      {{"generate", "--model", out, "--prompt", "x", "--top-p", "0"}, "--top-p"},
  };
  for (const auto& [args, flag] : cases) {
    auto [code, output] = aegaeon(args);
    EXPECT_NE(code, 0) << args[2] << ": " << output;
    EXPECT_NE(output.find(flag), std::string::npos) << "expected the message to name " << flag << ":\n" << output;
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST(SynthGenerateErrors, UnwritableOutputAndBadModelFoldersNameThePath) {
  const fs::path root = fs::path(AEGAEON_TEST_DATA_DIR) / ("synth-errors-" + std::to_string(::getpid()));
  fs::create_directories(root);
  // A regular file where a parent folder should be: creating the output folder fails.
  std::ofstream(root / "file") << "x";
  auto [code, output] = aegaeon({"model", "synth", "--out", (root / "file" / "model").string()});
  EXPECT_NE(code, 0);
  EXPECT_NE(output.find((root / "file").string()), std::string::npos) << output;

  // No model at all.
  auto [missing_code, missing] = aegaeon({"generate", "--model", (root / "absent").string(), "--prompt", "x"});
  EXPECT_NE(missing_code, 0);
  EXPECT_NE(missing.find((root / "absent").string()), std::string::npos) << missing;

  // A model whose weights file lost its end: the loader names the file.
  const fs::path model = root / "truncated";
  auto [synth_code, synth] = aegaeon({"model", "synth", "--out", model.string()});
  ASSERT_EQ(synth_code, 0) << synth;
  fs::resize_file(model / "model.safetensors", fs::file_size(model / "model.safetensors") / 2);
  auto [bad_code, bad] = aegaeon({"generate", "--model", model.string(), "--prompt", "x"});
  EXPECT_NE(bad_code, 0);
  EXPECT_NE(bad.find("model.safetensors"), std::string::npos) << bad;

  // A config.json with a wrong field: the message names the file and the key.
  std::ofstream(model / "config.json", std::ios::trunc) << R"({"architectures": ["GPT5ForCausalLM"]})";
  auto [config_code, config] = aegaeon({"generate", "--model", model.string(), "--prompt", "x"});
  EXPECT_NE(config_code, 0);
  EXPECT_NE(config.find("config.json"), std::string::npos) << config;
  EXPECT_NE(config.find("architectures"), std::string::npos) << config;
  fs::remove_all(root);
}

}  // namespace
}  // namespace aegaeon
