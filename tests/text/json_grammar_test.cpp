// The JSON Schema grammar constrained decoding runs: what it accepts and refuses byte by byte,
// the schemas it refuses (naming where), and random texts it generates parsing as JSON that
// satisfies the schema.
#include "text/json_grammar.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace aegaeon::text {
namespace {

std::shared_ptr<const JsonGrammar> compile(const std::string& schema) {
  auto grammar = JsonGrammar::compile(schema);
  EXPECT_TRUE(grammar.ok()) << schema << ": " << (grammar.ok() ? "" : grammar.error().message);
  return grammar.ok() ? *grammar : nullptr;
}

// The state after `text`, empty once a byte was refused.
JsonGrammar::State read(const JsonGrammar& grammar, std::string_view text) {
  JsonGrammar::State state = grammar.start();
  JsonGrammar::State next;
  for (char c : text) {
    grammar.step(state, static_cast<std::uint8_t>(c), next);
    std::swap(state, next);
    if (state.empty()) break;
  }
  return state;
}

bool accepts(const JsonGrammar& grammar, std::string_view text) {
  auto state = read(grammar, text);
  return !state.empty() && grammar.complete(state);
}

bool may_continue(const JsonGrammar& grammar, std::string_view text) { return !read(grammar, text).empty(); }

const char* kPerson = R"({"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 4},
    "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"enum": ["a", "bc", 7, null]}, "minItems": 1, "maxItems": 2}},
  "required": ["name", "tags"], "additionalProperties": false})";

TEST(JsonGrammar, ObjectsListDeclaredPropertiesInOrderAndOptionalOnesMayBeLeftOut) {
  auto g = compile(kPerson);
  EXPECT_TRUE(accepts(*g, R"({"name":"Al","age":30,"tags":["a"]})"));
  EXPECT_TRUE(accepts(*g, R"({"name":"Al","tags":["bc",7]})")) << "age is optional";
  EXPECT_TRUE(accepts(*g, "{\n  \"name\": \"Al\",\n  \"tags\": [ null ]\n}")) << "whitespace between tokens";
  EXPECT_FALSE(may_continue(*g, R"({"age":30)")) << "name is required and comes first";
  EXPECT_FALSE(may_continue(*g, R"({"name":"Al","tags":["a"],"age")")) << "declared order";
  EXPECT_FALSE(may_continue(*g, R"({"name":"Al","x")")) << "no undeclared key";
  EXPECT_FALSE(may_continue(*g, R"({"name":"Al"})")) << "tags is required";
  EXPECT_FALSE(may_continue(*g, R"({"name":"Al","tags":["a"],)")) << "no property left after tags";
  EXPECT_FALSE(accepts(*g, R"({"name":"Al","tags":["a"]} )")) << "nothing after the value";
}

TEST(JsonGrammar, StringLengthsCountCodePointsAndStringsAreValidUtf8) {
  auto g = compile(kPerson);
  EXPECT_FALSE(may_continue(*g, R"({"name":"")")) << "minLength 1";
  EXPECT_TRUE(may_continue(*g, "{\"name\":\"\xC3\xA9t\xE2\x82\xAC\\n\"")) << "4 code points: é t € \\n";
  EXPECT_FALSE(may_continue(*g, R"({"name":"abcde)")) << "maxLength 4";
  EXPECT_FALSE(may_continue(*g, "{\"name\":\"\xC0")) << "overlong lead byte";
  EXPECT_FALSE(may_continue(*g, "{\"name\":\"\xED\xA0")) << "UTF-16 surrogate";
  EXPECT_FALSE(may_continue(*g, "{\"name\":\"a\x01")) << "control character";
  EXPECT_TRUE(may_continue(*g, R"({"name":"\u00e9\"")"));
  EXPECT_FALSE(may_continue(*g, R"({"name":"\x)")) << "unknown escape";
  EXPECT_FALSE(may_continue(*g, std::string("{\"name\":\"\\") + '\0')) << "a NUL is no escape (found by fuzzing)";
  EXPECT_TRUE(may_continue(*g, R"({"name":"\ud83d\ude00\uD7FF\uE000")")) << "a surrogate pair, and code points around them";
  EXPECT_FALSE(may_continue(*g, R"({"name":"\ud800")")) << "a lone high surrogate (found by fuzzing)";
  EXPECT_FALSE(may_continue(*g, R"({"name":"\udc00)")) << "a lone low surrogate";
  EXPECT_FALSE(may_continue(*g, R"({"name":"\ud800\u0041)")) << "a high surrogate must be followed by a low one";
}

TEST(JsonGrammar, NumbersFollowJsonAndIntegersHaveNoFraction) {
  auto number = compile(R"({"type": "number"})");
  for (const char* ok : {"0", "-0", "12", "-3.25", "1e5", "1.5E-3", "0.0"}) EXPECT_TRUE(accepts(*number, ok)) << ok;
  for (const char* bad : {"01", "-", "1.", "1e", ".5", "+1", "1.5e+"}) EXPECT_FALSE(accepts(*number, bad)) << bad;
  auto integer = compile(R"({"type": "integer"})");
  EXPECT_TRUE(accepts(*integer, "-42"));
  EXPECT_FALSE(may_continue(*integer, "4.")) << "no fraction";
  EXPECT_FALSE(may_continue(*integer, std::string(JsonGrammar::kMaxIntegerDigits + 1, '1'))) << "digits are bounded";
  EXPECT_TRUE(accepts(*number, "8e99"));
  EXPECT_FALSE(may_continue(*number, "8e309")) << "a double overflows (found by fuzzing)";
}

TEST(JsonGrammar, EnumsConstsAnyOfAndTypeListsReadAlternativesSideBySide) {
  auto g = compile(R"({"anyOf": [{"type": "null"}, {"type": ["integer", "boolean"]}, {"const": "x"},
                                 {"enum": [[1, 2], {"k": "v"}]}]})");
  for (const char* ok : {"null", "5", "true", "false", R"("x")", "[1,2]", R"({"k":"v"})"}) {
    EXPECT_TRUE(accepts(*g, ok)) << ok;
  }
  for (const char* bad : {"nul", R"("y")", "[1, 2]", "1.5", R"({"k": "v"})"}) EXPECT_FALSE(accepts(*g, bad)) << bad;
}

TEST(JsonGrammar, AnyObjectTakesAnyKeysAndNestedJsonButOnlyAnObject) {
  auto g = compile(R"({"type": "object"})");
  EXPECT_TRUE(accepts(*g, R"({"a": [1, {"b": null}, "c", -2.5e3], "d": {}, "": true})"));
  EXPECT_TRUE(accepts(*g, "{}"));
  EXPECT_FALSE(may_continue(*g, "[")) << "json_object: an object";
  EXPECT_FALSE(may_continue(*g, R"({"a" 1)")) << "a colon after the key";
  auto closed = compile(R"({"type": "object", "additionalProperties": false})");
  EXPECT_TRUE(accepts(*closed, "{}"));
  EXPECT_FALSE(may_continue(*closed, "{\"")) << "no key allowed";
  auto map = compile(R"({"type": "object", "additionalProperties": {"type": "integer"}})");
  EXPECT_TRUE(accepts(*map, R"({"x": 1, "y": 2})"));
  EXPECT_FALSE(may_continue(*map, R"({"x": "1)"));
}

TEST(JsonGrammar, WhitespaceRunsAreBounded) {
  auto g = compile(R"({"type": "array", "items": {"type": "integer"}})");
  const std::string most(JsonGrammar::kMaxSpaces, ' ');
  EXPECT_TRUE(accepts(*g, "[" + most + "1" + most + "]"));
  EXPECT_FALSE(may_continue(*g, "[" + most + " ")) << "a model cannot pad forever";
  EXPECT_TRUE(accepts(*g, most + "[]")) << "before the value too";
}

TEST(JsonGrammar, ReferencesResolveIntoDefinitionsRecursively) {
  auto tree = compile(R"({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object",
      "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["v", "kids"], "additionalProperties": false}}})");
  EXPECT_TRUE(accepts(*tree, R"({"v":1,"kids":[{"v":2,"kids":[]},{"v":3,"kids":[{"v":4,"kids":[]}]}]})"));
  EXPECT_FALSE(may_continue(*tree, R"({"v":1,"kids":[{"v":2}])"));
  std::string deep;
  for (int i = 0; i < JsonGrammar::kMaxDepth; ++i) deep += R"({"v":1,"kids":[)";
  EXPECT_FALSE(may_continue(*tree, deep)) << "nesting is bounded";
}

TEST(JsonGrammar, TextAroundTheJsonIsReadExactly) {
  auto g = JsonGrammar::compile(R"({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})",
                                "schema", "<tool_call>\n", "\n</tool_call>");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_TRUE(accepts(**g, "<tool_call>\n{\"n\": 5}\n</tool_call>"));
  EXPECT_TRUE(accepts(**g, "<tool_call>\n{\"n\":-1}  \n</tool_call>")) << "whitespace may precede the closing text";
  EXPECT_FALSE(accepts(**g, "<tool_call>\n{\"n\": 5}")) << "the closing text is required";
  EXPECT_FALSE(may_continue(**g, "{\"n\"")) << "the opening text is required";
  EXPECT_FALSE(may_continue(**g, "<tool_call>\n{\"n\": 5}\n</tool_call>x")) << "nothing after it";
  auto number = JsonGrammar::compile(R"({"type": "integer"})", "schema", "", ";");
  ASSERT_TRUE(number.ok());
  EXPECT_TRUE(accepts(**number, "12;")) << "a number ends where the text after it starts";
}

TEST(JsonGrammar, RefusesWhatItCannotEnforceNamingWhere) {
  const struct {
    const char* schema;
    const char* field;
  } cases[] = {
      {R"({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}})", "schema.properties.age.minimum"},
      {R"({"type": "string", "pattern": "^a"})", "schema.pattern"},
      {R"({"type": "string", "format": "date-time"})", "schema.format"},
      {R"({"oneOf": [{"type": "string"}]})", "schema.oneOf"},
      {R"({"type": "object", "properties": {}, "required": ["x"]})", "schema.required"},
      {R"({"$ref": "https://example.com/s.json"})", "schema.$ref"},
      {R"({"$ref": "#/$defs/missing"})", "schema.$ref"},
      {R"({"type": "strin"})", "schema.type"},
      {R"({"type": "array", "items": [{"type": "string"}]})", "schema.items"},
      {R"({"type": "string", "minLength": 3, "maxLength": 2})", "schema"},
      {R"({"anyOf": [{"type": "string"}], "type": "string"})", "schema"},
      {R"({"type": "array", "items": false})", "schema.items"},
      {"[1", "schema"},
  };
  for (const auto& c : cases) {
    auto grammar = JsonGrammar::compile(c.schema);
    ASSERT_FALSE(grammar.ok()) << c.schema;
    EXPECT_EQ(grammar.error().code, core::ErrorCode::kInvalidArgument);
    EXPECT_EQ(grammar.error().field, c.field) << c.schema << ": " << grammar.error().message;
  }
}

// Random texts the grammar allows, byte by byte until complete, parse as JSON and satisfy the
// schema (checked here by hand; tests/integration checks served outputs with a validator).
TEST(JsonGrammar, EveryTextItAllowsToCompleteIsValid) {
  auto g = compile(kPerson);
  std::mt19937 rng(7);
  for (int run = 0; run < 200; ++run) {
    JsonGrammar::State state = g->start();
    JsonGrammar::State next;
    std::string text;
    while (!(g->complete(state) && rng() % 4 == 0)) {
      std::vector<std::pair<std::uint8_t, JsonGrammar::State>> options;
      for (int c = 0; c < 256; ++c) {
        g->step(state, static_cast<std::uint8_t>(c), next);
        if (!next.empty()) options.emplace_back(static_cast<std::uint8_t>(c), next);
      }
      if (options.empty()) break;
      auto& [byte, after] = options[rng() % options.size()];
      text.push_back(static_cast<char>(byte));
      state = after;
      ASSERT_LT(text.size(), 4096u) << "a bounded schema ends";
    }
    ASSERT_TRUE(g->complete(state)) << text;
    auto value = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(value.is_discarded()) << text;
    ASSERT_TRUE(value.is_object()) << text;
    ASSERT_TRUE(value.contains("name") && value["name"].is_string()) << text;
    ASSERT_TRUE(value.contains("tags") && value["tags"].is_array()) << text;
    EXPECT_GE(value["tags"].size(), 1u);
    EXPECT_LE(value["tags"].size(), 2u);
    if (value.contains("age")) {
      EXPECT_TRUE(value["age"].is_number_integer()) << text;
    }
    for (auto it = value.begin(); it != value.end(); ++it) {
      EXPECT_TRUE(it.key() == "name" || it.key() == "age" || it.key() == "tags") << text;
    }
  }
}

}  // namespace
}  // namespace aegaeon::text
