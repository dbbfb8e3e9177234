// ChatTemplate: each family's prompt written out by hand from the family's documented format,
// system-message handling, and the errors for unknown templates and malformed conversations.
#include "gpu/model/chat_template.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

#include "gpu/model/tokenizer.hpp"

namespace aegaeon::gpu {
namespace {

const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path() / "testdata" / "tokenizers";

using Messages = std::vector<ChatMessage>;

ChatTemplate load(const char* family) {
  auto t = ChatTemplate::load(kData / family / "tokenizer_config.json");
  EXPECT_TRUE(t.ok()) << t.error().message;
  return std::move(t).value();
}

std::string render(const ChatTemplate& t, const Messages& m, bool add_generation_prompt = true) {
  auto r = t.render(m, add_generation_prompt);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : std::string();
}

TEST(ChatTemplateTest, QwenChatMlAddsDefaultSystemPrompt) {
  const ChatTemplate t = load("qwen2");
  EXPECT_EQ(t.family(), ChatTemplateFamily::kChatMl);
  EXPECT_EQ(t.default_system(), "You are a helpful assistant.");
  EXPECT_EQ(render(t, {{"user", "Hello"}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(t, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", " 2+2? "}}, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\n 2+2? <|im_end|>\n");
}

TEST(ChatTemplateTest, PlainChatMlHasNoDefaultSystem) {
  auto t = ChatTemplate::from_template(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
      "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
      "", "<|im_end|>", "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->default_system(), "");
  EXPECT_EQ(render(*t, {{"user", "Hi"}}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, Qwen25DefaultSystemIsFoundPastTheToolsBranch) {
  // The shape of Qwen2.5's template: a tools branch built from messages[0], then the constant.
  auto t = ChatTemplate::from_template(
      "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- "
      "messages[0]['content'] }}{%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %}{{- "
      "'<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- "
      "'<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' "
      "}}{%- endif %}{%- endif %}",
      "", "<|im_end|>", "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->default_system(), "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
}

TEST(ChatTemplateTest, Llama3TrimsContentAndStartsWithBos) {
  const ChatTemplate t = load("llama3");
  EXPECT_EQ(t.family(), ChatTemplateFamily::kLlama3);
  EXPECT_EQ(render(t, {{"system", "Be brief."}, {"user", "  Hi there \n"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(t, {{"user", "Hi"}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplateTest, Llama31AlwaysHasDatedSystemBlock) {
  auto t = ChatTemplate::from_template(
      "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
      "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}"
      "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}",
      "<|begin_of_text|>", "<|eot_id|>", "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(render(*t, {{"user", "Hi"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(*t, {{"system", " Be brief. "}, {"user", "Hi"}}, false),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplateTest, Llama32DatesTheSystemBlockToday) {
  auto t = ChatTemplate::from_template(
      "{%- if strftime_now is defined %}{%- set date_string = strftime_now(\"%d %b %Y\") %}{%- endif %}"
      "{{- \"Cutting Knowledge Date: December 2023\\n\" }}<|start_header_id|>",
      "<|begin_of_text|>", "<|eot_id|>", "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  const std::string today = render(*t, {{"user", "Hi"}});
  // "25 Nov 2026": two digits, a space, a month, a space, a four-digit year.
  const std::size_t at = today.find("Today Date: ");
  ASSERT_NE(at, std::string::npos);
  const std::string date = today.substr(at + 12, 11);
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(date[0])) && date[2] == ' ' && date[6] == ' ') << date;
  t->set_date_string("01 Jan 2025");
  EXPECT_EQ(render(*t, {{"user", "Hi"}}, false),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplateTest, Llama2FoldsSystemIntoFirstInst) {
  const ChatTemplate t = load("llama2");
  EXPECT_EQ(t.family(), ChatTemplateFamily::kLlama2);
  EXPECT_EQ(render(t, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "How are you?"}}),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How are you? [/INST]");
  EXPECT_EQ(render(t, {{"user", " Hi "}}), "<s>[INST] Hi [/INST]");
}

TEST(ChatTemplateTest, MistralHasNoSystemRole) {
  const ChatTemplate t = load("mistral");
  EXPECT_EQ(t.family(), ChatTemplateFamily::kMistral);
  EXPECT_EQ(render(t, {{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Again"}}),
            "<s>[INST] Hi [/INST]Hello!</s>[INST] Again [/INST]");
  auto r = t.render(Messages{{"system", "Be brief."}, {"user", "Hi"}}, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "messages[0]: the mistral chat template supports only user and assistant roles");
}

TEST(ChatTemplateTest, RenderedSpecialMarkersBecomeSingleTokens) {
  auto tokenizer = Tokenizer::load(kData / "qwen2" / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  const std::string prompt = render(load("qwen2"), {{"user", "Hello"}});
  const auto ids = tokenizer->encode(prompt, true);
  const auto im_start = *tokenizer->token_to_id("<|im_start|>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_start), 3);
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(tokenizer->decode(ids, false), prompt);
}

TEST(ChatTemplateErrorTest, UnknownTemplateNamesTheFile) {
  auto t = ChatTemplate::from_config_json(R"({"chat_template": "{{ messages | tojson }}", "bos_token": "<s>"})",
                                          "models/x/tokenizer_config.json");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message,
            "models/x/tokenizer_config.json: key 'chat_template': unrecognized chat template (supported: "
            "ChatML/Qwen '<|im_start|>', Llama-3 '<|start_header_id|>', Llama-2/Mistral '[INST]'; other Jinja "
            "templates are not interpreted)");
}

TEST(ChatTemplateErrorTest, MissingOrMalformedConfig) {
  auto missing = ChatTemplate::from_config_json(R"({"bos_token": "<s>"})", "tokenizer_config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "tokenizer_config.json: key 'chat_template': missing (the model has no chat template)");
  auto bad = ChatTemplate::from_config_json(R"({"chat_template": 7})", "tokenizer_config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "tokenizer_config.json: key 'chat_template': expected a string or a list of {name, template}");
  auto no_bos = ChatTemplate::from_config_json(R"({"chat_template": "<|start_header_id|>"})", "tokenizer_config.json");
  ASSERT_FALSE(no_bos.ok());
  EXPECT_EQ(no_bos.error().message, "tokenizer_config.json: key 'bos_token': the llama3 chat template needs a bos_token");
  auto file = ChatTemplate::load(kData / "absent" / "tokenizer_config.json");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code, core::ErrorCode::kNotFound);
  auto not_json = ChatTemplate::from_config_json("{", "tokenizer_config.json");
  ASSERT_FALSE(not_json.ok());
  EXPECT_EQ(not_json.error().message, "tokenizer_config.json: not a JSON object");
}

TEST(ChatTemplateErrorTest, NamedTemplateListUsesDefault) {
  auto t = ChatTemplate::from_config_json(
      R"({"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "<|im_start|>"}]})",
      "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->family(), ChatTemplateFamily::kChatMl);
}

TEST(ChatTemplateErrorTest, BadConversations) {
  const ChatTemplate llama2 = load("llama2");
  auto twice = llama2.render(Messages{{"user", "a"}, {"user", "b"}}, true);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().message,
            "messages[1]: conversation roles must alternate user/assistant/user/assistant/... (got 'user')");
  auto tool = load("qwen2").render(Messages{{"user", "a"}, {"tool", "b"}}, true);
  ASSERT_FALSE(tool.ok());
  EXPECT_EQ(tool.error().message,
            "messages[1]: role 'tool' is not supported by the chatml chat template (expected system, user or "
            "assistant)");
  auto assistant_first = load("mistral").render(Messages{{"assistant", "a"}}, true);
  ASSERT_FALSE(assistant_first.ok());
  EXPECT_EQ(assistant_first.error().message,
            "messages[0]: conversation roles must alternate user/assistant/user/assistant/... (got 'assistant')");
}

}  // namespace
}  // namespace aegaeon::gpu
