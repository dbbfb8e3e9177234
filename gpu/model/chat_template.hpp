// ChatTemplate: renders a conversation into the prompt text a chat model was trained on, for the
// template families in common use (ChatML/Qwen, Llama-3, Llama-2, Mistral). The family is
// recognized from tokenizer_config.json's Jinja `chat_template` by its markers; the Jinja itself
// is not interpreted, so an unrecognized template is a clear error, never a wrong prompt.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "core/result.hpp"

namespace aegaeon::gpu {

/// One message of a conversation ("system", "user" or "assistant").
struct ChatMessage {
  std::string role;
  std::string content;
};

/// The prompt formats ChatTemplate knows.
enum class ChatTemplateFamily {
  kChatMl,   ///< <|im_start|>role\ncontent<|im_end|>\n (Qwen, many others)
  kLlama3,   ///< <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> (3.1+: dated system block)
  kLlama2,   ///< <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s>
  kMistral,  ///< <s>[INST] user [/INST]assistant</s> (v0.1; no system role)
};

/// Stable name of a family ("chatml", "llama3", "llama2", "mistral").
std::string_view to_string(ChatTemplateFamily family);

/// A recognized chat template plus the bos/eos strings it needs.
class ChatTemplate {
 public:
  /// Reads `chat_template`, `bos_token` and `eos_token` from a tokenizer_config.json.
  static core::Result<ChatTemplate> load(const std::filesystem::path& tokenizer_config_json);

  /// Same as load() from the file's text; `source` names it in errors.
  static core::Result<ChatTemplate> from_config_json(std::string_view json_text, std::string_view source);

  /// Recognizes a Jinja template text directly; `source` and `key` name it in errors.
  static core::Result<ChatTemplate> from_template(std::string_view template_text, std::string bos_token,
                                                  std::string eos_token, std::string_view source,
                                                  std::string_view key = "chat_template");

  /// The prompt for `messages`; with `add_generation_prompt` it ends where the assistant's reply
  /// starts (families without one, Llama-2 and Mistral, already end there). Errors name the
  /// offending message (e.g. roles that do not alternate, an unknown role).
  [[nodiscard]] core::Result<std::string> render(std::span<const ChatMessage> messages,
                                                 bool add_generation_prompt) const;

  /// Which format this is.
  [[nodiscard]] ChatTemplateFamily family() const { return family_; }

  /// The system prompt used when the conversation has none (Qwen2's), or empty.
  [[nodiscard]] const std::string& default_system() const { return default_system_; }

  /// Fixes the "Today Date" of Llama-3.1+ system blocks (e.g. "26 Jul 2024"). By default it is
  /// "26 Jul 2024" as in Llama-3.1's template, or today's UTC date for templates that call
  /// strftime_now (Llama-3.2+), as transformers renders them.
  void set_date_string(std::string date) { date_string_ = std::move(date); }

 private:
  ChatTemplate() = default;
  ChatTemplateFamily family_ = ChatTemplateFamily::kChatMl;
  std::string bos_;
  std::string eos_;
  std::string default_system_;
  bool llama3_dated_system_ = false;  // Llama-3.1+: "Cutting Knowledge Date" system block
  std::string date_string_;           // empty: today's date, computed at render time
};

}  // namespace aegaeon::gpu
