// ToolCallScanner: content streams out until a call may begin; calls come back parsed; text
// that does not parse as calls is returned as content, so nothing is lost.
#include "text/tool_calls.hpp"

#include "text/json_grammar.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace aegaeon::text {
namespace {

// Feeds `pieces` one by one; returns the content released along the way and the final result.
std::pair<std::string, ToolCallScanner::Result> scan(const std::vector<std::string>& pieces) {
  ToolCallScanner scanner(ToolCallFormat::kHermes);
  std::string released;
  for (const auto& p : pieces) released += scanner.feed(p);
  return {released, scanner.finish()};
}

TEST(ToolCallsTest, FormatComesFromTheTemplate) {
  EXPECT_EQ(tool_call_format("... <tool_call>\\n{\"name\": ...}\\n</tool_call> ..."), ToolCallFormat::kHermes);
  EXPECT_EQ(tool_call_format("{% for m in messages %}{{ m.content }}{% endfor %}"), ToolCallFormat::kNone);
}

TEST(ToolCallsTest, ContentThenCallsSplitAcrossPieces) {
  const auto [released, result] =
      scan({"Let me check.", " <tool", "_call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            "\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"CET\\\"}\"}\n</tool_call>"});
  EXPECT_EQ(released + result.content, "Let me check. ");
  ASSERT_EQ(result.calls.size(), 2u);
  EXPECT_EQ(result.calls[0].name, "get_weather");
  EXPECT_EQ(result.calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(result.calls[1].name, "get_time");
  EXPECT_EQ(result.calls[1].arguments, R"({"tz":"CET"})");  // arguments given as a JSON string
}

TEST(ToolCallsTest, TextThatOnlyLooksLikeATagIsReleased) {
  const auto [released, result] = scan({"a <tool", " b"});
  EXPECT_EQ(released, "a <tool b");
  EXPECT_TRUE(result.calls.empty());
  EXPECT_EQ(result.content, "");
  const auto [held, tail] = scan({"ends with <tool_"});
  EXPECT_EQ(held + tail.content, "ends with <tool_");  // held back, then given back at the end
}

TEST(ToolCallsTest, AnUnclosedLastCallStillParses) {
  const auto [released, result] = scan({"<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n"});
  EXPECT_EQ(released, "");
  ASSERT_EQ(result.calls.size(), 1u);
  EXPECT_EQ(result.calls[0].name, "f");
  EXPECT_EQ(result.calls[0].arguments, "{}");
}

TEST(ToolCallsTest, MalformedCallsAreContentNotLost) {
  for (const std::string text : {"<tool_call>{not json}</tool_call>", "<tool_call>{\"arguments\": {}}</tool_call>",
                                  "<tool_call>{\"name\": \"f\"}</tool_call> and then prose"}) {
    const auto [released, result] = scan({text});
    EXPECT_TRUE(result.calls.empty()) << text;
    EXPECT_EQ(released + result.content, text);
  }
}

TEST(ToolCallsTest, Llama3AnswersWithJsonOnly) {
  EXPECT_EQ(tool_call_format(R"(Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.)"),
            ToolCallFormat::kLlama3Json);
  ToolCallScanner calls(ToolCallFormat::kLlama3Json);
  EXPECT_EQ(calls.feed("  "), "");
  EXPECT_EQ(calls.feed("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris; France\"}}"), "");
  EXPECT_EQ(calls.feed("; {\"name\": \"get_time\", \"parameters\": {}}"), "");
  const auto result = calls.finish();
  ASSERT_EQ(result.calls.size(), 2u);
  EXPECT_EQ(result.calls[0].arguments, R"({"city":"Paris; France"})");  // a ';' inside a string is not a separator
  EXPECT_EQ(result.calls[1].name, "get_time");
  EXPECT_EQ(result.content, "");
  ToolCallScanner prose(ToolCallFormat::kLlama3Json);
  EXPECT_EQ(prose.feed("It is sunny {mostly}."), "It is sunny {mostly}.");  // not a call: streamed at once
  EXPECT_TRUE(prose.finish().calls.empty());
  ToolCallScanner broken(ToolCallFormat::kLlama3Json);
  EXPECT_EQ(broken.feed("{\"weather\": 1} and more"), "");
  const auto back = broken.finish();
  EXPECT_TRUE(back.calls.empty());
  EXPECT_EQ(back.content, "{\"weather\": 1} and more");
}

TEST(ToolCallsTest, WithoutAFormatEverythingIsContent) {
  ToolCallScanner scanner(ToolCallFormat::kNone);
  EXPECT_EQ(scanner.feed("<tool_call>x"), "<tool_call>x");
  EXPECT_TRUE(scanner.finish().calls.empty());
}

// A forced call (tool_choice): the answer is one call in the model's format, its grammar built
// from the tools; whatever the grammar completes, the scanner reads back as that call.
TEST(ToolCallsTest, AForcedCallIsOneCallInTheModelsFormat) {
  const std::string tools = R"([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "now"}}])";
  auto named = forced_tool_call(ToolCallFormat::kHermes, tools, "get_weather");
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_EQ(named->before, "<tool_call>\n");
  EXPECT_EQ(named->after, "\n</tool_call>");
  auto grammar = JsonGrammar::compile(named->json_schema, "schema", named->before, named->after);
  ASSERT_TRUE(grammar.ok()) << grammar.error().message;
  const std::string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
  JsonGrammar::State state = (*grammar)->start();
  JsonGrammar::State next;
  for (char c : call) {
    (*grammar)->step(state, static_cast<std::uint8_t>(c), next);
    ASSERT_FALSE(next.empty()) << call;
    std::swap(state, next);
  }
  EXPECT_TRUE((*grammar)->complete(state));
  ToolCallScanner scanner(ToolCallFormat::kHermes);
  EXPECT_EQ(scanner.feed(call), "");
  const auto parsed = scanner.finish();
  ASSERT_EQ(parsed.calls.size(), 1u);
  EXPECT_EQ(parsed.calls[0].name, "get_weather");
  EXPECT_EQ(parsed.calls[0].arguments, R"({"city":"Oslo"})");

  auto any = forced_tool_call(ToolCallFormat::kLlama3Json, tools, "");
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(any->before.empty() && any->after.empty()) << "Llama 3 answers with the call alone";
  EXPECT_NE(any->json_schema.find("anyOf"), std::string::npos) << "required: any of the tools";
  EXPECT_NE(any->json_schema.find("\"parameters\""), std::string::npos);

  const struct {
    std::string tools;
    std::string function;
    ToolCallFormat format;
    std::string field;
  } refused[] = {
      {tools, "get_time", ToolCallFormat::kHermes, "tool_choice.function.name"},
      {tools, "", ToolCallFormat::kNone, "tool_choice"},
      {R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties":
          {"n": {"type": "integer", "minimum": 1}}}}}])", "f", ToolCallFormat::kHermes,
       "tools[0].function.parameters.properties.n.minimum"},
      {R"([{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#/$defs/missing", "$defs": {}}}}])",
       "", ToolCallFormat::kHermes, "tools[0].function.parameters.$ref"},
  };
  for (const auto& r : refused) {
    auto result = forced_tool_call(r.format, r.tools, r.function);
    ASSERT_FALSE(result.ok()) << r.field;
    EXPECT_EQ(result.error().field, r.field) << result.error().message;
  }
}

// Parameters with references ($defs, definitions, recursion through "#") keep them when the
// call is forced: each tool's references follow its parameters into the call's schema.
TEST(ToolCallsTest, AForcedCallKeepsItsParametersReferences) {
  const std::string tools = R"([
    {"type": "function", "function": {"name": "tree", "parameters": {"type": "object",
      "properties": {"label": {"$ref": "#/$defs/label"}, "children": {"type": "array", "items": {"$ref": "#"}}},
      "required": ["label"], "$defs": {"label": {"type": "string", "maxLength": 4}}}}},
    {"type": "function", "function": {"name": "pick", "parameters": {"type": "object",
      "properties": {"choice": {"$ref": "#/definitions/choice"}, "note": {"const": {"$ref": "#"}}},
      "definitions": {"choice": {"enum": ["a", "b"]}}}}}])";
  auto forced = forced_tool_call(ToolCallFormat::kLlama3Json, tools, "");
  ASSERT_TRUE(forced.ok()) << forced.error().message;
  auto grammar = JsonGrammar::compile(forced->json_schema);
  ASSERT_TRUE(grammar.ok()) << grammar.error().message << "\n" << forced->json_schema;
  const auto accepts = [&](const std::string& text) {
    JsonGrammar::State state = (*grammar)->start();
    JsonGrammar::State next;
    for (char c : text) {
      (*grammar)->step(state, static_cast<std::uint8_t>(c), next);
      if (next.empty()) return false;
      std::swap(state, next);
    }
    return (*grammar)->complete(state);
  };
  EXPECT_TRUE(accepts(R"({"name": "tree", "parameters": {"label": "root", "children": [{"label": "leaf"}]}})"));
  EXPECT_FALSE(accepts(R"({"name": "tree", "parameters": {"label": "too long"}})")) << "the $defs entry holds";
  EXPECT_FALSE(accepts(R"({"name": "tree", "parameters": {"label": "a", "children": [{"choice": "a"}]}})"))
      << "'#' is the tool's parameters, not the call";
  EXPECT_TRUE(accepts(R"({"name": "pick", "parameters": {"choice": "b", "note": {"$ref":"#"}}})"))
      << "a const is data: its $ref is not rewritten";
  EXPECT_FALSE(accepts(R"({"name": "pick", "parameters": {"choice": "c"}})"));
}

}  // namespace
}  // namespace aegaeon::text
