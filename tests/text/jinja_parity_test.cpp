// jinja::Template against @huggingface/jinja on real chat templates: every template of
// testdata/chat_templates/templates.json (97 templates from the GGUF files of as many model
// families) × every conversation of conversations.json renders byte-identical to the output the
// reference wrote into expected.json (tests/parity/jinja/parity.mjs), and fails where it failed.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "text/jinja/template.hpp"

namespace aegaeon::text::jinja {
namespace {

const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path() / "testdata" / "chat_templates";

nlohmann::ordered_json read_json(const std::string& name) {
  std::ifstream in(kData / name);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::ordered_json::parse(text.str());
}

// The context parity.mjs renders with: messages, tools (when present), add_generation_prompt,
// bos_token, eos_token, then the conversation's other keys.
Value context(const nlohmann::ordered_json& tmpl, const nlohmann::ordered_json& conversation) {
  nlohmann::ordered_json ctx;
  ctx["messages"] = conversation["messages"];
  if (conversation.contains("tools")) ctx["tools"] = conversation["tools"];
  ctx["add_generation_prompt"] = conversation["add_generation_prompt"];
  ctx["bos_token"] = tmpl["bos_token"];
  ctx["eos_token"] = tmpl["eos_token"];
  for (auto it = conversation.begin(); it != conversation.end(); ++it) {
    if (it.key() != "name" && it.key() != "messages" && it.key() != "tools" && it.key() != "add_generation_prompt") {
      ctx[it.key()] = it.value();
    }
  }
  auto value = parse_json(ctx.dump());
  EXPECT_TRUE(value.ok());
  return value.ok() ? *value : Value::undefined();
}

TEST(JinjaParity, RealTemplatesRenderAsTheReference) {
  const auto templates = read_json("templates.json");
  const auto conversations = read_json("conversations.json");
  const auto expected = read_json("expected.json");
  ASSERT_GE(templates.size(), 90U);
  ASSERT_GE(conversations.size(), 12U);

  std::map<std::string, nlohmann::ordered_json> template_by_name;
  std::map<std::string, nlohmann::ordered_json> conversation_by_name;
  for (const auto& t : templates) template_by_name[t["name"]] = t;
  for (const auto& c : conversations) conversation_by_name[c["name"]] = c;

  RenderOptions options;
  options.now = std::chrono::sys_days{std::chrono::year{2024} / 7 / 26};  // what parity.mjs pins
  std::map<std::string, Template> parsed;
  int outputs = 0;
  int errors = 0;
  for (const auto& row : expected) {
    const std::string name = row["template"];
    const std::string conversation = row["conversation"];
    SCOPED_TRACE(name + " × " + conversation);
    const auto& tmpl = template_by_name.at(name);
    if (!parsed.contains(name)) {
      auto t = Template::parse(tmpl["template"].get<std::string>());
      ASSERT_TRUE(t.ok()) << t.error().message;
      parsed.emplace(name, *t);
    }
    const auto rendered = parsed.at(name).render(context(tmpl, conversation_by_name.at(conversation)), options);
    if (row.contains("output")) {
      ASSERT_TRUE(rendered.ok()) << rendered.error().message;
      EXPECT_EQ(*rendered, row["output"].get<std::string>());
      ++outputs;
    } else {
      EXPECT_FALSE(rendered.ok()) << "the reference failed with: " << row["error"] << "\nwe rendered:\n" << *rendered;
      ++errors;
    }
  }
  EXPECT_GT(outputs, 1000);
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace aegaeon::text::jinja
