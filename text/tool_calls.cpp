#include "text/tool_calls.hpp"

#include <nlohmann/json.hpp>

#include "text/json_grammar.hpp"

namespace aegaeon::text {
namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

// Length of the JSON object `text` starts with (through its closing brace), or 0 when it does
// not start with one or the object does not end.
std::size_t json_object_end(std::string_view text) {
  if (text.empty() || text.front() != '{') return 0;
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return 0;
}

// {"name": "...", "arguments" (or Llama's "parameters"): {...} or "..."} → a call; false when
// it is not one.
bool parse_call(std::string_view body, ParsedToolCall& call) {
  const auto j = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) return false;
  call.name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  if (args == j.end() || args->is_null()) {
    call.arguments = "{}";
  } else if (args->is_object()) {
    call.arguments = args->dump();
  } else if (args->is_string()) {  // already JSON text: must be an object
    const auto inner = nlohmann::ordered_json::parse(args->get<std::string>(), nullptr, false);
    if (inner.is_discarded() || !inner.is_object()) return false;
    call.arguments = inner.dump();
  } else {
    return false;
  }
  return true;
}

// Points the local references of `schema` ("#", "#/$defs/…", "#/definitions/…") at the same
// places once `schema` itself sits at `base` (a JSON pointer such as "#/$defs/tool0"). Values
// (const, enum, default, examples) are data, not schemas: left as they are.
void rebase_references(nlohmann::ordered_json& schema, const std::string& base) {
  if (schema.is_array()) {
    for (auto& item : schema) rebase_references(item, base);
    return;
  }
  if (!schema.is_object()) return;
  for (auto it = schema.begin(); it != schema.end(); ++it) {
    const std::string& key = it.key();
    if (key == "const" || key == "enum" || key == "default" || key == "examples") continue;
    if (key == "$ref" && it->is_string()) {
      const std::string ref = it->get<std::string>();
      if (ref == "#" || ref.rfind("#/", 0) == 0) *it = base + ref.substr(1);
      continue;
    }
    rebase_references(*it, base);
  }
}

}  // namespace

core::Result<core::StructuredOutput> forced_tool_call(ToolCallFormat format, std::string_view tools,
                                                      std::string_view function) {
  const auto refuse = [](std::string field, std::string message) {
    core::Error e = core::error(core::ErrorCode::kInvalidArgument, std::move(message));
    e.field = std::move(field);
    return e;
  };
  if (format == ToolCallFormat::kNone) {
    return refuse("tool_choice", "this model writes tool calls in a format aegaeon cannot force");
  }
  const auto list = nlohmann::ordered_json::parse(tools, nullptr, /*allow_exceptions=*/false);
  if (list.is_discarded() || !list.is_array() || list.empty()) return refuse("tool_choice", "'tool_choice' needs 'tools'");
  // Hermes: {"name", "arguments"} between tags on lines of their own, as the templates teach;
  // Llama 3: the whole answer is {"name", "parameters"}.
  const char* arguments_key = format == ToolCallFormat::kHermes ? "arguments" : "parameters";
  nlohmann::ordered_json calls = nlohmann::ordered_json::array();
  nlohmann::ordered_json definitions = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& f = list[i]["function"];
    const std::string name = f.value("name", "");
    if (!function.empty() && name != function) continue;
    const std::string field = "tools[" + std::to_string(i) + "].function.parameters";
    nlohmann::ordered_json parameters = f.contains("parameters") && !f["parameters"].is_null()
                                            ? f["parameters"]
                                            : nlohmann::ordered_json{{"type", "object"}};
    // Checked on its own, so an error names the tool. In the call's schema the parameters sit
    // under $defs/tool<i>, their references moved there with them.
    AEGAEON_TRY(JsonGrammar::compile(parameters.dump(), field));
    const std::string key = "tool" + std::to_string(i);
    rebase_references(parameters, "#/$defs/" + key);
    definitions[key] = std::move(parameters);
    calls.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", name}}}, {arguments_key, {{"$ref", "#/$defs/" + key}}}}},
                     {"required", {"name", arguments_key}},
                     {"additionalProperties", false}});
  }
  if (calls.empty()) {
    return refuse("tool_choice.function.name", "'" + std::string(function) + "' is not among the request's tools");
  }
  nlohmann::ordered_json schema = calls.size() == 1 ? calls[0] : nlohmann::ordered_json{{"anyOf", calls}};
  schema["$defs"] = std::move(definitions);
  core::StructuredOutput out;
  out.json_schema = schema.dump();
  if (format == ToolCallFormat::kHermes) {
    out.before = std::string(kOpen) + "\n";
    out.after = "\n" + std::string(kClose);
  }
  return out;
}

std::size_t partial_match_length(std::string_view text, std::string_view pattern) {
  for (std::size_t n = std::min(text.size(), pattern.empty() ? 0 : pattern.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == pattern.substr(0, n)) return n;
  }
  return 0;
}

ToolCallFormat tool_call_format(std::string_view chat_template) {
  if (chat_template.find(kOpen) != std::string_view::npos) return ToolCallFormat::kHermes;
  if (chat_template.find(R"({"name": function name, "parameters": dictionary of argument name and its value})") !=
      std::string_view::npos) {
    return ToolCallFormat::kLlama3Json;
  }
  return ToolCallFormat::kNone;
}

std::string ToolCallScanner::feed(std::string_view piece) {
  held_ += piece;
  if (format_ == ToolCallFormat::kNone) {
    std::string out = std::move(held_);
    held_.clear();
    return out;
  }
  if (in_call_) return {};
  if (format_ == ToolCallFormat::kLlama3Json) {
    // A call is the whole answer: hold it all if it starts with '{', else it is all content.
    if (!decided_) {
      const std::size_t first = held_.find_first_not_of(" \t\r\n");
      if (first == std::string::npos) return {};
      decided_ = true;
      in_call_ = held_[first] == '{';
      if (in_call_) return {};
    }
    std::string out = std::move(held_);
    held_.clear();
    return out;
  }
  const std::size_t open = held_.find(kOpen);
  std::size_t release = 0;
  if (open != std::string::npos) {
    in_call_ = true;
    release = open;
  } else {
    release = held_.size() - partial_match_length(held_, kOpen);
  }
  std::string out = held_.substr(0, release);
  held_.erase(0, release);
  return out;
}

ToolCallScanner::Result ToolCallScanner::finish() {
  Result result;
  // From the first call on, every part of the held text must be a call, with only separators
  // between and after them; otherwise the text is content after all.
  std::vector<ParsedToolCall> calls;
  std::string_view rest = held_;
  bool well_formed = in_call_;
  while (well_formed) {
    const std::optional<std::string_view> body = next_call_body(rest);
    if (!body) break;
    ParsedToolCall call;
    well_formed = parse_call(*body, call);
    if (well_formed) calls.push_back(std::move(call));
  }
  if (well_formed && !calls.empty()) {
    result.calls = std::move(calls);
  } else {
    result.content = std::move(held_);
  }
  held_.clear();
  return result;
}

std::optional<std::string_view> ToolCallScanner::next_call_body(std::string_view& rest) const {
  const bool llama = format_ == ToolCallFormat::kLlama3Json;
  const std::size_t start = rest.find_first_not_of(llama ? " \t\r\n;" : " \t\r\n");
  if (start == std::string_view::npos) return std::nullopt;
  rest.remove_prefix(start);
  std::string_view body;
  if (llama) {  // one JSON object per call, ";" between them
    body = rest.substr(0, json_object_end(rest));
    rest.remove_prefix(body.empty() ? rest.size() : body.size());
  } else if (rest.substr(0, kOpen.size()) == kOpen) {  // <tool_call>...</tool_call>; the last may be cut off
    rest.remove_prefix(kOpen.size());
    const std::size_t close = rest.find(kClose);
    body = rest.substr(0, close);
    rest.remove_prefix(close == std::string_view::npos ? rest.size() : close + kClose.size());
  } else {
    rest = {};  // text after the calls: not a call
  }
  return body;
}

}  // namespace aegaeon::text
