// ModelCatalog reads a model folder as the model's own tooling does: generation stops at every
// eos id of generation_config.json and config.json plus the tokenizer's eos; chat_template.jinja
// beside tokenizer_config.json is the chat template; a template that does not parse leaves the
// model serving completions and says why chat cannot work.
#include "actors/model_catalog.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "text/tokenizer_synthesizer.hpp"

namespace aegaeon::actors {
namespace {

namespace fs = std::filesystem;

class ModelCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("aegaeon-catalog-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto tokenizer = text::synth_tokenizer(text::TokenizerLayout::kLlama3,
                                           text::min_synth_vocab_size(text::TokenizerLayout::kLlama3) + 64);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
    ASSERT_TRUE(text::write_synth_tokenizer(dir_, *tokenizer).ok());
    tokenizer_eos_ = tokenizer->eos_ids.front();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& file, const std::string& text) { std::ofstream(dir_ / file) << text; }

  core::Result<core::ServedModel> describe() { return describe_model(worker::ModelSpec{"m", dir_}, 4096); }

  fs::path dir_;
  std::int32_t tokenizer_eos_ = -1;
};

TEST_F(ModelCatalogTest, StopsAtEveryEosIdOfTheFolder) {
  write("config.json", R"({"eos_token_id": 5})");
  write("generation_config.json", R"({"eos_token_id": [7, 9, 5]})");
  auto served = describe();
  ASSERT_TRUE(served.ok()) << served.error().message;
  EXPECT_EQ(served->eos_token_ids, (std::vector<std::int32_t>{7, 9, 5}));
  auto catalog = ModelCatalog::from_served(std::span(&*served, 1));
  ASSERT_TRUE(catalog.ok()) << catalog.error().message;
  EXPECT_EQ((*catalog)->at(0).eos_ids, (std::vector<std::int32_t>{7, 9, 5, tokenizer_eos_}));
}

TEST_F(ModelCatalogTest, AMalformedEosIdNamesTheFileAndKey) {
  write("generation_config.json", R"({"eos_token_id": "</s>"})");
  auto served = describe();
  ASSERT_FALSE(served.ok());
  EXPECT_EQ(served.error().message, "model 'm': " + (dir_ / "generation_config.json").string() +
                                        ": key 'eos_token_id': expected a token id or a list of token ids");
}

TEST_F(ModelCatalogTest, ChatTemplateJinjaIsTheTemplate) {
  write("chat_template.jinja", "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}");
  auto served = describe();
  ASSERT_TRUE(served.ok()) << served.error().message;
  auto catalog = ModelCatalog::from_served(std::span(&*served, 1));
  ASSERT_TRUE(catalog.ok()) << catalog.error().message;
  const auto& chat = (*catalog)->at(0).chat_template;
  ASSERT_TRUE(chat.has_value()) << (*catalog)->at(0).no_chat_template_reason;
  const std::vector<core::ChatTurn> hi{{"user", "Hi"}};
  auto prompt = chat->render(hi, true);
  ASSERT_TRUE(prompt.ok()) << prompt.error().message;
  EXPECT_EQ(*prompt, "<user>Hi");
}

TEST_F(ModelCatalogTest, ABrokenTemplateLeavesCompletionsAndSaysWhy) {
  write("chat_template.jinja", "{% for m in messages %}\n{{ m.content }");
  auto served = describe();
  ASSERT_TRUE(served.ok()) << served.error().message;
  auto catalog = ModelCatalog::from_served(std::span(&*served, 1));
  ASSERT_TRUE(catalog.ok()) << catalog.error().message;
  const auto& entry = (*catalog)->at(0);
  EXPECT_FALSE(entry.chat_template.has_value());
  EXPECT_NE(entry.no_chat_template_reason.find("the chat template does not parse: line 2: "), std::string::npos)
      << entry.no_chat_template_reason;
}

}  // namespace
}  // namespace aegaeon::actors
