// ToolCallScanner: content streams out until a call may begin; calls come back parsed; text
// that does not parse as calls is returned as content, so nothing is lost.
#include "text/tool_calls.hpp"

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

}  // namespace
}  // namespace aegaeon::text
