// The OpenAI-compatible API of a real `aegaeon serve` (demo models, CPU backend): completions
// and chat, streaming and not, errors with the field named, tokenizer endpoints and the API key
// (switching_test.cpp has switching under load, disconnects, streaming parity and logprobs).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "core/utf8.hpp"
#include "tests/integration/serve_process.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon {
namespace {

using json = nlohmann::json;
using testing::ServeProcess;

// Each (schema, text) through python3-jsonschema (validate_json.py): one verdict per case, "ok"
// or why not.
std::vector<std::string> validate_with_jsonschema(const std::vector<std::pair<json, std::string>>& cases) {
  const std::string validator = (std::filesystem::path(__FILE__).parent_path() / "validate_json.py").string();
  std::string lines;
  for (const auto& [schema, text] : cases) lines += json{{"schema", schema}, {"text", text}}.dump() + "\n";
  auto [code, output] = testing::run_command({"/usr/bin/python3", validator}, lines, std::chrono::seconds(60));
  EXPECT_EQ(code, 0) << output << "\nIt needs /usr/bin/python3 with jsonschema: run scripts/install-deps";
  std::vector<std::string> verdicts;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) verdicts.push_back(line);
  EXPECT_EQ(verdicts.size(), cases.size()) << output;
  return verdicts;
}

// One server for the suite: starting it loads the four demo models.
class OpenAiApi : public testing::SharedServeSuite<OpenAiApi> {
 public:
  static std::vector<std::string> server_args() { return {}; }
};

// Admission control may turn a request away (429 + Retry-After) while the machine is loaded, as
// it would tell any client: these wait as told and try again, at most kAdmissionTries times.
constexpr int kAdmissionTries = 20;

// Sleeps for a refusal's Retry-After (1 s when it names none).
void wait_as_told(const testing::ClientResponse& refusal) {
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(refusal.header("retry-after").value_or("1"))));
}

testing::ClientResponse post_admitted(uint16_t port, const std::string& path, const json& body) {
  testing::ClientResponse response;
  for (int attempt = 0; attempt < kAdmissionTries; ++attempt) {
    response = testing::post_json(port, path, body);
    if (response.status != 429) break;
    wait_as_told(response);
  }
  return response;
}

// A streamed request's connection once its head says 200 (or the last refusal's status).
std::unique_ptr<testing::HttpConnection> stream_admitted(uint16_t port, const std::string& path, const json& body,
                                                         int& status) {
  for (int attempt = 0; attempt < kAdmissionTries; ++attempt) {
    auto connection = std::make_unique<testing::HttpConnection>(port);
    connection->send_request("POST", path, body.dump());
    auto head = connection->read_head(std::chrono::seconds(60));
    status = head.status;
    if (status != 429) return connection;
    wait_as_told(head);
  }
  return nullptr;
}

TEST_F(OpenAiApi, ListsTheDemoModels) {
  auto response = testing::http_request(server().port(), "GET", "/v1/models");
  ASSERT_EQ(response.status, 200);
  auto body = json::parse(response.body);
  ASSERT_EQ(body["data"].size(), 4u) << "the embedded default serves four demo models";
  EXPECT_EQ(body["data"][0]["id"], "demo-xs");
  EXPECT_EQ(body["data"][0]["object"], "model");
  EXPECT_TRUE(body["data"][0]["state"] == "cached" || body["data"][0]["state"] == "resident");
}

TEST_F(OpenAiApi, CompletionStopsAtMaxTokensWithUsage) {
  auto response = post("/v1/completions", {{"model", "demo-xs"}, {"prompt", "Hello there"},
                                           {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 0}});
  ASSERT_EQ(response.status, 200) << response.body;
  auto body = json::parse(response.body);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 5);
  EXPECT_EQ(body["usage"]["prompt_tokens"], 2) << "'Hello there' is two tokens in the demo tokenizer";
  EXPECT_EQ(body["choices"][0]["logprobs"]["token_logprobs"].size(), 5u);
  for (const auto& lp : body["choices"][0]["logprobs"]["token_logprobs"]) EXPECT_LE(lp.get<double>(), 0.0);
}

// A stream's logprobs list each generated token exactly once, also when the last text chunk
// only releases bytes held back for a partial character (these prompts end on one: before the
// fix that chunk listed an extra, empty token).
TEST_F(OpenAiApi, StreamedLogprobsCountEveryTokenOnce) {
  for (const auto& [model, prompt] : std::vector<std::pair<std::string, std::string>>{
           {"demo-xs", "Request 0: tell me about the sea"}, {"demo-l", "Request 3: tell me about the sea"},
           {"demo-s", "Hello there"}}) {
    testing::HttpConnection connection(server().port());
    connection.send_request("POST", "/v1/completions",
                            json{{"model", model}, {"prompt", prompt}, {"max_tokens", 8}, {"temperature", 0},
                                 {"logprobs", 0}, {"stream", true}, {"stream_options", {{"include_usage", true}}}}
                                .dump());
    ASSERT_EQ(connection.read_head(std::chrono::seconds(60)).status, 200);
    size_t listed = 0;
    int completion_tokens = -1;
    std::optional<std::string> event;
    while ((event = connection.read_event(std::chrono::seconds(60))) && *event != "[DONE]") {
      auto chunk = json::parse(*event);
      if (chunk.contains("usage") && chunk["usage"].is_object()) completion_tokens = chunk["usage"]["completion_tokens"];
      if (!chunk["choices"].empty() && chunk["choices"][0]["logprobs"].is_object()) {
        listed += chunk["choices"][0]["logprobs"]["tokens"].size();
      }
    }
    ASSERT_EQ(event, "[DONE]");
    EXPECT_EQ(completion_tokens, 8) << model;
    EXPECT_EQ(listed, 8u) << model << ": " << prompt;
  }
}

TEST_F(OpenAiApi, ChatStreamsChunksUsageAndDone) {
  testing::HttpConnection connection(server().port());
  connection.send_request("POST", "/v1/chat/completions",
                          json{{"model", "demo-s"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                               {"max_tokens", 4}, {"stream", true},
                               {"stream_options", {{"include_usage", true}}}}
                              .dump());
  auto head = connection.read_head();
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-type"), "text/event-stream");
  std::vector<json> chunks;
  std::optional<std::string> event;
  while ((event = connection.read_event()) && *event != "[DONE]") chunks.push_back(json::parse(*event));
  ASSERT_EQ(event, "[DONE]");
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks.front()["choices"][0]["delta"]["role"], "assistant");
  const auto& finish = chunks[chunks.size() - 2];
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "length");
  const auto& usage = chunks.back();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 4);
  for (const auto& chunk : chunks) EXPECT_EQ(chunk["id"], chunks.front()["id"]);
}

TEST_F(OpenAiApi, ErrorsAreOpenAiObjectsNamingTheField) {
  auto unknown = post("/v1/completions", {{"model", "nope"}, {"prompt", "x"}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["error"]["param"], "model");
  auto bad = post("/v1/completions", {{"model", "demo-xs"}, {"prompt", "x"}, {"temperature", 9}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"]["param"], "temperature");
  auto too_long = post("/v1/completions", {{"model", "demo-xs"}, {"prompt", "x"}, {"max_tokens", 100000}});
  EXPECT_EQ(too_long.status, 400);
  EXPECT_EQ(json::parse(too_long.body)["error"]["param"], "max_tokens");
  auto not_json = testing::http_request(server().port(), "POST", "/v1/chat/completions", "{oops");
  EXPECT_EQ(not_json.status, 400);
}

// What evaluation harnesses send: the prompt as token ids continues exactly as its text does,
// and the legacy logprobs say where each token's text starts.
TEST_F(OpenAiApi, PromptAsTokenIdsContinuesAsItsText) {
  auto tokens = post("/tokenize", {{"model", "demo-s"}, {"prompt", "Hello there"}, {"add_special_tokens", true}});
  ASSERT_EQ(tokens.status, 200) << tokens.body;
  const json ids = json::parse(tokens.body)["tokens"];
  const json common = {{"model", "demo-s"}, {"max_tokens", 6}, {"temperature", 0}, {"logprobs", 1}};
  json by_text = common;
  by_text["prompt"] = "Hello there";
  json by_ids = common;
  by_ids["prompt"] = ids;
  auto a = post("/v1/completions", by_text);
  auto b = post("/v1/completions", by_ids);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  const auto choice_a = json::parse(a.body)["choices"][0];
  const auto choice_b = json::parse(b.body)["choices"][0];
  EXPECT_EQ(choice_a["text"], choice_b["text"]);
  EXPECT_EQ(choice_a["logprobs"]["tokens"], choice_b["logprobs"]["tokens"]);
  EXPECT_EQ(json::parse(b.body)["usage"]["prompt_tokens"], ids.size());
  const auto offsets = choice_b["logprobs"]["text_offset"];
  ASSERT_EQ(offsets.size(), 6u);
  for (std::size_t i = 1; i < offsets.size(); ++i) EXPECT_LE(offsets[i - 1], offsets[i]);
  json outside = common;
  outside["prompt"] = json::array({1, 100000});
  auto refused = post("/v1/completions", outside);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json::parse(refused.body)["error"]["param"], "prompt");
}

// A stop string ends the text before it, or with it under vLLM's include_stop_str_in_output.
TEST_F(OpenAiApi, StopStringsEndTheTextWithOrWithoutThemselves) {
  const json request = {{"model", "demo-s"}, {"prompt", "Hello there"}, {"max_tokens", 16}, {"temperature", 0}};
  auto free_run = post("/v1/completions", request);
  ASSERT_EQ(free_run.status, 200) << free_run.body;
  const std::string text = json::parse(free_run.body)["choices"][0]["text"];
  ASSERT_GE(text.size(), 8u) << text;
  // A stop string from the middle of the text, where it first occurs.
  std::string stop;
  std::size_t at = 0;
  for (std::size_t start = 3; start + 3 <= text.size() && stop.empty(); ++start) {
    const std::string candidate = text.substr(start, 3);
    if (text.find(candidate) == start && core::is_valid_utf8(candidate)) {
      stop = candidate;
      at = start;
    }
  }
  ASSERT_FALSE(stop.empty()) << text;
  json stopped = request;
  stopped["stop"] = stop;
  auto cut = post("/v1/completions", stopped);
  ASSERT_EQ(cut.status, 200) << cut.body;
  EXPECT_EQ(json::parse(cut.body)["choices"][0]["text"], text.substr(0, at));
  EXPECT_EQ(json::parse(cut.body)["choices"][0]["finish_reason"], "stop");
  stopped["include_stop_str_in_output"] = true;
  auto kept = post("/v1/completions", stopped);
  ASSERT_EQ(kept.status, 200) << kept.body;
  EXPECT_EQ(json::parse(kept.body)["choices"][0]["text"], text.substr(0, at + stop.size()));
}

// vLLM's stop_token_ids end the answer before the token; min_tokens keeps them from ending it early.
TEST_F(OpenAiApi, StopTokenIdsAndMinTokensReachTheDevice) {
  const json request = {{"model", "demo-s"}, {"prompt", "Hello there"}, {"max_tokens", 12}, {"temperature", 0},
                        {"logprobs", 0}};
  auto free_run = post("/v1/completions", request);
  ASSERT_EQ(free_run.status, 200) << free_run.body;
  const json free_choice = json::parse(free_run.body)["choices"][0];
  const json tokens = free_choice["logprobs"]["tokens"];
  ASSERT_EQ(tokens.size(), 12u);
  // A whole-character token from the middle of the answer that did not come before and is one
  // vocabulary entry: its id becomes the stop token, and the answer must end just before it.
  const auto whole = [](const json& piece) { return piece.get<std::string>().rfind("bytes:", 0) != 0; };
  std::size_t at = 0;
  std::int32_t stop_id = -1;
  for (std::size_t i = 1; i < tokens.size() && stop_id < 0; ++i) {
    const auto earlier = tokens.begin() + static_cast<std::ptrdiff_t>(i);
    if (!whole(tokens[i]) || std::find(tokens.begin(), earlier, tokens[i]) != earlier) continue;
    auto ids = post("/tokenize", {{"model", "demo-s"}, {"prompt", tokens[i]}, {"add_special_tokens", false}});
    ASSERT_EQ(ids.status, 200) << ids.body;
    const json found = json::parse(ids.body)["tokens"];
    if (found.size() == 1) {
      stop_id = found[0];
      at = i;
    }
  }
  ASSERT_GE(stop_id, 0) << tokens.dump();

  json stopped = request;
  stopped["stop_token_ids"] = {stop_id};
  auto cut = post("/v1/completions", stopped);
  ASSERT_EQ(cut.status, 200) << cut.body;
  const json choice = json::parse(cut.body)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_EQ(choice["logprobs"]["tokens"], json(std::vector<json>(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(at))));
  const std::string text = free_choice["text"];
  EXPECT_EQ(text.rfind(choice["text"].get<std::string>(), 0), 0u) << "a prefix of the free answer: " << cut.body;

  stopped["min_tokens"] = at + 1;
  auto later = post("/v1/completions", stopped);
  ASSERT_EQ(later.status, 200) << later.body;
  const json later_tokens = json::parse(later.body)["choices"][0]["logprobs"]["tokens"];
  ASSERT_GT(later_tokens.size(), at) << later.body;
  EXPECT_NE(later_tokens[at], tokens[at]) << "the stop token cannot come before min_tokens";

  json too_many = request;
  too_many["min_tokens"] = 13;
  auto refused = post("/v1/completions", too_many);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json::parse(refused.body)["error"]["param"], "min_tokens");
  json outside = request;
  outside["stop_token_ids"] = {1, 1000000};
  auto unknown = post("/v1/completions", outside);
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(json::parse(unknown.body)["error"]["param"], "stop_token_ids[1]");
}

// OpenAI's logit_bias reaches the sampler: +100 makes greedy decoding repeat one token, and an
// id outside the vocabulary is a 400 naming the entry.
TEST_F(OpenAiApi, LogitBiasSteersTheSampler) {
  auto ids = post("/tokenize", {{"model", "demo-s"}, {"prompt", "Hello"}, {"add_special_tokens", false}});
  ASSERT_EQ(ids.status, 200) << ids.body;
  const std::int32_t token = json::parse(ids.body)["tokens"][0];
  json request = {{"model", "demo-s"}, {"prompt", "Hello there"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 0}};
  request["logit_bias"] = {{std::to_string(token), 100}};
  auto forced = post("/v1/completions", request);
  ASSERT_EQ(forced.status, 200) << forced.body;
  const json choice = json::parse(forced.body)["choices"][0];
  EXPECT_EQ(choice["logprobs"]["tokens"], json::array({"Hello", "Hello", "Hello", "Hello"})) << forced.body;
  request["logit_bias"] = {{"1000000", 1}};
  auto refused = post("/v1/completions", request);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json::parse(refused.body)["error"]["param"], "logit_bias.1000000");
}

// Structured outputs: whatever the (random-weight) demo models would write, what they generate
// under response_format is JSON that satisfies the schema — checked by python3-jsonschema, not
// by our own grammar — for completions and streamed chat, greedy and sampled. The schemas are
// bounded (string lengths, item counts), so every answer ends before max_tokens.
TEST_F(OpenAiApi, StructuredOutputsSatisfyTheirSchemas) {
  const std::vector<json> schemas = {
      json::parse(R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
          "age": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["x", "y", 3]}, "maxItems": 3},
          "ok": {"type": "boolean"}}, "required": ["name", "age", "tags"], "additionalProperties": false})"),
      json::parse(R"({"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "number"}, "minItems": 1,
          "maxItems": 4}]})"),
      json::parse(R"({"type": "object", "properties": {"point": {"$ref": "#/$defs/point"}, "label": {"type": ["string",
          "null"], "minLength": 2, "maxLength": 6}}, "required": ["point", "label"], "$defs": {"point": {"type": "object",
          "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}}})")};
  std::vector<std::pair<json, std::string>> answers;
  for (std::size_t i = 0; i < schemas.size(); ++i) {
    const json format = {{"type", "json_schema"},
                         {"json_schema", {{"name", "case" + std::to_string(i)}, {"schema", schemas[i]}, {"strict", true}}}};
    // Greedy and sampled, two architectures (Qwen2, Qwen3).
    for (const auto& [model, seed] : {std::pair{"demo-xs", 0}, std::pair{"demo-m", 1}}) {
      json request = {{"model", model}, {"prompt", "Describe a person as JSON:"}, {"max_tokens", 400},
                      {"response_format", format}, {"temperature", seed == 0 ? 0.0 : 1.0}, {"seed", seed}};
      auto response = post("/v1/completions", request);
      ASSERT_EQ(response.status, 200) << response.body;
      const json choice = json::parse(response.body)["choices"][0];
      EXPECT_EQ(choice["finish_reason"], "stop") << choice["text"];
      answers.emplace_back(schemas[i], choice["text"]);
    }
    {
      // Streamed chat: the deltas, joined, are the JSON.
      testing::HttpConnection connection(server().port());
      connection.send_request("POST", "/v1/chat/completions",
                              json{{"model", "demo-xs"}, {"messages", {{{"role", "user"}, {"content", "JSON please"}}}},
                                   {"max_tokens", 400}, {"response_format", format}, {"temperature", 0.8}, {"seed", 5},
                                   {"stream", true}}
                                  .dump());
      ASSERT_EQ(connection.read_head(std::chrono::seconds(60)).status, 200);
      std::string text;
      std::string finish;
      std::optional<std::string> event;
      while ((event = connection.read_event(std::chrono::seconds(60))) && *event != "[DONE]") {
        const json chunk = json::parse(*event);
        const json& choice = chunk["choices"][0];
        if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
        if (choice["finish_reason"].is_string()) finish = choice["finish_reason"];
      }
      EXPECT_EQ(finish, "stop") << text;
      answers.emplace_back(schemas[i], text);
    }
  }
  const auto verdicts = validate_with_jsonschema(answers);
  for (std::size_t i = 0; i < verdicts.size(); ++i) EXPECT_EQ(verdicts[i], "ok") << answers[i].second;
}

// tool_choice forces a call: whatever the demo models would write, the answer is one call
// (finish_reason "tool_calls") to the named function, or to one of the tools for "required",
// with arguments that satisfy its parameters (python3-jsonschema); streamed as OpenAI streams it.
TEST_F(OpenAiApi, AForcedToolCallIsACallWithValidArguments) {
  const json tools = json::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
          "days": {"type": "integer"}}, "required": ["city", "days"], "additionalProperties": false}}},
      {"type": "function", "function": {"name": "now", "description": "The time",
        "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]}}}])");
  std::map<std::string, json> parameters;
  for (const auto& tool : tools) parameters[tool["function"]["name"]] = tool["function"]["parameters"];
  const json messages = json::array({{{"role", "user"}, {"content", "Weather in Oslo for 3 days?"}}});
  std::vector<std::pair<json, std::string>> arguments;
  for (const json& choice : {json{{"type", "function"}, {"function", {{"name", "get_weather"}}}}, json("required")}) {
    for (int seed : {0, 1}) {
      json request = {{"model", "demo-xs"}, {"messages", messages}, {"tools", tools}, {"tool_choice", choice},
                      {"max_tokens", 300}, {"temperature", seed == 0 ? 0.0 : 1.0}, {"seed", seed}};
      auto response = post("/v1/chat/completions", request);
      ASSERT_EQ(response.status, 200) << response.body;
      const json answer = json::parse(response.body)["choices"][0];
      EXPECT_EQ(answer["finish_reason"], "tool_calls") << answer;
      ASSERT_EQ(answer["message"]["tool_calls"].size(), 1u) << answer;
      const json& function = answer["message"]["tool_calls"][0]["function"];
      if (choice.is_object()) {
        EXPECT_EQ(function["name"], "get_weather");
      }
      ASSERT_EQ(parameters.count(function["name"]), 1u) << function;
      arguments.emplace_back(parameters[function["name"]], function["arguments"]);
    }
  }
  const auto verdicts = validate_with_jsonschema(arguments);
  for (std::size_t i = 0; i < verdicts.size(); ++i) EXPECT_EQ(verdicts[i], "ok") << arguments[i].second;

  testing::HttpConnection connection(server().port());
  connection.send_request("POST", "/v1/chat/completions",
                          json{{"model", "demo-m"}, {"messages", messages}, {"tools", tools}, {"tool_choice", "required"},
                               {"max_tokens", 300}, {"stream", true}}
                              .dump());
  ASSERT_EQ(connection.read_head(std::chrono::seconds(60)).status, 200);
  int calls = 0;
  std::string finish;
  std::optional<std::string> event;
  while ((event = connection.read_event(std::chrono::seconds(60))) && *event != "[DONE]") {
    const json chunk = json::parse(*event);
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("tool_calls")) calls += static_cast<int>(delta["tool_calls"].size());
    if (chunk["choices"][0]["finish_reason"].is_string()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(finish, "tool_calls");
}

// json_object: any object; what a response_format cannot enforce is a 400 naming the keyword.
TEST_F(OpenAiApi, StructuredOutputsRefuseWhatTheyCannotEnforce) {
  json request = {{"model", "demo-s"}, {"prompt", "Hello"}, {"max_tokens", 64}, {"temperature", 0},
                  {"response_format", {{"type", "json_object"}}}};
  auto object = post("/v1/completions", request);
  ASSERT_EQ(object.status, 200) << object.body;
  const json choice = json::parse(object.body)["choices"][0];
  const std::string text = choice["text"];
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.find_first_not_of(" \t\r\n"), text.find('{')) << "an object: " << text;
  if (choice["finish_reason"] == "stop") {
    EXPECT_TRUE(json::parse(text, nullptr, false).is_object()) << text;
  }
  request["response_format"] = {
      {"type", "json_schema"},
      {"json_schema", {{"name", "p"}, {"schema", {{"type", "object"}, {"properties", {{"age", {{"type", "integer"},
                                                                                               {"minimum", 0}}}}}}}}}};
  auto refused = post("/v1/completions", request);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json::parse(refused.body)["error"]["param"], "response_format.json_schema.schema.properties.age.minimum")
      << refused.body;
  request["response_format"] = {{"type", "json_object"}};
  request["ignore_eos"] = true;
  auto endless = post("/v1/completions", request);
  EXPECT_EQ(endless.status, 400);
  EXPECT_EQ(json::parse(endless.body)["error"]["param"], "response_format") << endless.body;
}

// vLLM's ignore_eos: with the end-of-sequence token made the likeliest by logit_bias, an answer
// ends at once; with ignore_eos it runs to max_tokens, the token being no longer a stop token.
TEST_F(OpenAiApi, IgnoreEosRunsToMaxTokens) {
  auto ids = post("/tokenize", {{"model", "demo-s"}, {"prompt", "<|im_end|>"}, {"add_special_tokens", false}});
  ASSERT_EQ(ids.status, 200) << ids.body;
  const json tokens = json::parse(ids.body)["tokens"];
  ASSERT_EQ(tokens.size(), 1u) << "<|im_end|> is one special token of the demo tokenizer";
  json request = {{"model", "demo-s"}, {"prompt", "Hello there"}, {"max_tokens", 6}, {"temperature", 0}};
  request["logit_bias"] = {{std::to_string(tokens[0].get<int>()), 100}};
  auto stops = post("/v1/completions", request);
  ASSERT_EQ(stops.status, 200) << stops.body;
  EXPECT_EQ(json::parse(stops.body)["choices"][0]["finish_reason"], "stop") << stops.body;
  EXPECT_EQ(json::parse(stops.body)["usage"]["completion_tokens"], 0) << "the stop token is not counted";
  request["ignore_eos"] = true;
  auto runs = post("/v1/completions", request);
  ASSERT_EQ(runs.status, 200) << runs.body;
  EXPECT_EQ(json::parse(runs.body)["choices"][0]["finish_reason"], "length") << runs.body;
  EXPECT_EQ(json::parse(runs.body)["usage"]["completion_tokens"], 6);
}

TEST_F(OpenAiApi, ChatTemplateKwargsAreTemplateVariables) {
  const json messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  auto ok = post("/v1/chat/completions", {{"model", "demo-xs"}, {"messages", messages}, {"max_tokens", 1},
                                          {"chat_template_kwargs", {{"enable_thinking", false}}}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  auto reserved = post("/v1/chat/completions", {{"model", "demo-xs"}, {"messages", messages},
                                                {"chat_template_kwargs", {{"messages", json::array()}}}});
  EXPECT_EQ(reserved.status, 400);
  EXPECT_EQ(json::parse(reserved.body)["error"]["param"], "chat_template_kwargs.messages");
}

// Tools go through the model's own template (the demo's is Qwen2.5's): they lengthen the prompt,
// a history with tool calls and results is accepted, and a streamed answer's content equals the
// complete one's (the tool-call scanner releases what cannot start a call).
TEST_F(OpenAiApi, ToolsReachTheTemplateAndToolTurnsAreAccepted) {
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  const json messages = json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}});
  json plain = {{"model", "demo-xs"}, {"messages", messages}, {"max_tokens", 12}, {"temperature", 0}};
  json with_tools = plain;
  with_tools["tools"] = tools;
  auto a = post("/v1/chat/completions", plain);
  auto b = post("/v1/chat/completions", with_tools);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_GT(json::parse(b.body)["usage"]["prompt_tokens"].get<int>(), json::parse(a.body)["usage"]["prompt_tokens"].get<int>() + 20)
      << "the tool's JSON is in the prompt";
  const auto answer = json::parse(b.body)["choices"][0];
  EXPECT_TRUE(answer["finish_reason"] == "length" || answer["finish_reason"] == "tool_calls" || answer["finish_reason"] == "stop");

  json streamed = with_tools;
  streamed["stream"] = true;
  testing::HttpConnection connection(server().port());
  connection.send_request("POST", "/v1/chat/completions", streamed.dump());
  ASSERT_EQ(connection.read_head(std::chrono::seconds(60)).status, 200);
  std::string content;
  std::optional<std::string> event;
  while ((event = connection.read_event(std::chrono::seconds(60))) && *event != "[DONE]") {
    const auto delta = json::parse(*event)["choices"][0]["delta"];
    if (delta.contains("content") && delta["content"].is_string()) content += delta["content"].get<std::string>();
  }
  ASSERT_EQ(event, "[DONE]");
  if (answer["message"]["content"].is_string()) {
    EXPECT_EQ(content, answer["message"]["content"].get<std::string>());
  }

  json history = with_tools;
  history["messages"] = json::array(
      {{{"role", "user"}, {"content", "Weather in Paris?"}},
       {{"role", "assistant"}, {"content", nullptr},
        {"tool_calls", json::array({{{"id", "call_1"}, {"type", "function"},
                                     {"function", {{"name", "get_weather"}, {"arguments", R"({"city": "Paris"})"}}}}})}},
       {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "21 C and sunny"}}});
  auto c = post("/v1/chat/completions", history);
  EXPECT_EQ(c.status, 200) << c.body;
  json forced = with_tools;
  forced["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
  auto refused = post("/v1/chat/completions", forced);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json::parse(refused.body)["error"]["param"], "tool_choice.function.name");
}

// What loglikelihood evaluations (lm-evaluation-harness) send: echo, max_tokens 0, logprobs.
// The prompt comes back as text and tokens, each position scored given the tokens before it:
// its most likely tokens are those a generation from that prefix reports for its first token.
TEST_F(OpenAiApi, EchoScoresThePromptAsLoglikelihoodEvaluationsAsk) {
  const std::string text = "Request 0: tell me about the sea";
  auto tokens = post("/tokenize", {{"model", "demo-s"}, {"prompt", text}, {"add_special_tokens", true}});
  ASSERT_EQ(tokens.status, 200) << tokens.body;
  const json ids = json::parse(tokens.body)["tokens"];
  ASSERT_GE(ids.size(), 4u);
  auto scored = post_admitted(server().port(), "/v1/completions", {{"model", "demo-s"}, {"prompt", ids}, {"echo", true}, {"max_tokens", 0},
                                         {"logprobs", 5}});
  ASSERT_EQ(scored.status, 200) << scored.body;
  const json body = json::parse(scored.body);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 0);
  EXPECT_EQ(body["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(choice["text"], text);
  const json& logprobs = choice["logprobs"];
  ASSERT_EQ(logprobs["tokens"].size(), ids.size()) << scored.body;
  EXPECT_TRUE(logprobs["token_logprobs"][0].is_null()) << "nothing comes before the first token";
  EXPECT_TRUE(logprobs["top_logprobs"][0].is_null());
  EXPECT_EQ(logprobs["text_offset"][0], 0);
  for (std::size_t i = 1; i < ids.size(); ++i) {
    const double logprob = logprobs["token_logprobs"][i].get<double>();
    EXPECT_LE(logprob, 0.0);
    const json& top = logprobs["top_logprobs"][i];
    ASSERT_EQ(top.size(), 5u) << i;
    // The prompt's token is at most as likely as the position's best.
    double best = -1e9;
    for (const auto& [token, value] : top.items()) best = std::max(best, value.get<double>());
    EXPECT_LE(logprob, best + 1e-5) << i;
    const json prefix(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(i));
    auto generated = post_admitted(server().port(), "/v1/completions", {{"model", "demo-s"}, {"prompt", prefix}, {"max_tokens", 1},
                                              {"temperature", 0}, {"logprobs", 5}});
    ASSERT_EQ(generated.status, 200) << generated.body;
    const json expected = json::parse(generated.body)["choices"][0]["logprobs"]["top_logprobs"][0];
    ASSERT_EQ(expected.size(), 5u);
    for (const auto& [token, value] : expected.items()) {
      ASSERT_TRUE(top.contains(token)) << "position " << i << ": " << token;
      EXPECT_NEAR(top[token].get<double>(), value.get<double>(), 1e-4) << "position " << i << ": " << token;
    }
  }

  // Streamed, the prompt comes first with its scores, then the generated tokens with theirs.
  int status = 0;
  auto connection = stream_admitted(server().port(), "/v1/completions",
                                    json{{"model", "demo-s"}, {"prompt", ids}, {"echo", true}, {"max_tokens", 3},
                                         {"temperature", 0}, {"logprobs", 1}, {"stream", true}},
                                    status);
  ASSERT_EQ(status, 200);
  std::string streamed;
  json streamed_tokens = json::array();
  std::optional<std::string> event;
  while ((event = connection->read_event(std::chrono::seconds(60))) && *event != "[DONE]") {
    const json streamed_choice = json::parse(*event)["choices"][0];
    streamed += streamed_choice["text"].get<std::string>();
    if (streamed_choice["logprobs"].is_object()) {
      for (const auto& token : streamed_choice["logprobs"]["tokens"]) streamed_tokens.push_back(token);
    }
  }
  ASSERT_EQ(event, "[DONE]");
  EXPECT_EQ(streamed.substr(0, text.size()), text);
  ASSERT_EQ(streamed_tokens.size(), ids.size() + 3);
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(streamed_tokens[i], logprobs["tokens"][i]) << i;

  // Echo without logprobs prepends the prompt to the same generated text.
  json echoed = {{"model", "demo-s"}, {"prompt", "Hello there"}, {"temperature", 0}};
  echoed["echo"] = true;
  echoed["max_tokens"] = 4;
  json plain = echoed;
  plain.erase("echo");
  auto with = post_admitted(server().port(), "/v1/completions", echoed);
  auto without = post_admitted(server().port(), "/v1/completions", plain);
  ASSERT_EQ(with.status, 200) << with.body;
  ASSERT_EQ(without.status, 200) << without.body;
  EXPECT_EQ(json::parse(with.body)["choices"][0]["text"],
            "Hello there" + json::parse(without.body)["choices"][0]["text"].get<std::string>());
}

// n choices per prompt and lists of prompts: choice p·n + j is prompt p's j-th, its own
// generation; with a seed, choice i draws from seed + i, so each is reproducible alone.
TEST_F(OpenAiApi, SeveralChoicesForSeveralPrompts) {
  const std::vector<std::string> prompts = {"Hello there", "Request 0: tell me about the sea"};
  const json request = {{"model", "demo-xs"}, {"prompt", prompts}, {"n", 2}, {"max_tokens", 6},
                        {"temperature", 1.0}, {"seed", 40}};
  auto response = post_admitted(server().port(), "/v1/completions", request);
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = json::parse(response.body);
  ASSERT_EQ(body["choices"].size(), 4u);
  std::int64_t prompt_tokens = 0;
  for (const auto& prompt : prompts) {
    auto tokens = post("/tokenize", {{"model", "demo-xs"}, {"prompt", prompt}, {"add_special_tokens", true}});
    prompt_tokens += static_cast<std::int64_t>(json::parse(tokens.body)["tokens"].size());
  }
  EXPECT_EQ(body["usage"]["prompt_tokens"], prompt_tokens) << "each prompt counted once, not once per choice";
  std::int64_t completion_tokens = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const json& choice = body["choices"][i];
    EXPECT_EQ(choice["index"], i);
    EXPECT_EQ(choice["finish_reason"], "length");
    completion_tokens += 6;
    json alone = {{"model", "demo-xs"}, {"prompt", prompts[i / 2]}, {"max_tokens", 6}, {"temperature", 1.0},
                  {"seed", 40 + static_cast<int>(i)}};
    auto single = post_admitted(server().port(), "/v1/completions", alone);
    ASSERT_EQ(single.status, 200) << single.body;
    EXPECT_EQ(json::parse(single.body)["choices"][0]["text"], choice["text"]) << "choice " << i;
  }
  EXPECT_EQ(body["usage"]["completion_tokens"], completion_tokens);
  auto again = post_admitted(server().port(), "/v1/completions", request);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body)["choices"], body["choices"]);
}

// A streamed chat with n = 2: chunks name their choice, each choice ends with its own finish
// chunk, usage and [DONE] come once after both; each choice's text is the non-streamed one's.
TEST_F(OpenAiApi, StreamedChoicesEachEndAndUsageComesOnce) {
  json request = {{"model", "demo-s"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 5},
                  {"n", 2}, {"seed", 3}, {"temperature", 1.0}};
  auto whole = post_admitted(server().port(), "/v1/chat/completions", request);
  ASSERT_EQ(whole.status, 200) << whole.body;
  const json expected = json::parse(whole.body)["choices"];
  ASSERT_EQ(expected.size(), 2u);
  request["stream"] = true;
  request["stream_options"] = {{"include_usage", true}};
  int status = 0;
  auto connection = stream_admitted(server().port(), "/v1/chat/completions", request, status);
  ASSERT_EQ(status, 200);
  std::map<int, std::string> text;
  std::map<int, int> finishes;
  int usages = 0;
  std::optional<std::string> event;
  while ((event = connection->read_event(std::chrono::seconds(60))) && *event != "[DONE]") {
    auto chunk = json::parse(*event);
    if (chunk["usage"].is_object()) {
      ++usages;
      EXPECT_TRUE(chunk["choices"].empty());
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 10);
      EXPECT_EQ(finishes.size(), 2u) << "usage comes after both choices ended";
      continue;
    }
    ASSERT_EQ(chunk["choices"].size(), 1u) << *event;
    const json& choice = chunk["choices"][0];
    const int index = choice["index"];
    EXPECT_EQ(finishes.count(index), 0u) << "nothing of a choice after its finish chunk";
    if (choice["delta"].contains("content") && choice["delta"]["content"].is_string()) {
      text[index] += choice["delta"]["content"].get<std::string>();
    }
    if (!choice["finish_reason"].is_null()) ++finishes[index];
  }
  ASSERT_EQ(event, "[DONE]");
  EXPECT_EQ(usages, 1);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(finishes[i], 1) << "choice " << i;
    EXPECT_EQ(text[i], expected[i]["message"]["content"]) << "choice " << i;
  }
}

TEST_F(OpenAiApi, TokenizeAndDetokenizeRoundTrip) {
  auto tokens = post("/tokenize", {{"model", "demo-m"}, {"prompt", "Hello there"}});
  ASSERT_EQ(tokens.status, 200);
  auto ids = json::parse(tokens.body)["tokens"];
  EXPECT_EQ(ids.size(), 2u);
  auto text = post("/detokenize", {{"model", "demo-m"}, {"tokens", ids}});
  ASSERT_EQ(text.status, 200);
  EXPECT_EQ(json::parse(text.body)["prompt"], "Hello there");
}

TEST(OpenAiApiKey, RequiredWhenConfigured) {
  ServeProcess server({"--set", "http.api_key=sekret"});
  ASSERT_NE(server.port(), 0) << server.process().output();
  EXPECT_EQ(testing::http_request(server.port(), "GET", "/v1/models").status, 401);
  EXPECT_EQ(testing::http_request(server.port(), "GET", "/v1/models", {}, {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(testing::http_request(server.port(), "GET", "/v1/models", {}, {{"Authorization", "Bearer sekret"}}).status, 200);
  EXPECT_EQ(testing::http_request(server.port(), "GET", "/health").status, 200) << "health stays open for probes";
  EXPECT_EQ(server.process().output().find("sekret"), std::string::npos) << "the key must never be logged";
}

}  // namespace
}  // namespace aegaeon
