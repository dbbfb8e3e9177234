#include "rpc/http/openai_api.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <iterator>

#include "core/utf8.hpp"

namespace aegaeon::rpc::http::openai {
namespace {

using core::ErrorCode;
using core::GenerationRequest;
using json = nlohmann::json;

core::Error invalid(std::string field, std::string message) {
  core::Error e{ErrorCode::kInvalidArgument, std::move(message), std::move(field)};
  return e;
}

const char* type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

// Reads optional fields of a JSON object with type and range checks; the first error wins.
class FieldReader {
 public:
  explicit FieldReader(const json& object) : object_(object) {}

  [[nodiscard]] const json* get(const char* name) const {
    auto it = object_.find(name);
    return (it == object_.end() || it->is_null()) ? nullptr : &*it;
  }

  std::optional<core::Error> number(const char* name, double lo, double hi, float& out) const {
    const json* v = get(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) return invalid(name, std::string("'") + name + "' must be a number, got " + type_name(*v));
    double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) {
      return invalid(name, std::string("'") + name + "' must be between " + fmt(lo) + " and " +
                               fmt(hi) + ", got " + v->dump());
    }
    out = static_cast<float>(x);
    return std::nullopt;
  }

  std::optional<core::Error> integer(const char* name, int64_t lo, int64_t hi,
                                     std::optional<int64_t>& out) const {
    const json* v = get(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) {
      return invalid(name, std::string("'") + name + "' must be an integer, got " + v->dump());
    }
    int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                    ? INT64_MAX
                    : v->get<int64_t>();
    if (x < lo || x > hi) {
      return invalid(name, std::string("'") + name + "' must be between " + std::to_string(lo) +
                               " and " + std::to_string(hi) + ", got " + v->dump());
    }
    out = x;
    return std::nullopt;
  }

  std::optional<core::Error> boolean(const char* name, bool& out) const {
    const json* v = get(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) return invalid(name, std::string("'") + name + "' must be a boolean, got " + type_name(*v));
    out = v->get<bool>();
    return std::nullopt;
  }

 private:
  static std::string fmt(double x) {
    std::string s = std::to_string(x);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  const json& object_;
};

// An assistant message's `tool_calls`: [{"id", "type": "function", "function": {"name", "arguments"}}].
core::Result<void> parse_tool_calls(const json& message, const std::string& field, core::ChatTurn& turn) {
  auto calls = message.find("tool_calls");
  if (calls == message.end() || calls->is_null()) return core::ok();
  if (!calls->is_array()) return invalid(field + ".tool_calls", "'" + field + ".tool_calls' must be an array");
  for (std::size_t i = 0; i < calls->size(); ++i) {
    const json& call = (*calls)[i];
    const std::string at = field + ".tool_calls[" + std::to_string(i) + "]";
    if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) {
      return invalid(at, "'" + at + "' must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
    }
    const json& function = call["function"];
    if (!function.contains("name") || !function["name"].is_string()) {
      return invalid(at + ".function.name", "'" + at + ".function.name' must be a string");
    }
    if (!function.contains("arguments") || !function["arguments"].is_string()) {
      return invalid(at + ".function.arguments", "'" + at + ".function.arguments' must be a string of JSON");
    }
    turn.tool_calls.push_back({call.value("id", ""), function["name"].get<std::string>(),
                               function["arguments"].get<std::string>()});
  }
  return core::ok();
}

// Chat content is a string or an array of {"type":"text","text":...} parts.
core::Result<std::string> message_content(const json& content, const std::string& field) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    return invalid(field, "'" + field + "' must be a string or an array of text parts");
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    std::string part_field = field + "[" + std::to_string(i) + "]";
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return invalid(part_field, "'" + part_field +
                                     "' must be {\"type\": \"text\", \"text\": ...}; only text "
                                     "content is supported");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

core::Result<void> parse_messages(const json& body, GenerationRequest& request) {
  auto it = body.find("messages");
  if (it == body.end()) return invalid("messages", "'messages' is required");
  if (!it->is_array() || it->empty()) {
    return invalid("messages", "'messages' must be a non-empty array");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& message = (*it)[i];
    std::string field = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) return invalid(field, "'" + field + "' must be an object");
    auto role = message.find("role");
    if (role == message.end() || !role->is_string()) {
      return invalid(field + ".role", "'" + field + ".role' must be a string");
    }
    std::string role_name = role->get<std::string>();
    if (role_name != "system" && role_name != "user" && role_name != "assistant" &&
        role_name != "developer" && role_name != "tool") {
      return invalid(field + ".role", "'" + field + ".role' must be system, developer, user, assistant or tool, got '" +
                                          role_name + "'");
    }
    if (role_name == "developer") role_name = "system";  // OpenAI's newer name for system
    core::ChatTurn turn{role_name, "", {}, ""};
    if (role_name == "assistant") AEGAEON_TRY(parse_tool_calls(message, field, turn));
    if (role_name == "tool") {
      auto id = message.find("tool_call_id");
      if (id == message.end() || !id->is_string()) {
        return invalid(field + ".tool_call_id", "'" + field + ".tool_call_id' is required for a tool message");
      }
      turn.tool_call_id = id->get<std::string>();
    }
    auto content = message.find("content");
    if (content == message.end() || content->is_null()) {
      // An assistant turn that only calls tools has no content.
      if (turn.tool_calls.empty()) return invalid(field + ".content", "'" + field + ".content' is required");
    } else {
      auto text = message_content(*content, field + ".content");
      if (!text.ok()) return text.error();
      turn.content = std::move(*text);
    }
    request.messages.push_back(std::move(turn));
  }
  return core::ok();
}

// OpenAI's `tools`: [{"type": "function", "function": {"name", "description"?, "parameters"?}}],
// kept as JSON for the chat template; `tool_choice` "auto" (or absent) lets the model decide,
// "none" leaves the tools out, "required" or {"type": "function", "function": {"name"}} forces a
// call (the proxy builds the constrained output in the model's call format).
core::Result<void> parse_tools(const json& body, GenerationRequest& request) {
  auto tools = body.find("tools");
  if (tools == body.end() || tools->is_null()) {
    auto choice = body.find("tool_choice");
    if (choice != body.end() && !choice->is_null() && *choice != "none" && *choice != "auto") {
      return invalid("tool_choice", "a forced tool call needs 'tools'");
    }
    return core::ok();
  }
  if (!tools->is_array()) return invalid("tools", "'tools' must be an array");
  for (std::size_t i = 0; i < tools->size(); ++i) {
    const json& tool = (*tools)[i];
    const std::string field = "tools[" + std::to_string(i) + "]";
    if (!tool.is_object() || tool.value("type", "") != "function" || !tool.contains("function") ||
        !tool["function"].is_object()) {
      return invalid(field, "'" + field + "' must be {\"type\": \"function\", \"function\": {...}}");
    }
    const json& function = tool["function"];
    if (!function.contains("name") || !function["name"].is_string() || function["name"].get<std::string>().empty()) {
      return invalid(field + ".function.name", "'" + field + ".function.name' must be a non-empty string");
    }
    if (function.contains("parameters") && !function["parameters"].is_object() && !function["parameters"].is_null()) {
      return invalid(field + ".function.parameters", "'" + field + ".function.parameters' must be a JSON Schema object");
    }
  }
  if (auto choice = body.find("tool_choice"); choice != body.end() && !choice->is_null()) {
    if (*choice == "none") return core::ok();  // the model is not to call tools: leave them out
    if (*choice == "required") {
      request.forced_tool = "";
    } else if (choice->is_object()) {
      const json* function = choice->contains("function") ? &(*choice)["function"] : nullptr;
      if (choice->value("type", "") != "function" || function == nullptr || !function->is_object() ||
          !function->contains("name") || !(*function)["name"].is_string()) {
        return invalid("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": "
                                      "\"function\", \"function\": {\"name\": ...}}");
      }
      const std::string name = (*function)["name"].get<std::string>();
      const bool listed = std::any_of(tools->begin(), tools->end(),
                                      [&](const json& tool) { return tool["function"].value("name", "") == name; });
      if (!listed) return invalid("tool_choice.function.name", "'" + name + "' is not among 'tools'");
      request.forced_tool = name;
    } else if (*choice != "auto") {
      return invalid("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": "
                                    "\"function\", \"function\": {\"name\": ...}}");
    }
    if (request.forced_tool && tools->empty()) return invalid("tool_choice", "a forced tool call needs 'tools'");
  }
  if (auto parallel = body.find("parallel_tool_calls"); parallel != body.end() && !parallel->is_null()) {
    if (!parallel->is_boolean()) return invalid("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    request.parallel_tool_calls = parallel->get<bool>();
  }
  if (!tools->empty()) request.tools = tools->dump();
  return core::ok();
}

// OpenAI's response_format: {"type": "text"}, {"type": "json_object"} or {"type": "json_schema",
// "json_schema": {"name", "description"?, "schema", "strict"?}}. JSON output is enforced as it is
// generated (strict or not: text/constrained_decoding.hpp), so the schema is kept as written —
// `body`, the request's text, is read again in order, since generation follows the order of
// its properties. The proxy compiles it and refuses what it cannot enforce.
core::Result<void> parse_response_format(const json& root, std::string_view body, GenerationRequest& request) {
  auto it = root.find("response_format");
  if (it == root.end() || it->is_null()) return core::ok();
  const auto only = [](const json& object, std::initializer_list<std::string_view> keys,
                       const std::string& field) -> core::Result<void> {
    for (auto item = object.begin(); item != object.end(); ++item) {
      if (std::find(keys.begin(), keys.end(), item.key()) == keys.end()) {
        return invalid(field + "." + item.key(), "unknown field '" + field + "." + item.key() + "'");
      }
    }
    return core::ok();
  };
  if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
    return invalid("response_format", "'response_format' must be an object with a 'type'");
  }
  const std::string type = (*it)["type"].get<std::string>();
  if (type == "text") return only(*it, {"type"}, "response_format");
  if (!request.tools.empty()) {
    return invalid("response_format", "'response_format' with 'tools' is not supported: the output is held to "
                                      "JSON, so the model could not call a tool");
  }
  if (type == "json_object") {
    AEGAEON_TRY(only(*it, {"type"}, "response_format"));
    request.sampling.structured.json_schema = R"({"type":"object"})";
    return core::ok();
  }
  if (type != "json_schema") {
    return invalid("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
  }
  AEGAEON_TRY(only(*it, {"type", "json_schema"}, "response_format"));
  const std::string field = "response_format.json_schema";
  auto spec = it->find("json_schema");
  if (spec == it->end() || !spec->is_object()) return invalid(field, "'" + field + "' must be an object");
  AEGAEON_TRY(only(*spec, {"name", "description", "schema", "strict"}, field));
  const auto name = spec->find("name");
  const std::string name_text = name != spec->end() && name->is_string() ? name->get<std::string>() : "";
  const auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-'; };
  if (name_text.empty() || name_text.size() > 64 || !std::all_of(name_text.begin(), name_text.end(), name_char)) {
    return invalid(field + ".name", "'" + field + ".name' must be 1 to 64 letters, digits, '_' or '-'");
  }
  if (auto strict = spec->find("strict"); strict != spec->end() && !strict->is_null() && !strict->is_boolean()) {
    return invalid(field + ".strict", "'" + field + ".strict' must be a boolean");
  }
  auto schema = spec->find("schema");
  if (schema == spec->end() || !(schema->is_object() || schema->is_boolean())) {
    return invalid(field + ".schema", "'" + field + ".schema' must be a JSON Schema (an object)");
  }
  const auto ordered = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  request.sampling.structured.json_schema = ordered["response_format"]["json_schema"]["schema"].dump();
  return core::ok();
}

// vLLM's `chat_template_kwargs`: extra variables for the model's chat template (e.g. Qwen3's
// {"enable_thinking": false}); the ones the server sets itself cannot be replaced.
core::Result<void> parse_chat_template_kwargs(const json& body, GenerationRequest& request) {
  auto it = body.find("chat_template_kwargs");
  if (it == body.end() || it->is_null()) return core::ok();
  if (!it->is_object()) return invalid("chat_template_kwargs", "'chat_template_kwargs' must be an object");
  for (const char* reserved : {"messages", "add_generation_prompt", "bos_token", "eos_token", "tools"}) {
    if (it->contains(reserved)) {
      const std::string field = std::string("chat_template_kwargs.") + reserved;
      return invalid(field, "'" + field + "' is set by the server and cannot be passed");
    }
  }
  request.chat_template_kwargs = it->dump();
  return core::ok();
}

core::Result<void> parse_stop(const json& body, GenerationRequest& request) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return core::ok();
  if (it->is_string()) {
    if (!it->get<std::string>().empty()) request.stop.push_back(it->get<std::string>());
    return core::ok();
  }
  if (!it->is_array() || it->size() > 4) {
    return invalid("stop", "'stop' must be a string or an array of at most 4 strings");
  }
  for (const auto& s : *it) {
    if (!s.is_string()) return invalid("stop", "'stop' must contain only strings");
    if (!s.get<std::string>().empty()) request.stop.push_back(s.get<std::string>());
  }
  return core::ok();
}

// OpenAI's logit_bias: {"token id": bias in [-100, 100]}, at most 1024 entries (the model's
// vocabulary is checked by the proxy).
core::Result<void> parse_logit_bias(const json& body, core::SamplingParams& sampling) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return core::ok();
  constexpr std::size_t kMaxEntries = 1024;
  if (!it->is_object() || it->size() > kMaxEntries) {
    return invalid("logit_bias", "'logit_bias' must be an object of at most 1024 token ids (as strings) to biases");
  }
  for (auto entry = it->begin(); entry != it->end(); ++entry) {
    const std::string& key = entry.key();
    const std::string field = "logit_bias." + key;
    char* end = nullptr;
    errno = 0;
    const long long id = key.empty() || key.size() > 10 || !std::isdigit(static_cast<unsigned char>(key[0]))
                             ? -1
                             : std::strtoll(key.c_str(), &end, 10);
    if (id < 0 || id > INT32_MAX || errno != 0 || end == nullptr || *end != '\0') {
      return invalid(field, "a logit_bias key must be a token id, a non-negative integer as a string");
    }
    if (!entry.value().is_number() || entry.value().get<double>() < -100 || entry.value().get<double>() > 100) {
      return invalid(field, "a bias must be a number between -100 and 100");
    }
    sampling.logit_bias.emplace_back(static_cast<std::int32_t>(id), entry.value().get<float>());
  }
  return core::ok();
}

// vLLM's stop_token_ids: at most 64 token ids (the model's vocabulary is checked by the proxy).
core::Result<void> parse_stop_token_ids(const json& body, GenerationRequest& request) {
  auto it = body.find("stop_token_ids");
  if (it == body.end() || it->is_null()) return core::ok();
  constexpr std::size_t kMaxStopTokenIds = 64;
  if (!it->is_array() || it->size() > kMaxStopTokenIds) {
    return invalid("stop_token_ids", "'stop_token_ids' must be an array of at most 64 token ids");
  }
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& id = (*it)[i];
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > INT32_MAX) {
      return invalid("stop_token_ids[" + std::to_string(i) + "]", "a token id must be a non-negative integer");
    }
    request.stop_token_ids.push_back(id.get<std::int32_t>());
  }
  return core::ok();
}

}  // namespace

// Fields of the OpenAI schemas this server does not honour are refused, so a client can tell
// that an option it sent would do nothing; one is let through only with a value that asks for
// nothing (null, an empty list, the default), since some clients send those on every request.
struct Unhonoured {
  const char* name;
  bool (*asks_nothing)(const json& value);
};
bool is_false(const json& v) { return v.is_boolean() && !v.get<bool>(); }
bool is_empty(const json& v) { return (v.is_array() || v.is_object()) && v.empty(); }
constexpr Unhonoured kUnhonoured[] = {
    {"tools", is_empty},
    {"functions", is_empty},
    {"tool_choice", [](const json& v) { return v == "none" || v == "auto"; }},
    {"function_call", [](const json& v) { return v == "none" || v == "auto"; }},
    {"parallel_tool_calls", [](const json& v) { return v.is_boolean(); }},  // only about tools
    {"best_of", [](const json& v) { return v == 1; }},
    {"suffix", [](const json& v) { return v == ""; }},
    {"store", is_false},
    {"metadata", is_empty},
    {"service_tier", [](const json& v) { return v == "auto" || v == "default"; }},
    {"modalities", [](const json& v) { return v == json::array({"text"}); }},
    {"audio", [](const json&) { return false; }},        // audio output
    {"prediction", [](const json&) { return false; }},   // predicted outputs
    {"reasoning_effort", [](const json&) { return false; }},
    {"web_search_options", [](const json&) { return false; }},
};

// 400 naming the first field of `root` that is neither read by the parser (`honoured`) nor
// asking for nothing.
std::optional<core::Error> refuse_unhonoured(const json& root, const std::vector<std::string_view>& honoured) {
  for (auto item = root.begin(); item != root.end(); ++item) {
    const std::string& key = item.key();
    const json& value = item.value();
    if (value.is_null() || std::find(honoured.begin(), honoured.end(), key) != honoured.end()) continue;
    const auto* known = std::find_if(std::begin(kUnhonoured), std::end(kUnhonoured),
                                     [&](const Unhonoured& u) { return key == u.name; });
    if (known == std::end(kUnhonoured)) {
      return invalid(key, "unknown field '" + key + "' (misspelt, or not part of this API)");
    }
    if (!known->asks_nothing(value)) {
      return invalid(key, "'" + key + "' is not supported by this server (a request may carry it only with a "
                                      "value that asks for nothing, e.g. null)");
    }
  }
  return std::nullopt;
}

// /v1/completions' prompt: a string, token ids (what evaluation harnesses send), or a list of
// either.
core::Result<void> parse_prompts(const json& root, GenerationRequest& request) {
  auto prompt = root.find("prompt");
  if (prompt == root.end()) return invalid("prompt", "'prompt' is required");
  const auto is_token_id = [](const json& id) {
    return id.is_number_integer() && id.get<std::int64_t>() >= 0 && id.get<std::int64_t>() <= INT32_MAX;
  };
  const auto read = [&](const json& one, const std::string& field) -> core::Result<void> {
    core::CompletionPrompt out;
    if (one.is_string()) {
      out.text = one.get<std::string>();
    } else if (one.is_array() && !one.empty() && std::all_of(one.begin(), one.end(), is_token_id)) {
      for (const auto& id : one) out.token_ids.push_back(id.get<std::int32_t>());
    } else {
      return invalid(field, "'" + field + "' must be a string or a non-empty list of token ids");
    }
    request.prompts.push_back(std::move(out));
    return core::ok();
  };
  const bool one_prompt = prompt->is_string() || (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number());
  if (one_prompt) return read(*prompt, "prompt");
  if (!prompt->is_array() || prompt->empty()) {
    return invalid("prompt", "'prompt' must be a string, a list of token ids, or a non-empty list of those");
  }
  if (prompt->size() > kMaxChoices) {
    return invalid("prompt", "'prompt' lists " + std::to_string(prompt->size()) + " prompts; at most " +
                                 std::to_string(kMaxChoices) + " per request");
  }
  for (std::size_t i = 0; i < prompt->size(); ++i) AEGAEON_TRY(read((*prompt)[i], "prompt[" + std::to_string(i) + "]"));
  return core::ok();
}

core::Result<GenerationRequest> parse_generation_request(std::string_view body,
                                                         GenerationRequest::Api api,
                                                         std::int32_t max_tokens_limit) {
  json root = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return invalid("", "the request body is not valid JSON");
  if (!root.is_object()) return invalid("", "the request body must be a JSON object");

  GenerationRequest request;
  request.api = api;
  auto model = root.find("model");
  if (model == root.end() || !model->is_string() || model->get<std::string>().empty()) {
    return invalid("model", "'model' is required and must be a non-empty string");
  }
  request.model = model->get<std::string>();

  if (api == GenerationRequest::Api::kChat) {
    AEGAEON_TRY(parse_messages(root, request));
    AEGAEON_TRY(parse_chat_template_kwargs(root, request));
    AEGAEON_TRY(parse_tools(root, request));
  } else {
    AEGAEON_TRY(parse_prompts(root, request));
  }

  const bool chat = api == GenerationRequest::Api::kChat;
  std::vector<std::string_view> honoured{"model", "temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty",
                                         "n", "top_k", "seed", "max_tokens", "max_completion_tokens", "top_logprobs",
                                         "logprobs", "stream", "stream_options", "echo", "stop", "user",
                                         "skip_special_tokens", "include_stop_str_in_output", "stop_token_ids",
                                         "ignore_eos", "min_tokens", "logit_bias",
                                         "repetition_penalty", "response_format"};
  if (chat) {
    honoured.insert(honoured.end(), {"messages", "chat_template_kwargs", "tools", "tool_choice", "parallel_tool_calls"});
  } else {
    honoured.push_back("prompt");
  }
  if (auto refused = refuse_unhonoured(root, honoured)) return *refused;
  FieldReader fields(root);
  auto& s = request.sampling;
  const std::int64_t max_tokens_cap = max_tokens_limit > 0 ? max_tokens_limit : 1 << 24;
  std::optional<int64_t> n, top_k, seed, max_tokens, max_completion_tokens, logprobs_count,
      top_logprobs, min_tokens;
  for (auto e : {fields.number("temperature", 0, 2, s.temperature), fields.number("top_p", 0, 1, s.top_p),
                 fields.number("min_p", 0, 1, s.min_p), fields.number("repetition_penalty", 0, 2, s.repetition_penalty),
                 fields.number("presence_penalty", -2, 2, s.presence_penalty),
                 fields.number("frequency_penalty", -2, 2, s.frequency_penalty),
                 fields.integer("n", 1, kMaxChoices, n), fields.integer("top_k", -1, 1 << 20, top_k),
                 fields.integer("seed", INT64_MIN, INT64_MAX, seed),
                 fields.integer("max_tokens", chat ? 1 : 0, max_tokens_cap, max_tokens),
                 fields.integer("max_completion_tokens", 1, max_tokens_cap, max_completion_tokens),
                 fields.integer("top_logprobs", 0, 20, top_logprobs),
                 fields.integer("min_tokens", 0, max_tokens_cap, min_tokens),
                 fields.boolean("ignore_eos", request.ignore_eos),
                 fields.boolean("stream", request.stream), fields.boolean("echo", request.echo),
                 fields.boolean("skip_special_tokens", request.skip_special_tokens),
                 fields.boolean("include_stop_str_in_output", request.include_stop_str_in_output)}) {
    if (e) return *e;
  }
  if (fields.get("top_p") && s.top_p <= 0) return invalid("top_p", "'top_p' must be greater than 0");
  if (fields.get("repetition_penalty") && s.repetition_penalty <= 0) {
    return invalid("repetition_penalty", "'repetition_penalty' must be greater than 0");
  }
  if (n) request.n = static_cast<std::int32_t>(*n);
  if (request.n > 1 && request.n * static_cast<std::int64_t>(std::max<std::size_t>(request.prompts.size(), 1)) > kMaxChoices) {
    return invalid("n", "n × the prompts asks for " + std::to_string(request.n * request.prompts.size()) +
                            " choices; at most " + std::to_string(kMaxChoices) + " per request");
  }
  if (top_k) s.top_k = static_cast<int32_t>(*top_k < 0 ? 0 : *top_k);
  if (seed) s.seed = static_cast<uint64_t>(*seed);
  if (max_completion_tokens) max_tokens = max_completion_tokens;  // the newer name wins
  if (max_tokens) request.max_tokens = static_cast<int32_t>(*max_tokens);
  if (min_tokens) request.min_tokens = static_cast<int32_t>(*min_tokens);
  if (request.echo && chat) return invalid("echo", "'echo' is a /v1/completions parameter");
  if (request.max_tokens == 0 && !request.echo) {
    return invalid("max_tokens", "'max_tokens' must be at least 1 (0 only with 'echo': true, to score the prompt)");
  }

  // Chat: logprobs is a boolean and top_logprobs (0..20) the alternatives per token. Completions
  // (the legacy API): logprobs is the number of alternatives (0..5) and turns logprobs on.
  if (api == GenerationRequest::Api::kChat) {
    if (auto e = fields.boolean("logprobs", request.logprobs)) return *e;
    if (top_logprobs && *top_logprobs > 0 && !request.logprobs) {
      return invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    }
    s.top_logprobs = static_cast<std::int32_t>(top_logprobs.value_or(0));
  } else {
    if (top_logprobs) {
      return invalid("top_logprobs", "'top_logprobs' is a chat parameter; on /v1/completions ask for "
                                     "alternatives with 'logprobs': N");
    }
    if (auto e = fields.integer("logprobs", 0, 5, logprobs_count)) return *e;
    request.logprobs = logprobs_count.has_value();
    s.top_logprobs = static_cast<std::int32_t>(logprobs_count.value_or(0));
    // Echo returns the prompt, so its tokens are scored as well (what loglikelihood evaluations read).
    if (request.echo && request.logprobs) s.prompt_logprobs = s.top_logprobs;
  }

  AEGAEON_TRY(parse_stop(root, request));
  AEGAEON_TRY(parse_stop_token_ids(root, request));
  AEGAEON_TRY(parse_logit_bias(root, request.sampling));
  AEGAEON_TRY(parse_response_format(root, body, request));
  if (const json* options = fields.get("stream_options")) {
    if (!options->is_object()) return invalid("stream_options", "'stream_options' must be an object");
    if (!request.stream) return invalid("stream_options", "'stream_options' is only allowed with stream: true");
    FieldReader option_fields(*options);
    if (auto e = option_fields.boolean("include_usage", request.include_usage)) {
      e->field = "stream_options.include_usage";
      return *e;
    }
  }
  if (const json* user = fields.get("user"); user && user->is_string()) request.user = user->get<std::string>();
  return request;
}

HttpResponse error_response(const core::Error& error, std::optional<int> retry_after_s) {
  int status = 500;
  const char* type = "server_error";
  switch (error.code) {
    case ErrorCode::kInvalidArgument: status = 400; type = "invalid_request_error"; break;
    case ErrorCode::kNotFound: status = 404; type = "invalid_request_error"; break;
    case ErrorCode::kOutOfRange: status = 400; type = "invalid_request_error"; break;
    case ErrorCode::kResourceExhausted: status = 429; type = "rate_limit_exceeded"; break;
    case ErrorCode::kFailedPrecondition: status = 409; type = "invalid_request_error"; break;
    case ErrorCode::kUnauthenticated: status = 401; type = "authentication_error"; break;
    case ErrorCode::kUnavailable: status = 503; type = "server_error"; break;
    default: break;
  }
  auto response = HttpResponse::error(status, error.message, type, error.field);
  if (error.code == ErrorCode::kNotFound) {
    auto body = json::parse(response.body);
    body["error"]["code"] = "model_not_found";
    response.body = body.dump();
  }
  if (retry_after_s) response.headers.emplace_back("Retry-After", std::to_string(*retry_after_s));
  return response;
}

ResponseFormatter::ResponseFormatter(GenerationRequest::Api api, std::string model,
                                     std::uint64_t request_id, std::int64_t created_s,
                                     bool logprobs, std::int32_t index)
    : api_(api),
      model_(std::move(model)),
      id_((api == GenerationRequest::Api::kChat ? "chatcmpl-" : "cmpl-") + std::to_string(request_id)),
      created_s_(created_s),
      logprobs_(logprobs),
      index_(index) {}

namespace {

// A token's text in logprobs: its bytes when they are UTF-8, else OpenAI's "bytes:\xe2\x80"
// spelling of a token that holds part of a character.
std::string logprob_token(const std::string& bytes) {
  if (core::is_valid_utf8(bytes)) return bytes;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "bytes:";
  for (unsigned char c : bytes) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
  }
  return out;
}

// OpenAI's logprob entry of one token: the token, its logprob and its bytes.
json chat_token_logprob(const std::string& token_bytes, std::optional<float> logprob) {
  json bytes = json::array();
  for (unsigned char c : token_bytes) bytes.push_back(c);
  return {{"token", logprob_token(token_bytes)}, {"logprob", logprob ? json(*logprob) : json(nullptr)}, {"bytes", bytes}};
}

json chat_logprobs(const std::vector<TokenOut>& tokens) {
  json content = json::array();
  for (const auto& t : tokens) {
    json entry = chat_token_logprob(t.token, t.logprob);
    entry["top_logprobs"] = json::array();
    for (const auto& alt : t.top) entry["top_logprobs"].push_back(chat_token_logprob(alt.token, alt.logprob));
    content.push_back(std::move(entry));
  }
  return {{"content", content}};
}

// The legacy completions format. `text_offset` is where each token's text starts in the
// generated text, in characters (code points), counted from `first_offset` (the characters
// already sent in earlier chunks).
json completion_logprobs(const std::vector<TokenOut>& tokens, std::int64_t first_offset) {
  json text_tokens = json::array();
  json token_logprobs = json::array();
  json top = json::array();
  json offsets = json::array();
  std::int64_t offset = first_offset;
  for (const auto& t : tokens) {
    text_tokens.push_back(logprob_token(t.token));
    token_logprobs.push_back(t.logprob ? json(*t.logprob) : json(nullptr));
    offsets.push_back(offset);
    offset += core::utf8_length(t.text);
    // {token: logprob} of the alternatives, or null when none were asked for.
    json alternatives = t.top.empty() ? json(nullptr) : json::object();
    for (const auto& alt : t.top) alternatives[logprob_token(alt.token)] = alt.logprob;
    top.push_back(std::move(alternatives));
  }
  return {{"tokens", text_tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

std::string join_text(const std::vector<TokenOut>& tokens) {
  std::string text;
  for (const auto& t : tokens) text += t.text;
  return text;
}

json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

}  // namespace

std::string ResponseFormatter::chunk(const std::vector<TokenOut>& tokens) {
  return content_chunk(join_text(tokens), tokens);
}

std::string ResponseFormatter::text_chunk(const std::string& text) { return content_chunk(text, {}); }

std::string ResponseFormatter::content_chunk(const std::string& text, const std::vector<TokenOut>& tokens) {
  bool chat = api_ == GenerationRequest::Api::kChat;
  json choice = {{"index", index_}, {"finish_reason", nullptr}};
  if (chat) {
    json delta = {{"content", text}};
    if (!sent_role_) delta["role"] = "assistant";
    sent_role_ = true;
    choice["delta"] = delta;
    choice["logprobs"] = logprobs_ ? chat_logprobs(tokens) : json(nullptr);
  } else {
    choice["text"] = text;
    choice["logprobs"] = logprobs_ ? completion_logprobs(tokens, sent_characters_) : json(nullptr);
    sent_characters_ += static_cast<std::int64_t>(core::utf8_length(text));
  }
  json out = {{"id", id_}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_s_}, {"model", model_}, {"choices", json::array({choice})}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {
json tool_calls_json(const std::vector<core::ToolCall>& calls, bool with_index) {
  json out = json::array();
  for (std::size_t i = 0; i < calls.size(); ++i) {
    json call = {{"id", calls[i].id},
                 {"type", "function"},
                 {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) call["index"] = i;
    out.push_back(std::move(call));
  }
  return out;
}
}  // namespace

std::string ResponseFormatter::tool_calls_chunk(const std::vector<core::ToolCall>& calls) {
  json delta = {{"tool_calls", tool_calls_json(calls, /*with_index=*/true)}};
  if (!sent_role_) delta["role"] = "assistant";
  sent_role_ = true;
  json choice = {{"index", index_}, {"delta", delta}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
  json out = {{"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_s_}, {"model", model_},
              {"choices", json::array({choice})}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ResponseFormatter::finish_chunk(core::FinishReason reason, bool tool_calls) {
  bool chat = api_ == GenerationRequest::Api::kChat;
  json choice = {{"index", index_}, {"finish_reason", tool_calls ? "tool_calls" : core::to_string(reason)}, {"logprobs", nullptr}};
  if (chat) {
    choice["delta"] = sent_role_ ? json::object() : json{{"role", "assistant"}, {"content", ""}};
    sent_role_ = true;
  } else {
    choice["text"] = "";
  }
  json out = {{"id", id_}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_s_}, {"model", model_}, {"choices", json::array({choice})}};
  return out.dump();
}

std::string ResponseFormatter::usage_chunk(const Usage& usage) const {
  bool chat = api_ == GenerationRequest::Api::kChat;
  json out = {{"id", id_}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_s_}, {"model", model_}, {"choices", json::array()},
              {"usage", usage_json(usage)}};
  return out.dump();
}

std::string ResponseFormatter::full_response(const std::vector<Choice>& choices, const Usage& usage) const {
  bool chat = api_ == GenerationRequest::Api::kChat;
  json out_choices = json::array();
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const Choice& c = choices[i];
    json choice = {{"index", i}, {"finish_reason", c.tool_calls.empty() ? core::to_string(c.reason) : "tool_calls"}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
      if (!c.tool_calls.empty()) {
        if (c.text.empty()) choice["message"]["content"] = nullptr;
        choice["message"]["tool_calls"] = tool_calls_json(c.tool_calls, /*with_index=*/false);
      }
      choice["logprobs"] = logprobs_ ? chat_logprobs(c.tokens) : json(nullptr);
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = logprobs_ ? completion_logprobs(c.tokens, 0) : json(nullptr);
    }
    out_choices.push_back(std::move(choice));
  }
  json out = {{"id", id_}, {"object", chat ? "chat.completion" : "text_completion"},
              {"created", created_s_}, {"model", model_}, {"choices", std::move(out_choices)},
              {"usage", usage_json(usage)}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace aegaeon::rpc::http::openai
