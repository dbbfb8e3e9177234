// A generation request and its output events as plain data: what the HTTP API parses, what the
// proxy, prefill and decode roles pass between them (in one process through CAF, across
// processes mirrored in rpc/schema), and what the API formats back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aegaeon::core {

/// How to pick tokens (OpenAI semantics; vLLM's extensions top_k and repetition handled alike).
struct SamplingOptions {
  float temperature = 1.0f;       ///< 0: greedy
  float top_p = 1.0f;             ///< (0, 1]
  std::int32_t top_k = 0;         ///< 0 or -1: disabled
  float presence_penalty = 0.0f;  ///< [-2, 2]
  float frequency_penalty = 0.0f; ///< [-2, 2]
  std::optional<std::uint64_t> seed;
};

/// A token and the model's log-probability of it at one step (logprobs and top_logprobs).
struct TokenLogprob {
  std::int32_t token = 0;
  float logprob = 0;
};

/// A function call an assistant message made (OpenAI's tool_calls entry).
struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  ///< JSON text, as the model wrote it
};

/// One message of a chat conversation.
struct ChatTurn {
  std::string role;
  std::string content;
  std::vector<ToolCall> tool_calls;  ///< role "assistant": the calls it made
  std::string tool_call_id;          ///< role "tool": the call this is the result of
};

/// What the client asked for, validated.
struct GenerationRequest {
  enum class Api { kChat, kCompletion };
  Api api = Api::kChat;
  std::string model;
  std::vector<ChatTurn> messages;  ///< kChat
  std::string chat_template_kwargs;  ///< kChat: a JSON object of extra chat template variables, or empty
  std::string tools;               ///< kChat: the functions the model may call, a JSON array, or empty
  bool parallel_tool_calls = true;  ///< false: at most one call per answer
  std::string prompt;              ///< kCompletion
  std::vector<std::int32_t> prompt_token_ids;  ///< kCompletion: the prompt as token ids instead of text
  std::optional<std::int32_t> max_tokens;  ///< unset: up to the model's context
  std::vector<std::string> stop;   ///< at most 4; the stop text is not returned
  bool stream = false;
  bool include_usage = false;      ///< stream_options.include_usage
  bool logprobs = false;           ///< return the sampled tokens' log-probabilities
  std::int32_t top_logprobs = 0;   ///< with logprobs: also the N most likely tokens per step
  bool echo = false;               ///< OpenAI's echo; parsed so that true can be refused clearly
  bool skip_special_tokens = true;  ///< vLLM's: special tokens (e.g. <|im_end|>) left out of the text
  bool include_stop_str_in_output = false;  ///< vLLM's: the matched stop string ends the text
  SamplingOptions sampling;
  std::string user;                ///< OpenAI's end-user id; for logs and fairness only
};

/// Why a generation ended (OpenAI's finish_reason).
enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };

/// Text name of a finish reason ("stop", "length", ...).
const char* to_string(FinishReason reason);

}  // namespace aegaeon::core
