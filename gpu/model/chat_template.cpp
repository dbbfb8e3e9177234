#include "gpu/model/chat_template.hpp"

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace aegaeon::gpu {
namespace {

using core::ErrorCode;
using nlohmann::json;

// Llama-3.1's template without a `date_string` variable; what transformers renders by default.
constexpr std::string_view kLlama31Date = "26 Jul 2024";

// Today's UTC date as strftime("%d %b %Y"), what Llama-3.2's template asks strftime_now for.
std::string today_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  const std::size_t n = std::strftime(buffer, sizeof(buffer), "%d %b %Y", &parts);
  return std::string(buffer, n);
}

core::Error invalid(std::string message) { return core::error(ErrorCode::kInvalidArgument, std::move(message)); }

// Jinja's `trim` / Python's str.strip(): leading and trailing whitespace.
std::string trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const std::size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  const std::size_t end = s.find_last_not_of(kSpace);
  return std::string(s.substr(begin, end - begin + 1));
}

// Qwen2's default system prompt: the literal text of "<|im_start|>system\n...<|im_end|>" in the
// template when it is a constant (not built from messages[0]).
std::string chatml_default_system(std::string_view t) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  for (std::size_t at = t.find(kOpen); at != std::string_view::npos; at = t.find(kOpen, at + 1)) {
    std::size_t body = at + kOpen.size();
    if (t.substr(body, 1) == "\n") {
      body += 1;
    } else if (t.substr(body, 2) == "\\n") {
      body += 2;
    } else {
      continue;
    }
    const std::size_t end = t.find("<|im_end|>", body);
    if (end == std::string_view::npos) continue;
    const std::string_view text = t.substr(body, end - body);
    if (!text.empty() && text.find_first_of("'\"{}+") == std::string_view::npos) return std::string(text);
  }
  return {};
}

// A bos/eos entry: a string or {"content": ...}; empty when absent.
std::string config_token(const json& config, const char* key) {
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

std::string_view to_string(ChatTemplateFamily family) {
  switch (family) {
    case ChatTemplateFamily::kChatMl:
      return "chatml";
    case ChatTemplateFamily::kLlama3:
      return "llama3";
    case ChatTemplateFamily::kLlama2:
      return "llama2";
    case ChatTemplateFamily::kMistral:
      return "mistral";
  }
  return "unknown";
}

core::Result<ChatTemplate> ChatTemplate::from_template(std::string_view t, std::string bos_token,
                                                       std::string eos_token, std::string_view source,
                                                       std::string_view key) {
  ChatTemplate result;
  const std::string where = std::string(source) + ": key '" + std::string(key) + "': ";
  if (t.find("<|im_start|>") != std::string_view::npos) {
    result.family_ = ChatTemplateFamily::kChatMl;
    result.default_system_ = chatml_default_system(t);
  } else if (t.find("<|start_header_id|>") != std::string_view::npos) {
    result.family_ = ChatTemplateFamily::kLlama3;
    result.llama3_dated_system_ = t.find("Cutting Knowledge Date") != std::string_view::npos;
    if (t.find("strftime_now") == std::string_view::npos) result.date_string_ = std::string(kLlama31Date);
  } else if (t.find("[INST]") != std::string_view::npos) {
    result.family_ = t.find("<<SYS>>") != std::string_view::npos ? ChatTemplateFamily::kLlama2
                                                                 : ChatTemplateFamily::kMistral;
  } else {
    return invalid(where +
                   "unrecognized chat template (supported: ChatML/Qwen '<|im_start|>', Llama-3 "
                   "'<|start_header_id|>', Llama-2/Mistral '[INST]'; other Jinja templates are not interpreted)");
  }
  if (result.family_ != ChatTemplateFamily::kChatMl && bos_token.empty()) {
    return invalid(std::string(source) + ": key 'bos_token': the " + std::string(to_string(result.family_)) +
                   " chat template needs a bos_token");
  }
  if ((result.family_ == ChatTemplateFamily::kLlama2 || result.family_ == ChatTemplateFamily::kMistral) &&
      eos_token.empty()) {
    return invalid(std::string(source) + ": key 'eos_token': the " + std::string(to_string(result.family_)) +
                   " chat template needs an eos_token");
  }
  result.bos_ = std::move(bos_token);
  result.eos_ = std::move(eos_token);
  return result;
}

core::Result<ChatTemplate> ChatTemplate::from_config_json(std::string_view json_text, std::string_view source) {
  const json config = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return invalid(std::string(source) + ": not a JSON object");
  }
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) {
    return invalid(std::string(source) + ": key 'chat_template': missing (the model has no chat template)");
  }
  std::string text;
  std::string key = "chat_template";
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->is_array()) {
    // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]: use "default".
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& entry = (*it)[i];
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        text = entry["template"].get<std::string>();
        key = "chat_template[" + std::to_string(i) + "].template";
      }
    }
    if (text.empty()) return invalid(std::string(source) + ": key 'chat_template': no entry named 'default'");
  } else {
    return invalid(std::string(source) + ": key 'chat_template': expected a string or a list of {name, template}");
  }
  return from_template(text, config_token(config, "bos_token"), config_token(config, "eos_token"), source, key);
}

core::Result<ChatTemplate> ChatTemplate::load(const std::filesystem::path& tokenizer_config_json) {
  std::ifstream in(tokenizer_config_json, std::ios::binary);
  if (!in) return core::error(ErrorCode::kNotFound, tokenizer_config_json.string() + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  return from_config_json(text.str(), tokenizer_config_json.string());
}

core::Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                               bool add_generation_prompt) const {
  std::string out;
  const auto at = [](std::size_t i) { return "messages[" + std::to_string(i) + "]"; };
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return invalid(at(i) + ": role '" + role + "' is not supported by the " + std::string(to_string(family_)) +
                     " chat template (expected system, user or assistant)");
    }
  }
  switch (family_) {
    case ChatTemplateFamily::kChatMl: {
      // Qwen2: a default system message when the conversation does not start with one.
      if (!default_system_.empty() && (messages.empty() || messages[0].role != "system")) {
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      }
      for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    }
    case ChatTemplateFamily::kLlama3: {
      out += bos_;
      std::size_t first = 0;
      if (llama3_dated_system_) {
        // Llama-3.1: the system block always comes first and carries the knowledge dates.
        std::string system;
        if (!messages.empty() && messages[0].role == "system") {
          system = trim(messages[0].content);
          first = 1;
        }
        out += "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: " +
               (date_string_.empty() ? today_utc() : date_string_) + "\n\n" + system + "<|eot_id|>";
      }
      for (std::size_t i = first; i < messages.size(); ++i) {
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" + trim(messages[i].content) +
               "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    }
    case ChatTemplateFamily::kLlama2:
    case ChatTemplateFamily::kMistral: {
      const bool llama2 = family_ == ChatTemplateFamily::kLlama2;
      std::size_t first = 0;
      std::string system;
      if (!messages.empty() && messages[0].role == "system") {
        if (!llama2) {
          return invalid(at(0) + ": the mistral chat template supports only user and assistant roles");
        }
        system = messages[0].content;
        first = 1;
      }
      if (!llama2) out += bos_;
      for (std::size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        const bool expect_user = (i - first) % 2 == 0;
        if ((m.role == "user") != expect_user || m.role == "system") {
          return invalid(at(i) + ": conversation roles must alternate user/assistant/user/assistant/... (got '" +
                         m.role + "')");
        }
        if (llama2) {
          std::string content = m.content;
          if (i == first && first == 1) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
          if (m.role == "user") {
            out += bos_ + "[INST] " + trim(content) + " [/INST]";
          } else {
            out += " " + trim(content) + " " + eos_;
          }
        } else if (m.role == "user") {
          out += "[INST] " + m.content + " [/INST]";
        } else {
          out += m.content + eos_;
        }
      }
      return out;
    }
  }
  return out;
}

}  // namespace aegaeon::gpu
