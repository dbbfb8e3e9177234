// Constrained decoding over real tokenizers: a mask allows exactly the tokens whose bytes the
// grammar takes (checked against reading every token alone), special tokens never, and random
// walks through the masks end in JSON that satisfies the schema.
#include "text/constrained_decoding.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

namespace aegaeon::text {
namespace {

const std::filesystem::path kTokenizers =
    std::filesystem::path(__FILE__).parent_path() / "testdata" / "tokenizers";

Tokenizer load(const std::string& family) {
  auto tokenizer = Tokenizer::load(kTokenizers / family / "tokenizer.json");
  EXPECT_TRUE(tokenizer.ok()) << family;
  return *tokenizer;
}

const char* kSchema = R"({"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 12},
    "days": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
    "unit": {"enum": ["celsius", "fahrenheit"]},
    "extra": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}},
  "required": ["city", "days", "unit"]})";

std::vector<std::int32_t> allowed_ids(std::span<const std::uint64_t> mask, std::size_t vocab) {
  std::vector<std::int32_t> ids;
  for (std::size_t id = 0; id < vocab; ++id) {
    if (core::mask_allows(mask, static_cast<std::int32_t>(id))) ids.push_back(static_cast<std::int32_t>(id));
  }
  return ids;
}

class ConstrainedDecoding : public ::testing::TestWithParam<std::string> {};

TEST_P(ConstrainedDecoding, MasksAllowExactlyTheTokensTheGrammarTakesAndWalksEndInValidJson) {
  const Tokenizer tokenizer = load(GetParam());
  StructuredOutputs outputs(tokenizer);
  auto start = outputs.start({kSchema});
  ASSERT_TRUE(start.ok()) << start.error().message;
  std::mt19937 rng(11);
  for (int run = 0; run < 20; ++run) {
    auto constraint = (*start)->clone();
    std::string text;
    for (int step = 0; !constraint->complete(); ++step) {
      ASSERT_LT(step, 400) << "a bounded schema ends: " << text;
      auto allowed = allowed_ids(constraint->allowed(), tokenizer.vocab_size());
      ASSERT_FALSE(allowed.empty()) << text;
      if (run < 3 && step < 12) {  // the mask against every token read on its own
        for (std::size_t id = 0; id < tokenizer.vocab_size(); ++id) {
          const auto token = static_cast<std::int32_t>(id);
          const bool in_mask = std::binary_search(allowed.begin(), allowed.end(), token);
          EXPECT_EQ(constraint->clone()->advance(token), in_mask) << "token " << id << " after " << text;
          if (tokenizer.is_special(token)) {
            EXPECT_FALSE(in_mask) << "special token " << id;
          }
        }
      }
      const std::int32_t token = allowed[rng() % allowed.size()];
      ASSERT_TRUE(constraint->advance(token));
      text += tokenizer.token_bytes(token);
    }
    auto value = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(value.is_discarded()) << text;
    EXPECT_TRUE(value["city"].is_string()) << text;
    EXPECT_LE(value["days"].size(), 3u) << text;
    EXPECT_TRUE(value["unit"] == "celsius" || value["unit"] == "fahrenheit") << text;
    if (value.contains("extra")) {
      EXPECT_TRUE(value["extra"].is_null() || value["extra"].is_boolean()) << text;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, ConstrainedDecoding, ::testing::Values("qwen2", "llama2", "llama3", "mistral"));

TEST(StructuredOutputs, TheSameSchemaIsCompiledOnceAndErrorsNameTheField) {
  const Tokenizer tokenizer = load("qwen2");
  StructuredOutputs outputs(tokenizer);
  auto first = outputs.start({R"({"type": "object"})"});
  auto second = outputs.start({R"({"type": "object"})"});
  ASSERT_TRUE(first.ok() && second.ok());
  auto a = (*first)->clone();
  auto b = (*second)->clone();
  EXPECT_EQ(a->allowed().data(), b->allowed().data()) << "one cached mask for one state";
  auto refused = outputs.start({R"({"type": "integer", "minimum": 3})"}, "response_format.json_schema.schema");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().field, "response_format.json_schema.schema.minimum");
}

}  // namespace
}  // namespace aegaeon::text
