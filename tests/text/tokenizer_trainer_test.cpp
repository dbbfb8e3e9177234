// The BPE trainer and the synthesized tokenizers: deterministic training, exact vocabulary
// sizes, loadable by our tokenizer with lossless round trips, and the committed test
// tokenizers (testdata/tokenizers/synth-*) equal to what synth_tokenizer writes today.
#include "text/tokenizer_trainer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "text/chat_template.hpp"
#include "text/tokenizer.hpp"
#include "text/tokenizer_synthesizer.hpp"

namespace aegaeon::text {
namespace {


const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path() / "testdata" / "tokenizers";

// The vocabulary size of the committed synth-* tokenizers (README.md there says how to rewrite them).
constexpr int kCommittedVocab = 1024;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(BpeTrainerTest, MergesTheMostFrequentPairFirstAndBreaksTiesByBytes) {
  // "ab" and "cd" both occur 3 times and "ab" < "cd" wins the tie; "ab ab" (once) comes last,
  // and then every word is one token, so training stops short of max_tokens.
  auto bpe = train_byte_level_bpe("abab cd cd cd ab", {"[a-z]+| ", false, 300});
  ASSERT_TRUE(bpe.ok()) << bpe.error().message;
  const std::vector<std::pair<std::string, std::string>> want{{"a", "b"}, {"c", "d"}, {"ab", "ab"}};
  EXPECT_EQ(bpe->merges, want);
  ASSERT_EQ(bpe->tokens.size(), 259U);
  EXPECT_EQ(bpe->tokens[256], "ab");
  EXPECT_EQ(bpe->tokens[258], "abab");
  EXPECT_EQ(bpe->tokens[0x41], "A");
}

TEST(BpeTrainerTest, NeverMergesAcrossPreTokenizedWords) {
  // The regex isolates letters from spaces: "a a" never becomes one token however often it occurs.
  auto bpe = train_byte_level_bpe("a a a a a a a a", {"[a-z]+|\\s+", false, 300});
  ASSERT_TRUE(bpe.ok());
  EXPECT_TRUE(bpe->merges.empty()) << bpe->merges.front().first << "|" << bpe->merges.front().second;
}

TEST(BpeTrainerTest, IsDeterministicAndStopsAtMaxTokens) {
  const BpeTrainerOptions options{"\\p{L}+|\\p{N}|\\s+|[^\\s\\p{L}\\p{N}]+", false, 700};
  auto first = train_byte_level_bpe(tokenizer_training_text(), options);
  auto second = train_byte_level_bpe(tokenizer_training_text(), options);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->tokens, second->tokens);
  EXPECT_EQ(first->merges, second->merges);
  EXPECT_EQ(first->tokens.size(), 700U);
  // Every merge joins tokens that existed before it.
  std::set<std::string> known(first->tokens.begin(), first->tokens.begin() + 256);
  for (const auto& [left, right] : first->merges) {
    EXPECT_TRUE(known.count(left) && known.count(right)) << left << "|" << right;
    known.insert(left + right);
  }
}

TEST(BpeTrainerTest, RejectsABadRegexAndATooSmallVocabulary) {
  auto bad_regex = train_byte_level_bpe("text", {"(unclosed", false, 300});
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_NE(bad_regex.error().message.find("split_regex"), std::string::npos);
  EXPECT_FALSE(train_byte_level_bpe("text", {"\\w+", false, 100}).ok());
  auto huge = synth_tokenizer(TokenizerLayout::kQwen2, 4'000'000);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message.find("too large"), std::string::npos) << huge.error().message;
  auto small = synth_tokenizer(TokenizerLayout::kMistralTekken, 260);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.error().message.find("261"), std::string::npos) << small.error().message;
}

struct FamilyCase {
  TokenizerLayout arch;
  const char* name;  // testdata folder
  const char* user_turn;  // how the family's chat template writes the user turn "Hi"
  const char* bos;
  const char* eos;
};

class SynthTokenizerTest : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(SynthTokenizerTest, LoadsWithExactVocabAndRoundTrips) {
  const FamilyCase& f = GetParam();
  // 900 ids fit the trained merges; 20000 needs composed tokens to fill up.
  for (int vocab : {900, 20000}) {
    auto synth = synth_tokenizer(f.arch, vocab);
    ASSERT_TRUE(synth.ok()) << synth.error().message;
    auto tokenizer = Tokenizer::from_json(synth->tokenizer_json, "synth", synth->tokenizer_config_json);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
    EXPECT_EQ(tokenizer->vocab_size(), static_cast<std::size_t>(vocab));
    EXPECT_EQ(tokenizer->token_to_id(f.bos), synth->bos_id);
    EXPECT_EQ(tokenizer->eos_id(), synth->eos_ids.front());
    EXPECT_EQ(tokenizer->id_to_token(synth->eos_ids.front()), f.eos);
    EXPECT_TRUE(tokenizer->is_special(synth->bos_id));
    if (vocab == 20000) {
      EXPECT_LT(synth->trained_tokens, 20000U - 256U) << "the text no longer needs fillers; raise the test vocab";
      // Composed fillers are ordinary tokens: they decode to text, so sampled ones show.
      const auto composed = static_cast<std::int32_t>(synth->trained_tokens + 100);
      EXPECT_FALSE(tokenizer->is_special(composed));
      EXPECT_FALSE(tokenizer->decode(std::vector<std::int32_t>{composed}, true).empty());
    } else {
      EXPECT_EQ(synth->trained_tokens + static_cast<std::size_t>(min_synth_vocab_size(f.arch) - 256), 900U);
    }
    for (std::string_view text : {tokenizer_training_text(), std::string_view("  Hello,\r\n wörld 12345 😀 你好")}) {
      const auto ids = tokenizer->encode(text, false);
      EXPECT_EQ(tokenizer->decode(ids, false), text);
      // Trained merges compress the text they were trained on well below one token per byte.
      if (text == tokenizer_training_text()) {
        EXPECT_LT(ids.size() * 2, text.size());
      }
    }
    auto chat = ChatTemplate::from_config_json(synth->tokenizer_config_json, "synth");
    ASSERT_TRUE(chat.ok()) << chat.error().message;
    const std::vector<core::ChatTurn> hi{{"user", "Hi"}};
    auto prompt = chat->render(hi, /*add_generation_prompt=*/true);
    ASSERT_TRUE(prompt.ok()) << prompt.error().message;
    EXPECT_NE(prompt->find(f.user_turn), std::string::npos) << *prompt;
  }
}

TEST_P(SynthTokenizerTest, CommittedTestTokenizerIsWhatSynthWritesToday) {
  const FamilyCase& f = GetParam();
  auto synth = synth_tokenizer(f.arch, kCommittedVocab);
  ASSERT_TRUE(synth.ok());
  // A failure here means the trainer, the text or the layout changed: rewrite the committed
  // files (testdata/tokenizers/README.md) and their hf_expected.json together.
  EXPECT_TRUE(read_file(kData / f.name / "tokenizer.json") == synth->tokenizer_json) << f.name;
  EXPECT_TRUE(read_file(kData / f.name / "tokenizer_config.json") == synth->tokenizer_config_json) << f.name;
}

INSTANTIATE_TEST_SUITE_P(
    Families, SynthTokenizerTest,
    ::testing::Values(FamilyCase{TokenizerLayout::kQwen2, "synth-qwen2", "<|im_start|>user\nHi<|im_end|>", "<|endoftext|>", "<|im_end|>"},
                      FamilyCase{TokenizerLayout::kLlama3, "synth-llama", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<|begin_of_text|>", "<|eot_id|>"},
                      FamilyCase{TokenizerLayout::kMistralTekken, "synth-mistral", "[INST] Hi [/INST]", "<s>", "</s>"}),
    [](const auto& info) { return std::string(info.param.name).substr(6); });

}  // namespace
}  // namespace aegaeon::text
