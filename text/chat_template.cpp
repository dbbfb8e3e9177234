#include "text/chat_template.hpp"
#include "core/file.hpp"

#include <nlohmann/json.hpp>

namespace aegaeon::text {
namespace {

using core::ErrorCode;
using nlohmann::ordered_json;

core::Error invalid(std::string message) { return core::error(ErrorCode::kInvalidArgument, std::move(message)); }

// A bos/eos entry: a string or {"content": ...}; empty when absent.
std::string config_token(const ordered_json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return {};
}

}  // namespace

core::Result<ChatTemplate> ChatTemplate::from_template(std::string_view template_text, std::string bos_token,
                                                       std::string eos_token, std::string_view source) {
  auto parsed = jinja::Template::parse(template_text);
  if (!parsed.ok()) return invalid(std::string(source) + ": the chat template does not parse: " + parsed.error().message);
  return ChatTemplate(std::move(*parsed), text::tool_call_format(template_text), std::move(bos_token),
                      std::move(eos_token), std::string(source));
}

core::Result<ChatTemplate> ChatTemplate::from_config_json(std::string_view json_text, std::string_view source) {
  const ordered_json config = ordered_json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) return invalid(std::string(source) + ": not a JSON object");
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) {
    return core::error(ErrorCode::kNotFound, std::string(source) + ": key 'chat_template': the model has no chat template");
  }
  std::string text;
  std::string where = std::string(source) + ": key 'chat_template'";
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->is_array()) {
    // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]: "default" is the chat one.
    for (std::size_t i = 0; i < it->size(); ++i) {
      const ordered_json& entry = (*it)[i];
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        text = entry["template"].get<std::string>();
        where = std::string(source) + ": key 'chat_template[" + std::to_string(i) + "].template'";
      }
    }
    if (text.empty()) return invalid(std::string(source) + ": key 'chat_template': no entry named 'default'");
  } else {
    return invalid(std::string(source) + ": key 'chat_template': expected a string or a list of {name, template}");
  }
  return from_template(text, config_token(config, "bos_token"), config_token(config, "eos_token"), where);
}

core::Result<ChatTemplate> ChatTemplate::load(const std::filesystem::path& dir) {
  auto config = read_tokenizer_config(dir);
  if (!config.ok()) return config.error();
  return from_config_json(*config, (dir / "tokenizer_config.json").string());
}

core::Result<std::string> ChatTemplate::render(std::span<const core::ChatTurn> messages, bool add_generation_prompt,
                                               std::string_view extra_variables_json, std::string_view tools_json) const {
  std::vector<jinja::Value> list;
  list.reserve(messages.size());
  for (const core::ChatTurn& m : messages) {
    jinja::Object message;
    message.set("role", jinja::Value::string(m.role));
    message.set("content", jinja::Value::string(m.content));
    if (!m.tool_calls.empty()) {
      std::vector<jinja::Value> calls;
      for (const core::ToolCall& call : m.tool_calls) {
        // Templates print arguments with tojson: an object, as transformers and vLLM pass it
        // (the text itself when it is not a JSON object).
        auto arguments = jinja::parse_json(call.arguments);
        jinja::Object function;
        function.set("name", jinja::Value::string(call.name));
        function.set("arguments", arguments.ok() && arguments->is_object() ? *arguments : jinja::Value::string(call.arguments));
        jinja::Object entry;
        entry.set("id", jinja::Value::string(call.id));
        entry.set("type", jinja::Value::string("function"));
        entry.set("function", jinja::Value::object(std::move(function)));
        calls.push_back(jinja::Value::object(std::move(entry)));
      }
      message.set("tool_calls", jinja::Value::array(std::move(calls)));
    }
    if (!m.tool_call_id.empty()) message.set("tool_call_id", jinja::Value::string(m.tool_call_id));
    list.push_back(jinja::Value::object(std::move(message)));
  }
  jinja::Object context;
  if (!extra_variables_json.empty()) {
    auto extra = jinja::parse_json(extra_variables_json);
    if (!extra.ok() || !extra->is_object()) {
      return core::Error{ErrorCode::kInvalidArgument, "chat template variables must be a JSON object of at most 128 levels",
                         "chat_template_kwargs"};
    }
    for (const auto& [name, value] : extra->attributes().entries()) context.set(name, value);
  }
  context.set("messages", jinja::Value::array(std::move(list)));
  if (!tools_json.empty()) {
    auto tools = jinja::parse_json(tools_json);
    if (!tools.ok() || !tools->is_array()) {
      return core::Error{ErrorCode::kInvalidArgument, "tools must be a JSON array", "tools"};
    }
    context.set("tools", *tools);
  }
  context.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  context.set("bos_token", jinja::Value::string(bos_));
  context.set("eos_token", jinja::Value::string(eos_));
  auto prompt = template_.render(jinja::Value::object(std::move(context)), options_);
  if (!prompt.ok()) return invalid(source_ + ": " + prompt.error().message);
  return prompt;
}

core::Result<std::string> read_tokenizer_config(const std::filesystem::path& dir) {
  const auto config_path = dir / "tokenizer_config.json";
  AEGAEON_TRY_ASSIGN(text, core::read_file(config_path));
  const auto jinja_path = dir / "chat_template.jinja";
  if (!std::filesystem::exists(jinja_path)) return text;
  AEGAEON_TRY_ASSIGN(jinja_file, core::read_file(jinja_path));
  ordered_json config = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) return invalid(config_path.string() + ": not a JSON object");
  config["chat_template"] = std::move(jinja_file);
  return config.dump();
}

}  // namespace aegaeon::text
