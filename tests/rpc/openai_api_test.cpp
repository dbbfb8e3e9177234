// Request validation names the offending field; responses have OpenAI's exact shape.
#include "rpc/http/openai_api.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace aegaeon::rpc::http::openai {
namespace {

using core::GenerationRequest;
using json = nlohmann::json;
constexpr auto kChat = GenerationRequest::Api::kChat;
constexpr auto kCompletion = GenerationRequest::Api::kCompletion;

TEST(OpenAiParse, ChatRequestWithEveryOption) {
  auto request = parse_generation_request(R"({
    "model": "demo-a", "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}],
    "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": 7, "stop": ["\n\n", "END"],
    "max_completion_tokens": 12, "max_tokens": 99, "logprobs": true, "presence_penalty": 0.1,
    "frequency_penalty": -0.2, "min_p": 0.05, "repetition_penalty": 1.15, "top_logprobs": 3, "n": 1, "stream": true, "stream_options": {"include_usage": true},
    "user": "u-1"})",
                                          kChat);
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->model, "demo-a");
  ASSERT_EQ(request->messages.size(), 2u);
  EXPECT_EQ(request->messages[1].content, "hi there");
  EXPECT_FLOAT_EQ(request->sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(request->sampling.top_p, 0.9f);
  EXPECT_EQ(request->sampling.top_k, 40);
  EXPECT_EQ(request->sampling.seed, 7u);
  EXPECT_EQ(request->stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_EQ(request->max_tokens, 12) << "max_completion_tokens wins over max_tokens";
  EXPECT_TRUE(request->logprobs);
  EXPECT_TRUE(request->stream);
  EXPECT_TRUE(request->include_usage);
  EXPECT_FLOAT_EQ(request->sampling.frequency_penalty, -0.2f);
  EXPECT_FLOAT_EQ(request->sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(request->sampling.repetition_penalty, 1.15f);
  EXPECT_EQ(request->sampling.top_logprobs, 3);
}

TEST(OpenAiParse, CompletionRequestDefaults) {
  auto request = parse_generation_request(R"({"model": "m", "prompt": "Once upon"})", kCompletion);
  ASSERT_TRUE(request.ok()) << request.error().message;
  ASSERT_EQ(request->prompts.size(), 1u);
  EXPECT_EQ(request->prompts[0].text, "Once upon");
  EXPECT_EQ(request->n, 1);
  EXPECT_FALSE(request->echo);
  EXPECT_EQ(request->sampling.prompt_logprobs, -1);
  EXPECT_FALSE(request->max_tokens.has_value());
  EXPECT_FLOAT_EQ(request->sampling.temperature, 1.0f);
  EXPECT_FALSE(request->stream);
  EXPECT_TRUE(request->stop.empty());
}

struct BadCase {
  const char* body;
  GenerationRequest::Api api;
  const char* field;
  const char* message_part;
};

TEST(OpenAiParse, ErrorsNameTheField) {
  const BadCase cases[] = {
      {"not json", kChat, "", "not valid JSON"},
      {"[1]", kChat, "", "JSON object"},
      {R"({"messages": [{"role":"user","content":"x"}]})", kChat, "model", "'model' is required"},
      {R"({"model": "m"})", kChat, "messages", "'messages' is required"},
      {R"({"model": "m", "messages": []})", kChat, "messages", "non-empty"},
      {R"({"model": "m", "messages": [{"role": "robot", "content": "x"}]})", kChat,
       "messages[0].role", "robot"},
      {R"({"model": "m", "messages": [{"role": "user"}]})", kChat, "messages[0].content", "required"},
      {R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", kChat,
       "messages[0].content[0]", "only text"},
      {R"({"model": "m", "prompt": "x", "temperature": 3})", kCompletion, "temperature", "between 0 and 2"},
      {R"({"model": "m", "prompt": "x", "temperature": "hot"})", kCompletion, "temperature", "number"},
      {R"({"model": "m", "prompt": "x", "top_p": 0})", kCompletion, "top_p", "greater than 0"},
      {R"({"model": "m", "prompt": "x", "n": 200})", kCompletion, "n", "between 1 and 128"},
      {R"({"model": "m", "prompt": "x", "max_tokens": 0})", kCompletion, "max_tokens", "only with 'echo'"},
      {R"({"model": "m", "prompt": "x", "max_completion_tokens": 0})", kCompletion, "max_completion_tokens", "between 1"},
      {R"({"model": "m", "prompt": "x", "max_tokens": 1.5})", kCompletion, "max_tokens", "integer"},
      {R"({"model": "m", "prompt": "x", "stop": ["a","b","c","d","e"]})", kCompletion, "stop", "at most 4"},
      {R"({"model": "m", "prompt": "x", "stream_options": {"include_usage": true}})", kCompletion,
       "stream_options", "stream: true"},
      {R"({"model": "m", "prompt": "x", "stream": true, "stream_options": {"include_usage": 1}})",
       kCompletion, "stream_options.include_usage", "boolean"},
      {R"({"model": "m", "prompt": [[1, 2], [3, -1]]})", kCompletion, "prompt[1]", "token ids"},
      {R"({"model": "m", "prompt": [1, -2]})", kCompletion, "prompt", "token ids"},
      {R"({"model": "m", "prompt": []})", kCompletion, "prompt", "non-empty"},
      {R"({"model": "m", "prompt": "x", "presence_penalty": -2.5})", kCompletion, "presence_penalty", "between -2 and 2"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "logprobs": 1})", kChat, "logprobs", "boolean"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "echo": true})", kChat, "echo", "/v1/completions"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "top_logprobs": 2})", kChat,
       "top_logprobs", "needs 'logprobs': true"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "logprobs": true, "top_logprobs": 21})",
       kChat, "top_logprobs", "between 0 and 20"},
      {R"({"model": "m", "prompt": "x", "logprobs": 6})", kCompletion, "logprobs", "between 0 and 5"},
      {R"({"model": "m", "prompt": "x", "top_logprobs": 2})", kCompletion, "top_logprobs", "'logprobs': N"},
      // Nothing silently ignored: unknown fields and options this server does not honour.
      {R"({"model": "m", "prompt": "x", "temprature": 0})", kCompletion, "temprature", "unknown field"},
      {R"({"model": "m", "prompt": "x", "messages": []})", kCompletion, "messages", "unknown field"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "prompt": "x"})", kChat, "prompt", "unknown field"},
      {R"({"model": "m", "prompt": "x", "ignore_eos": 1})", kCompletion, "ignore_eos", "boolean"},
      {R"({"model": "m", "prompt": "x", "min_tokens": -1})", kCompletion, "min_tokens", "between 0"},
      {R"({"model": "m", "prompt": "x", "stop_token_ids": 5})", kCompletion, "stop_token_ids", "array"},
      {R"({"model": "m", "prompt": "x", "stop_token_ids": [5, -2]})", kCompletion, "stop_token_ids[1]", "non-negative"},
      {R"({"model": "m", "prompt": "x", "logit_bias": [5]})", kCompletion, "logit_bias", "object"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"5": 101}})", kCompletion, "logit_bias.5", "between -100 and 100"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"x5": 1}})", kCompletion, "logit_bias.x5", "token id"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"-5": 1}})", kCompletion, "logit_bias.-5", "token id"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json"}})", kCompletion, "response_format.type",
       "json_schema"},
      {R"({"model": "m", "prompt": "x", "response_format": "json_object"})", kCompletion, "response_format", "object"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json_object", "schema": {}}})", kCompletion,
       "response_format.schema", "unknown field"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json_schema"}})", kCompletion,
       "response_format.json_schema", "object"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})",
       kCompletion, "response_format.json_schema.name", "letters"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a b",
          "schema": {}}}})", kCompletion, "response_format.json_schema.name", "letters"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "n"}}})",
       kCompletion, "response_format.json_schema.schema", "JSON Schema"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "n",
          "schema": {}, "strict": "yes"}}})", kCompletion, "response_format.json_schema.strict", "boolean"},
      {R"({"model": "m", "prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "n",
          "schema": {}, "strict": true, "extra": 1}}})", kCompletion, "response_format.json_schema.extra", "unknown field"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "response_format": {"type": "json_object"},
          "tools": [{"type": "function", "function": {"name": "f"}}]})", kChat, "response_format", "tools"},
      {R"({"model": "m", "prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}]})", kCompletion,
       "tools", "not supported"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "tools": [{"type": "function"}]})", kChat,
       "tools[0]", "must be"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "tools": [{"type": "function",
          "function": {"name": ""}}]})", kChat, "tools[0].function.name", "non-empty"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "tools": [{"type": "function",
          "function": {"name": "f"}}], "tool_choice": "anything"})", kChat, "tool_choice", "\"required\""},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "tools": [{"type": "function",
          "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}})", kChat,
       "tool_choice.function.name", "not among"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "tool_choice": "required"})", kChat,
       "tool_choice", "needs 'tools'"},
      {R"({"model": "m", "messages": [{"role":"tool","content":"x"}]})", kChat, "messages[0].tool_call_id", "required"},
      {R"({"model": "m", "messages": [{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f",
          "arguments":{}}}]}]})", kChat, "messages[0].tool_calls[0].function.arguments", "string of JSON"},
      {R"({"model": "m", "prompt": "x", "min_p": 1.5})", kCompletion, "min_p", "between 0 and 1"},
      {R"({"model": "m", "prompt": "x", "repetition_penalty": 0})", kCompletion, "repetition_penalty", "greater than 0"},
      {R"({"model": "m", "prompt": "x", "repetition_penalty": 2.5})", kCompletion, "repetition_penalty", "between 0 and 2"},
      {R"({"model": "m", "prompt": "x", "best_of": 3})", kCompletion, "best_of", "not supported"},
      // chat_template_kwargs: chat only, an object, never the variables the server sets.
      {R"({"model": "m", "prompt": "x", "chat_template_kwargs": {}})", kCompletion, "chat_template_kwargs", "unknown field"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "chat_template_kwargs": true})", kChat,
       "chat_template_kwargs", "must be an object"},
      {R"({"model": "m", "messages": [{"role":"user","content":"x"}], "chat_template_kwargs": {"messages": []}})", kChat,
       "chat_template_kwargs.messages", "set by the server"},
  };
  for (const auto& c : cases) {
    auto request = parse_generation_request(c.body, c.api);
    ASSERT_FALSE(request.ok()) << c.body;
    EXPECT_EQ(request.error().code, core::ErrorCode::kInvalidArgument) << c.body;
    EXPECT_EQ(request.error().field, c.field) << c.body;
    EXPECT_NE(request.error().message.find(c.message_part), std::string::npos)
        << c.body << " -> " << request.error().message;
  }
}

TEST(OpenAiParse, ToolsAndToolTurns) {
  auto request = parse_generation_request(R"({"model": "m", "parallel_tool_calls": false, "tool_choice": "auto",
      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
      "messages": [{"role": "user", "content": "Weather?"},
                   {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}]})",
                                          kChat);
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(json::parse(request->tools)[0]["function"]["name"], "get_weather");
  EXPECT_FALSE(request->parallel_tool_calls);
  ASSERT_EQ(request->messages.size(), 3u);
  ASSERT_EQ(request->messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(request->messages[1].tool_calls[0].id, "call_1");
  EXPECT_EQ(request->messages[1].tool_calls[0].arguments, R"({"city": "Paris"})");
  EXPECT_EQ(request->messages[1].content, "");
  EXPECT_EQ(request->messages[2].tool_call_id, "call_1");
  auto none = parse_generation_request(R"({"model": "m", "messages": [{"role":"user","content":"x"}], "tool_choice": "none",
      "tools": [{"type": "function", "function": {"name": "f"}}]})", kChat);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_EQ(none->tools, "") << "tool_choice none: the model is not shown the tools";
}

TEST(OpenAiFormat, ToolCallsInBothShapes) {
  const std::vector<core::ToolCall> calls{{"call_7_0", "get_weather", R"({"city":"Paris"})"}};
  ResponseFormatter full(kChat, "m", 7, 1, false);
  auto body = json::parse(full.full_response({{"", {}, core::FinishReason::kStop, calls}}, {3, 9}));
  const auto& choice = body["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_TRUE(choice["message"]["content"].is_null());
  EXPECT_EQ(choice["message"]["tool_calls"][0]["id"], "call_7_0");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["type"], "function");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["arguments"], R"({"city":"Paris"})");
  ResponseFormatter stream(kChat, "m", 7, 1, false);
  auto delta = json::parse(stream.tool_calls_chunk(calls))["choices"][0]["delta"];
  EXPECT_EQ(delta["role"], "assistant");
  EXPECT_EQ(delta["tool_calls"][0]["index"], 0);
  EXPECT_EQ(delta["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(stream.finish_chunk(core::FinishReason::kStop, true))["choices"][0]["finish_reason"], "tool_calls");
}

TEST(OpenAiParse, VllmTextExtensions) {
  auto biased = parse_generation_request(R"({"model": "m", "prompt": "x", "logit_bias": {"42": -100, "7": 2.5}})", kCompletion);
  ASSERT_TRUE(biased.ok()) << biased.error().message;
  EXPECT_EQ(biased->sampling.logit_bias, (std::vector<std::pair<std::int32_t, float>>{{42, -100.0f}, {7, 2.5f}}));
  auto defaults = parse_generation_request(R"({"model": "m", "prompt": "x"})", kCompletion);
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults->skip_special_tokens);
  EXPECT_FALSE(defaults->include_stop_str_in_output);
  auto set = parse_generation_request(
      R"({"model": "m", "prompt": "x", "skip_special_tokens": false, "include_stop_str_in_output": true})", kCompletion);
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_FALSE(set->skip_special_tokens);
  EXPECT_TRUE(set->include_stop_str_in_output);
  auto bad = parse_generation_request(R"({"model": "m", "prompt": "x", "skip_special_tokens": 0})", kCompletion);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "skip_special_tokens");
}

TEST(OpenAiParse, PromptAsTokenIds) {
  for (const char* body : {R"({"model": "m", "prompt": [5, 0, 7]})", R"({"model": "m", "prompt": [[5, 0, 7]]})"}) {
    auto request = parse_generation_request(body, kCompletion);
    ASSERT_TRUE(request.ok()) << body << " -> " << request.error().message;
    ASSERT_EQ(request->prompts.size(), 1u) << body;
    EXPECT_EQ(request->prompts[0].token_ids, (std::vector<std::int32_t>{5, 0, 7})) << body;
    EXPECT_EQ(request->prompts[0].text, "");
  }
  auto text = parse_generation_request(R"({"model": "m", "prompt": ["hi"]})", kCompletion);
  ASSERT_TRUE(text.ok());
  ASSERT_EQ(text->prompts.size(), 1u);
  EXPECT_EQ(text->prompts[0].text, "hi");
  EXPECT_TRUE(text->prompts[0].token_ids.empty());
}

TEST(OpenAiParse, SeveralPromptsAndChoices) {
  auto mixed = parse_generation_request(R"({"model": "m", "prompt": ["a", [1, 2], "b"], "n": 3})", kCompletion);
  ASSERT_TRUE(mixed.ok()) << mixed.error().message;
  ASSERT_EQ(mixed->prompts.size(), 3u);
  EXPECT_EQ(mixed->prompts[0].text, "a");
  EXPECT_EQ(mixed->prompts[1].token_ids, (std::vector<std::int32_t>{1, 2}));
  EXPECT_EQ(mixed->prompts[2].text, "b");
  EXPECT_EQ(mixed->n, 3);
  auto chat = parse_generation_request(R"({"model": "m", "messages": [{"role":"user","content":"x"}], "n": 2})", kChat);
  ASSERT_TRUE(chat.ok()) << chat.error().message;
  EXPECT_EQ(chat->n, 2);
  // Each refusal names the field that caused it.
  const std::pair<const char*, const char*> refused[] = {
      {R"({"model": "m", "prompt": ["a", 5]})", "prompt[1]"},
      {R"({"model": "m", "prompt": []})", "prompt"},
      {R"({"model": "m", "prompt": [[]]})", "prompt[0]"},
      {R"({"model": "m", "prompt": "a", "n": 0})", "n"},
      {R"({"model": "m", "prompt": "a", "n": 129})", "n"},
      {R"({"model": "m", "prompt": ["a", "b", "c"], "n": 50})", "n"},
  };
  for (const auto& [body, field] : refused) {
    auto request = parse_generation_request(body, kCompletion);
    ASSERT_FALSE(request.ok()) << body;
    EXPECT_EQ(request.error().field, field) << body << ": " << request.error().message;
  }
}

TEST(OpenAiParse, EchoScoresThePromptAndMayGenerateNothing) {
  auto scored = parse_generation_request(R"({"model": "m", "prompt": "a b", "echo": true, "max_tokens": 0, "logprobs": 2})",
                                         kCompletion);
  ASSERT_TRUE(scored.ok()) << scored.error().message;
  EXPECT_TRUE(scored->echo);
  EXPECT_EQ(scored->max_tokens, 0);
  EXPECT_EQ(scored->sampling.prompt_logprobs, 2);
  EXPECT_EQ(scored->sampling.top_logprobs, 2);
  auto plain = parse_generation_request(R"({"model": "m", "prompt": "a b", "echo": true})", kCompletion);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(plain->sampling.prompt_logprobs, -1) << "without logprobs the prompt is echoed, not scored";
  const std::pair<const char*, const char*> refused[] = {
      {R"({"model": "m", "prompt": "a", "max_tokens": 0})", "max_tokens"},
      {R"({"model": "m", "prompt": "a", "echo": 1})", "echo"},
  };
  for (const auto& [body, field] : refused) {
    auto request = parse_generation_request(body, kCompletion);
    ASSERT_FALSE(request.ok()) << body;
    EXPECT_EQ(request.error().field, field) << body << ": " << request.error().message;
  }
  auto chat = parse_generation_request(R"({"model": "m", "messages": [{"role":"user","content":"x"}], "echo": true})", kChat);
  ASSERT_FALSE(chat.ok());
  EXPECT_EQ(chat.error().field, "echo");
}

TEST(OpenAiParse, ChatTemplateKwargsReachTheTemplate) {
  auto request = parse_generation_request(
      R"({"model": "m", "messages": [{"role":"user","content":"x"}], "chat_template_kwargs": {"enable_thinking": false}})",
      kChat);
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->chat_template_kwargs, R"({"enable_thinking":false})");
}

// vLLM's stop controls, which benchmark clients send (ignore_eos to generate exactly max_tokens).
TEST(OpenAiParse, StopTokenIdsIgnoreEosAndMinTokens) {
  auto request = parse_generation_request(
      R"({"model": "m", "prompt": "x", "stop_token_ids": [7, 11], "ignore_eos": true, "min_tokens": 4, "max_tokens": 9})",
      kCompletion);
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->stop_token_ids, (std::vector<std::int32_t>{7, 11}));
  EXPECT_TRUE(request->ignore_eos);
  EXPECT_EQ(request->min_tokens, 4);
  auto defaults = parse_generation_request(R"({"model": "m", "prompt": "x"})", kCompletion);
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults->stop_token_ids.empty());
  EXPECT_FALSE(defaults->ignore_eos);
  EXPECT_EQ(defaults->min_tokens, 0);
}

// tool_choice: "required" forces a call to any tool, a named function a call to it.
TEST(OpenAiParse, ToolChoiceForcesACall) {
  const std::string start = R"({"model": "m", "messages": [{"role":"user","content":"x"}], "tools": [{"type": "function",
      "function": {"name": "f"}}], "tool_choice": )";
  auto required = parse_generation_request(start + R"("required"})", kChat);
  ASSERT_TRUE(required.ok()) << required.error().message;
  EXPECT_EQ(required->forced_tool, std::optional<std::string>(""));
  auto named = parse_generation_request(start + R"({"type": "function", "function": {"name": "f"}}})", kChat);
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_EQ(named->forced_tool, std::optional<std::string>("f"));
  auto automatic = parse_generation_request(start + R"("auto"})", kChat);
  ASSERT_TRUE(automatic.ok());
  EXPECT_FALSE(automatic->forced_tool.has_value());
}

// response_format: json_object asks for any object; json_schema keeps the schema as written,
// its properties in their order (generation follows it).
TEST(OpenAiParse, ResponseFormatKeepsTheSchemaAsWritten) {
  auto object = parse_generation_request(R"({"model": "m", "prompt": "x", "response_format": {"type": "json_object"}})",
                                         kCompletion);
  ASSERT_TRUE(object.ok()) << object.error().message;
  EXPECT_EQ(object->sampling.structured.json_schema, R"({"type":"object"})");
  auto schema = parse_generation_request(R"({"model": "m", "messages": [{"role":"user","content":"x"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "w-1", "strict": true,
        "schema": {"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {"type": "integer"}}}}}})",
                                         kChat);
  ASSERT_TRUE(schema.ok()) << schema.error().message;
  EXPECT_EQ(schema->sampling.structured.json_schema,
            R"({"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}})");
  auto text = parse_generation_request(R"({"model": "m", "prompt": "x", "response_format": {"type": "text"}})", kCompletion);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->sampling.structured.json_schema, "");
}

// Options some clients send on every request with a value that asks for nothing are accepted.
TEST(OpenAiParse, OptionsThatAskForNothingAreAccepted) {
  for (const char* extra :
       {R"("tools": [])", R"("tool_choice": "none")", R"("parallel_tool_calls": true)",
        R"("response_format": {"type": "text"})", R"("logit_bias": {})", R"("ignore_eos": false)", R"("store": false)",
        R"("metadata": null)", R"("min_p": 0)", R"("repetition_penalty": 1.0)", R"("service_tier": "auto")",
        R"("modalities": ["text"])", R"("anything_unknown": null)"}) {
    auto request = parse_generation_request(
        std::string(R"({"model": "m", "messages": [{"role":"user","content":"x"}], )") + extra + "}", kChat);
    EXPECT_TRUE(request.ok()) << extra << " -> " << request.error().message;
  }
  auto completion = parse_generation_request(R"({"model": "m", "prompt": "x", "best_of": 1, "suffix": ""})", kCompletion);
  EXPECT_TRUE(completion.ok()) << completion.error().message;
}

// serve.max_tokens_limit: either spelling above the cap is refused, naming the field the client used.
// Every field of the official client's request schemas (openai 4.104.0, node_modules/openai:
// ChatCompletionCreateParamsBase and CompletionCreateParamsBase), each sent with a value that asks
// for something: either the server honours it (docs/api.md says what it does) or the request is
// a 400 naming the field as not supported — never an "unknown field", never accepted silently.
TEST(OpenAiParse, EveryFieldOfTheOfficialSchemasIsHonouredOrRefused) {
  struct Field {
    const char* name;
    json value;
    bool honoured;
  };
  const std::vector<Field> chat = {
      {"audio", {{"voice", "alloy"}, {"format", "wav"}}, false},
      {"frequency_penalty", 0.5, true},
      {"function_call", {{"name", "f"}}, false},
      {"functions", json::array({{{"name", "f"}}}), false},
      {"logit_bias", {{"7", 5}}, true},
      {"logprobs", true, true},
      {"max_completion_tokens", 8, true},
      {"max_tokens", 8, true},
      {"metadata", {{"k", "v"}}, false},
      {"modalities", json::array({"text", "audio"}), false},
      {"n", 2, true},
      {"parallel_tool_calls", false, true},
      {"prediction", {{"type", "content"}, {"content", "x"}}, false},
      {"presence_penalty", 0.5, true},
      {"reasoning_effort", "low", false},
      {"response_format", {{"type", "json_object"}}, true},
      {"seed", 3, true},
      {"service_tier", "flex", false},
      {"stop", "x", true},
      {"store", true, false},
      {"stream", true, true},
      {"temperature", 0.5, true},
      {"tool_choice", "required", true},
      {"tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}}), true},
      {"top_p", 0.5, true},
      {"user", "u", true},
      {"web_search_options", {{"search_context_size", "low"}}, false},
  };
  const std::vector<Field> completion = {
      {"best_of", 2, false},
      {"echo", true, true},
      {"frequency_penalty", 0.5, true},
      {"logit_bias", {{"7", 5}}, true},
      {"logprobs", 2, true},
      {"max_tokens", 8, true},
      {"n", 2, true},
      {"presence_penalty", 0.5, true},
      {"seed", 3, true},
      {"stop", "x", true},
      {"stream", true, true},
      {"suffix", "end", false},
      {"temperature", 0.5, true},
      {"top_p", 0.5, true},
      {"user", "u", true},
  };
  const json chat_base = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}};
  const json completion_base = {{"model", "m"}, {"prompt", "x"}};
  for (const auto& [fields, base, api] : {std::tuple{&chat, &chat_base, kChat}, std::tuple{&completion, &completion_base, kCompletion}}) {
    for (const Field& field : *fields) {
      json body = *base;
      body[field.name] = field.value;
      if (std::string(field.name) == "tool_choice") body["tools"] = json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
      auto request = parse_generation_request(body.dump(), api);
      if (field.honoured) {
        EXPECT_TRUE(request.ok()) << field.name << ": " << (request.ok() ? "" : request.error().message);
        continue;
      }
      ASSERT_FALSE(request.ok()) << field.name << " was accepted with a value this server cannot honour";
      EXPECT_EQ(request.error().field, field.name);
      EXPECT_NE(request.error().message.find("not supported"), std::string::npos)
          << field.name << ": " << request.error().message;
    }
  }
}

TEST(OpenAiRequest, MaxTokensLimitNamesTheField) {
  auto within = parse_generation_request(R"({"model": "m", "prompt": "x", "max_tokens": 64})", kCompletion, 64);
  ASSERT_TRUE(within.ok()) << within.error().message;
  EXPECT_EQ(within->max_tokens, 64);
  for (const char* field : {"max_tokens", "max_completion_tokens"}) {
    auto above = parse_generation_request(
        std::string(R"({"model": "m", "messages": [{"role":"user","content":"x"}], ")") + field + R"(": 65})", kChat, 64);
    ASSERT_FALSE(above.ok()) << field;
    EXPECT_EQ(above.error().field, field);
    EXPECT_NE(above.error().message.find("between 1 and 64"), std::string::npos) << above.error().message;
  }
  EXPECT_TRUE(parse_generation_request(R"({"model": "m", "prompt": "x", "max_tokens": 65})", kCompletion).ok())
      << "no limit configured: only the context bounds max_tokens";
}

TEST(OpenAiRequest, LogprobsCountsPerApi) {
  auto chat = parse_generation_request(
      R"({"model": "m", "messages": [{"role":"user","content":"x"}], "logprobs": true, "top_logprobs": 3})", kChat);
  ASSERT_TRUE(chat.ok()) << chat.error().message;
  EXPECT_TRUE(chat->logprobs);
  EXPECT_EQ(chat->sampling.top_logprobs, 3);
  auto completion = parse_generation_request(R"({"model": "m", "prompt": "x", "logprobs": 2})", kCompletion);
  ASSERT_TRUE(completion.ok()) << completion.error().message;
  EXPECT_TRUE(completion->logprobs);
  EXPECT_EQ(completion->sampling.top_logprobs, 2);
  auto plain = parse_generation_request(R"({"model": "m", "prompt": "x"})", kCompletion);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->logprobs);
}

TEST(OpenAiFormat, TopLogprobsInBothFormats) {
  const std::vector<TokenOut> tokens = {{"a", -0.1f, "a", {{"a", -0.1f}, {"b", -2.5f}}}};
  ResponseFormatter chat(kChat, "m", 1, 1, /*logprobs=*/true);
  auto entry = json::parse(chat.full_response({{"a", tokens, core::FinishReason::kLength}}, {1, 1}))
                   ["choices"][0]["logprobs"]["content"][0];
  ASSERT_EQ(entry["top_logprobs"].size(), 2u);
  EXPECT_EQ(entry["top_logprobs"][1]["token"], "b");
  EXPECT_FLOAT_EQ(entry["top_logprobs"][1]["logprob"].get<float>(), -2.5f);
  EXPECT_EQ(entry["top_logprobs"][1]["bytes"], json::array({98}));
  ResponseFormatter completion(kCompletion, "m", 1, 1, /*logprobs=*/true);
  auto legacy = json::parse(completion.chunk(tokens))["choices"][0]["logprobs"];
  EXPECT_FLOAT_EQ(legacy["top_logprobs"][0]["b"].get<float>(), -2.5f);
  EXPECT_TRUE(json::parse(completion.chunk({{"c", -1.0f, "c"}}))["choices"][0]["logprobs"]["top_logprobs"][0].is_null())
      << "no alternatives asked for: null, as OpenAI sends";
}

// A token's text and real bytes, partial UTF-8 spelled as OpenAI does, and where each token's
// text starts (characters) across streamed chunks.
TEST(OpenAiFormat, LogprobTokensAreTextAndBytesWithOffsets) {
  // "€" split over two tokens: the first holds E2 82, the text appears with the second.
  const std::vector<TokenOut> first = {{"h\xC3\xA9", -0.5f, "h\xC3\xA9", {}}, {"", -0.2f, "\xE2\x82", {}}};
  const std::vector<TokenOut> second = {{"\xE2\x82\xAC", -0.1f, "\xAC", {}}, {"!", -0.3f, "!", {}}};
  ResponseFormatter chat(kChat, "m", 1, 1, /*logprobs=*/true);
  auto content = json::parse(chat.chunk(first))["choices"][0]["logprobs"]["content"];
  EXPECT_EQ(content[0]["token"], "h\xC3\xA9");
  EXPECT_EQ(content[0]["bytes"], json::array({104, 0xC3, 0xA9}));
  EXPECT_EQ(content[1]["token"], "bytes:\\xe2\\x82");
  EXPECT_EQ(content[1]["bytes"], json::array({0xE2, 0x82}));
  ResponseFormatter completion(kCompletion, "m", 1, 1, /*logprobs=*/true);
  auto a = json::parse(completion.chunk(first))["choices"][0]["logprobs"];
  auto b = json::parse(completion.chunk(second))["choices"][0]["logprobs"];
  EXPECT_EQ(a["text_offset"], json::array({0, 2}));
  EXPECT_EQ(b["text_offset"], json::array({2, 3}));  // "hé" is two characters, "€" one
  EXPECT_EQ(b["tokens"][0], "bytes:\\xac");
  std::vector<TokenOut> all = first;
  all.insert(all.end(), second.begin(), second.end());
  auto full = json::parse(completion.full_response({{"h\xC3\xA9\xE2\x82\xAC!", all, core::FinishReason::kLength}}, {1, 4}));
  EXPECT_EQ(full["choices"][0]["logprobs"]["text_offset"], json::array({0, 2, 2, 3}));
}

TEST(OpenAiErrors, StatusTypeParamAndRetryAfter) {
  core::Error bad{core::ErrorCode::kInvalidArgument, "'temperature' must be ...", "temperature"};
  auto response = error_response(bad);
  EXPECT_EQ(response.status, 400);
  auto body = json::parse(response.body);
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["param"], "temperature");

  auto missing = error_response(core::error(core::ErrorCode::kNotFound, "model 'x' is not served"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body)["error"]["code"], "model_not_found");

  auto busy = error_response(core::error(core::ErrorCode::kResourceExhausted, "TBT SLO infeasible"), 3);
  EXPECT_EQ(busy.status, 429);
  ASSERT_EQ(busy.headers.size(), 1u);
  EXPECT_EQ(busy.headers[0], (Header{"Retry-After", "3"}));
}

TEST(OpenAiFormat, ChatChunksCarryRoleOnceThenFinishAndUsage) {
  ResponseFormatter format(kChat, "demo-a", 42, 1700000000, /*logprobs=*/true);
  auto first = json::parse(format.chunk({{"Hel", -0.5f, "Hel"}, {"lo", -0.25f, "lo"}}));
  EXPECT_EQ(first["id"], "chatcmpl-42");
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["created"], 1700000000);
  EXPECT_EQ(first["model"], "demo-a");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "Hello");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(first["choices"][0]["logprobs"]["content"][1]["logprob"], -0.25);
  auto second = json::parse(format.chunk({{"!", -1.0f, "!"}}));
  EXPECT_FALSE(second["choices"][0]["delta"].contains("role"));
  auto finish = json::parse(format.finish_chunk(core::FinishReason::kLength));
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(finish["choices"][0]["delta"].empty());
  auto usage = json::parse(format.usage_chunk({5, 3}));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 8);
}

// Text released at the end (bytes held for a partial character) belongs to tokens already
// reported: its chunk carries the text and no logprob entry of its own.
TEST(OpenAiFormat, TextChunkListsNoToken) {
  ResponseFormatter completion(kCompletion, "m", 1, 1, /*logprobs=*/true);
  auto legacy = json::parse(completion.text_chunk("\xc3\xa9"));
  EXPECT_EQ(legacy["choices"][0]["text"], "\xc3\xa9");
  EXPECT_TRUE(legacy["choices"][0]["logprobs"]["tokens"].empty());
  EXPECT_TRUE(legacy["choices"][0]["logprobs"]["token_logprobs"].empty());
  ResponseFormatter chat(kChat, "m", 2, 1, /*logprobs=*/true);
  auto delta = json::parse(chat.text_chunk("tail"));
  EXPECT_EQ(delta["choices"][0]["delta"]["content"], "tail");
  EXPECT_TRUE(delta["choices"][0]["logprobs"]["content"].empty());
  ResponseFormatter plain(kCompletion, "m", 3, 1, /*logprobs=*/false);
  EXPECT_TRUE(json::parse(plain.text_chunk("x"))["choices"][0]["logprobs"].is_null());
}

TEST(OpenAiFormat, FullCompletionResponse) {
  ResponseFormatter format(kCompletion, "m", 7, 1, /*logprobs=*/false);
  auto body = json::parse(format.full_response({{"abc", {}, core::FinishReason::kStop}}, {2, 3}));
  EXPECT_EQ(body["id"], "cmpl-7");
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], "abc");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(body["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(body["usage"]["prompt_tokens"], 2);
  EXPECT_EQ(body["usage"]["completion_tokens"], 3);
}

TEST(OpenAiFormat, InvalidUtf8InTextIsReplacedNotThrown) {
  ResponseFormatter format(kChat, "m", 1, 1, false);
  auto text = json::parse(format.full_response({{std::string("a\xff"), {}, core::FinishReason::kStop}}, {}));
  EXPECT_EQ(text["choices"][0]["message"]["content"], "a\xEF\xBF\xBD");
}

}  // namespace
}  // namespace aegaeon::rpc::http::openai
