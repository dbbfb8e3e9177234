// ChatTemplate: real folders' templates (tests/text/testdata/tokenizers) rendered through the
// Jinja engine give each family's prompt as written out by hand from its documented format;
// chat_template.jinja, named template lists, strftime_now, and the errors a client or operator
// sees (file, key, template line, the template's own raise_exception message).
#include "text/chat_template.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include "text/tokenizer.hpp"

namespace aegaeon::text {
namespace {

const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path() / "testdata" / "tokenizers";

using Messages = std::vector<core::ChatTurn>;

ChatTemplate load(const char* family) {
  auto t = ChatTemplate::load(kData / family);
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

TEST(ChatTemplateTest, PlainChatMl) {
  auto t = ChatTemplate::from_template(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
      "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
      "", "<|im_end|>", "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(render(*t, {{"user", "Hi"}}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render(*t, {{"tool", "42"}}, false), "<|im_start|>tool\n42<|im_end|>\n");  // the template decides roles
}

TEST(ChatTemplateTest, Llama3TrimsContentAndStartsWithBos) {
  const ChatTemplate t = load("llama3");
  EXPECT_EQ(render(t, {{"system", "Be brief."}, {"user", "  Hi there \n"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(t, {{"user", "Hi"}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplateTest, Llama32DatesTheSystemBlockWithStrftimeNow) {
  auto t = ChatTemplate::from_template(
      "{{- bos_token }}{%- if strftime_now is defined %}{%- set date_string = strftime_now(\"%d %b %Y\") %}"
      "{%- else %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
      "{{- \"Today Date: \" + date_string }}",
      "<|begin_of_text|>", "<|eot_id|>", "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  t->set_now(std::chrono::sys_days{std::chrono::year{2025} / 1 / 1});
  EXPECT_EQ(render(*t, {{"user", "Hi"}}), "<|begin_of_text|>Today Date: 01 Jan 2025");
}

TEST(ChatTemplateTest, Llama2FoldsSystemIntoFirstInst) {
  const ChatTemplate t = load("llama2");
  EXPECT_EQ(render(t, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "How are you?"}}),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How are you? [/INST]");
  EXPECT_EQ(render(t, {{"user", " Hi "}}), "<s>[INST] Hi [/INST]");
}

TEST(ChatTemplateTest, Mistral) {
  const ChatTemplate t = load("mistral");
  EXPECT_EQ(render(t, {{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Again"}}),
            "<s>[INST] Hi [/INST]Hello!</s>[INST] Again [/INST]");
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

TEST(ChatTemplateTest, ChatTemplateJinjaBesideTheConfigWins) {
  const auto dir = std::filesystem::temp_directory_path() / ("aegaeon-chat-template-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": "config", "eos_token": "</s>"})";
  std::ofstream(dir / "chat_template.jinja") << "{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}\n";
  auto t = ChatTemplate::load(dir);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(render(*t, {{"user", "Hi"}}), "[user] Hi</s>");  // the file's one trailing newline dropped
}

// The demo models' template (deploy/demo): Qwen2.5's, tools included, with the Qwen2 test
// tokenizer's default system prompt, so a conversation without tools renders as before.
TEST(ChatTemplateTest, DemoTemplateRendersToolsAndToolTurns) {
  const auto demo = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "deploy" / "demo";
  const ChatTemplate t = [&] {
    auto loaded = ChatTemplate::load(demo);
    EXPECT_TRUE(loaded.ok()) << loaded.error().message;
    return std::move(loaded).value();
  }();
  EXPECT_EQ(render(t, {{"user", "Hello"}}), render(load("qwen2"), {{"user", "Hello"}}));
  EXPECT_TRUE(t.renders_tools());
  EXPECT_EQ(t.tool_call_format(), ToolCallFormat::kHermes);
  const std::string tools =
      R"([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])";
  const Messages history{{"user", "Weather?", {}, ""},
                         {"assistant", "", {{"call_1", "get_weather", R"({"city": "Paris"})"}}, ""},
                         {"tool", "21 C", {}, "call_1"}};
  auto prompt = t.render(history, true, {}, tools);
  ASSERT_TRUE(prompt.ok()) << prompt.error().message;
  EXPECT_NE(prompt->find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""), std::string::npos) << *prompt;
  EXPECT_NE(prompt->find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"),
            std::string::npos) << *prompt;  // arguments reach the template as an object
  EXPECT_NE(prompt->find("<tool_response>\n21 C\n</tool_response>"), std::string::npos) << *prompt;
  EXPECT_FALSE(load("qwen2").renders_tools());
}

// Which real templates take tools, and in which call format their models answer.
TEST(ChatTemplateTest, RealTemplatesToolSupport) {
  std::ifstream in(std::filesystem::path(__FILE__).parent_path() / "testdata" / "chat_templates" / "templates.json");
  const auto templates = nlohmann::json::parse(in);
  std::map<std::string, std::pair<bool, ToolCallFormat>> seen;
  for (const auto& t : templates) {
    auto parsed = ChatTemplate::from_template(t["template"].get<std::string>(), "", "", t["name"].get<std::string>());
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    seen[t["name"]] = {parsed->renders_tools(), parsed->tool_call_format()};
  }
  EXPECT_EQ(seen.at("qwen2.5-0.5b"), std::make_pair(true, ToolCallFormat::kHermes));
  EXPECT_EQ(seen.at("qwen3-0.6b"), std::make_pair(true, ToolCallFormat::kHermes));
  EXPECT_EQ(seen.at("llama3.1-8b"), std::make_pair(true, ToolCallFormat::kLlama3Json));
  EXPECT_EQ(seen.at("llama3.2-3b"), std::make_pair(true, ToolCallFormat::kLlama3Json));
  EXPECT_FALSE(seen.at("gemma2-2b").first);  // Gemma 2's template has no tools
}

TEST(ChatTemplateTest, NamedTemplateListUsesDefault) {
  auto t = ChatTemplate::from_config_json(
      R"({"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "d:{{ messages[0].content }}"}]})",
      "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(render(*t, {{"user", "Hi"}}), "d:Hi");
}

TEST(ChatTemplateTest, ExtraVariablesReachTheTemplate) {
  auto t = ChatTemplate::from_template(
      "{{ messages[0].content }}{% if enable_thinking is defined and enable_thinking is false %} /no_think{% endif %}",
      "", "", "tokenizer_config.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Messages hi{{"user", "Hi"}};
  EXPECT_EQ(*t->render(hi, true), "Hi");
  EXPECT_EQ(*t->render(hi, true, R"({"enable_thinking": false})"), "Hi /no_think");
  auto bad = t->render(hi, true, "[1]");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "chat_template_kwargs");
}

TEST(ChatTemplateErrorTest, MissingOrMalformedConfig) {
  auto missing = ChatTemplate::from_config_json(R"({"bos_token": "<s>"})", "tokenizer_config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, core::ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message, "tokenizer_config.json: key 'chat_template': the model has no chat template");
  auto bad = ChatTemplate::from_config_json(R"({"chat_template": 7})", "tokenizer_config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "tokenizer_config.json: key 'chat_template': expected a string or a list of {name, template}");
  auto file = ChatTemplate::load(kData / "absent");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code, core::ErrorCode::kNotFound);
  auto not_json = ChatTemplate::from_config_json("{", "tokenizer_config.json");
  ASSERT_FALSE(not_json.ok());
  EXPECT_EQ(not_json.error().message, "tokenizer_config.json: not a JSON object");
  auto no_default = ChatTemplate::from_config_json(R"({"chat_template": [{"name": "tool_use", "template": "x"}]})",
                                                   "tokenizer_config.json");
  ASSERT_FALSE(no_default.ok());
  EXPECT_EQ(no_default.error().message, "tokenizer_config.json: key 'chat_template': no entry named 'default'");
}

TEST(ChatTemplateErrorTest, SyntaxErrorsNameFileKeyAndLine) {
  auto t = ChatTemplate::from_config_json(R"({"chat_template": "{% for m in messages %}\n{{ m.content }\n{% endfor %}"})",
                                          "models/x/tokenizer_config.json");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(t.error().message.rfind("models/x/tokenizer_config.json: key 'chat_template': the chat template does not parse: line 2: ", 0), 0U)
      << t.error().message;
}

TEST(ChatTemplateErrorTest, TheTemplatesOwnExceptionsReachTheClient) {
  const ChatTemplate llama2 = load("llama2");
  auto twice = llama2.render(Messages{{"user", "a"}, {"user", "b"}}, true);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_NE(twice.error().message.find("raise_exception: Conversation roles must alternate user/assistant/user/assistant/..."),
            std::string::npos) << twice.error().message;
  EXPECT_NE(twice.error().message.find("tokenizer_config.json: key 'chat_template': line "), std::string::npos)
      << twice.error().message;
  auto assistant_first = load("mistral").render(Messages{{"assistant", "a"}}, true);
  ASSERT_FALSE(assistant_first.ok());
  EXPECT_NE(assistant_first.error().message.find("Conversation roles must alternate"), std::string::npos);
}

}  // namespace
}  // namespace aegaeon::text
