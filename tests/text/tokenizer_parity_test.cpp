// Parity with the official Hugging Face tokenizers: ids and decoded text for the corpus in
// tests/parity/tokenizer/corpus.mjs, as written by tests/parity/tokenizer/parity.mjs into
// testdata/tokenizers/<family>/hf_expected.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "text/tokenizer.hpp"

namespace aegaeon::text {
namespace {

const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path() / "testdata" / "tokenizers";

std::string escaped(const std::string& s) { return nlohmann::json(s).dump(); }

std::string ids_text(const std::vector<std::int32_t>& ids) {
  std::string out;
  for (auto id : ids) out += std::to_string(id) + ",";
  return out;
}

class TokenizerParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParityTest, MatchesHuggingFaceTokenizers) {
  const std::string family = GetParam();
  auto tokenizer = Tokenizer::load(kData / family / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  std::ifstream in(kData / family / "hf_expected.json");
  ASSERT_TRUE(in) << "missing hf_expected.json for " << family;
  const nlohmann::json expected = nlohmann::json::parse(in);
  const auto& cases = expected.at("cases");
  ASSERT_GE(cases.size(), 200U);

  std::size_t mismatches = 0;
  std::size_t round_trips = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const auto want = c.at("ids").get<std::vector<std::int32_t>>();
    const auto want_special = c.at("ids_with_special").get<std::vector<std::int32_t>>();
    const auto got = tokenizer->encode(text, false);
    const auto got_special = tokenizer->encode(text, true);
    const std::string decoded = tokenizer->decode(want, false);
    const std::string decoded_skip = tokenizer->decode(want, true);
    const bool ok = got == want && got_special == want_special && decoded == c.at("decoded").get<std::string>() &&
                    decoded_skip == c.at("decoded_skip_special").get<std::string>();
    if (!ok && ++mismatches <= 5) {
      ADD_FAILURE() << family << " text " << escaped(text) << "\n  ids  want " << ids_text(want) << "\n       got  "
                    << ids_text(got) << "\n  special want " << ids_text(want_special) << "\n          got  "
                    << ids_text(got_special) << "\n  decode want " << escaped(c.at("decoded").get<std::string>())
                    << "\n         got  " << escaped(decoded) << "\n  skip want "
                    << escaped(c.at("decoded_skip_special").get<std::string>()) << "\n       got  "
                    << escaped(decoded_skip);
    }
    // Lossless families give the text back exactly, as Hugging Face does.
    if (c.at("decoded").get<std::string>() == text) {
      EXPECT_EQ(tokenizer->decode(got, false), text) << family << " round trip of " << escaped(text);
      ++round_trips;
    }
  }
  EXPECT_EQ(mismatches, 0U) << family << ": " << mismatches << " of " << cases.size() << " strings differ";
  RecordProperty("strings", static_cast<int>(cases.size()));
  RecordProperty("round_trips", static_cast<int>(round_trips));
  // Byte-level BPE without a normalizer is lossless: only <mask> (which eats the space before
  // it) changes text, so nearly every string must round-trip. (Qwen2 applies NFC first.)
  if (family == "gpt2" || family == "llama3" || family == "synth-llama" || family == "synth-mistral") {
    EXPECT_GE(round_trips + 5, cases.size()) << family << ": only " << round_trips << " round trips";
  }
}

// The pipeline variants of tests/parity/tokenizer/variants.mjs: a family's tokenizer.json with
// some top-level keys replaced, compared on every fourth corpus string.
TEST(TokenizerVariantParityTest, MatchesHuggingFaceTokenizers) {
  std::ifstream in(kData / "variants_hf_expected.json");
  ASSERT_TRUE(in) << "missing variants_hf_expected.json";
  const nlohmann::json expected = nlohmann::json::parse(in);
  ASSERT_GE(expected.at("variants").size(), 12U);
  for (const auto& [name, variant] : expected.at("variants").items()) {
    std::ifstream base_in(kData / variant.at("base").get<std::string>() / "tokenizer.json");
    nlohmann::json doc = nlohmann::json::parse(base_in);
    for (const auto& [key, value] : variant.at("patch").items()) doc[key] = value;
    auto tokenizer = Tokenizer::from_json(doc.dump(), name + "/tokenizer.json");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
    std::size_t mismatches = 0;
    for (const auto& c : variant.at("cases")) {
      const std::string text = c.at("text").get<std::string>();
      const auto want = c.at("ids").get<std::vector<std::int32_t>>();
      const auto got = tokenizer->encode(text, false);
      const auto got_special = tokenizer->encode(text, true);
      const std::string decoded = tokenizer->decode(want, false);
      const std::string decoded_skip = tokenizer->decode(want, true);
      const bool ok = got == want && got_special == c.at("ids_with_special").get<std::vector<std::int32_t>>() &&
                      decoded == c.at("decoded").get<std::string>() &&
                      decoded_skip == c.at("decoded_skip_special").get<std::string>();
      if (!ok && ++mismatches <= 3) {
        ADD_FAILURE() << name << " text " << escaped(text) << "\n  ids  want " << ids_text(want) << "\n       got  "
                      << ids_text(got) << "\n  decode want " << escaped(c.at("decoded").get<std::string>())
                      << "\n         got  " << escaped(decoded);
      }
    }
    EXPECT_EQ(mismatches, 0U) << name;
  }
}

// The hand-made family tokenizers and those `aegaeon model synth` writes (synth-*).
INSTANTIATE_TEST_SUITE_P(Families, TokenizerParityTest,
                         ::testing::Values("gpt2", "qwen2", "llama3", "llama2", "mistral", "synth-qwen2",
                                           "synth-llama", "synth-mistral"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace aegaeon::text
