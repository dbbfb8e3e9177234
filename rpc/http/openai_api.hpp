// The OpenAI-compatible wire format: validating /v1/chat/completions and /v1/completions
// request bodies into core::GenerationRequest, and formatting responses, SSE chunks and errors
// exactly as OpenAI's clients expect them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/generation.hpp"
#include "core/result.hpp"
#include "rpc/http/http_types.hpp"

namespace aegaeon::rpc::http::openai {

/// Choices one request may ask for: n × its prompts.
inline constexpr std::int64_t kMaxChoices = 128;

/// Parses and validates a request body for `api`. Errors are kInvalidArgument with
/// Error::field naming the offending field (e.g. "temperature", "messages[1].content").
/// `max_tokens_limit` (0: none) caps max_tokens and max_completion_tokens (the operator's
/// serve.max_tokens_limit).
core::Result<core::GenerationRequest> parse_generation_request(std::string_view body,
                                                               core::GenerationRequest::Api api,
                                                               std::int32_t max_tokens_limit = 0);

/// The HTTP answer for an error: 400 invalid_request_error, 404 model_not_found, 413, 429
/// rate_limit_exceeded (with Retry-After when `retry_after_s` is set), 401, 500 server_error.
HttpResponse error_response(const core::Error& error,
                            std::optional<int> retry_after_s = std::nullopt);

/// One of the most likely tokens of a step (top_logprobs).
struct TopToken {
  std::string token;  ///< the bytes the token stands for
  float logprob = 0;
};

/// One generated token as the API reports it.
struct TokenOut {
  std::string text;    ///< its text (may be empty while UTF-8 is incomplete)
  std::optional<float> logprob;  ///< unset for an echoed prompt's first token (nothing before it)
  std::string token;   ///< the bytes the token stands for (text::Tokenizer::token_bytes), for logprobs
  std::vector<TopToken> top;  ///< the step's most likely tokens, best first, when requested
};

/// Token counts for "usage".
struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

/// One finished choice of a complete (non-streaming) response.
struct Choice {
  std::string text;
  std::vector<TokenOut> tokens;  ///< for logprobs (an echoed prompt's first)
  core::FinishReason reason = core::FinishReason::kNone;
  std::vector<core::ToolCall> tool_calls;  ///< the message carries them; finish_reason "tool_calls"
};

/// Formats one choice of a request's responses: ids, timestamps and object names stay
/// consistent across its chunks and the request's other choices.
class ResponseFormatter {
 public:
  /// `request_id` becomes "chatcmpl-…" or "cmpl-…"; `created_s` is Unix seconds; `index` is the
  /// choice's.
  ResponseFormatter(core::GenerationRequest::Api api, std::string model, std::uint64_t request_id,
                    std::int64_t created_s, bool logprobs, std::int32_t index = 0);

  /// An SSE chunk carrying `tokens` (their concatenated text); the first chat chunk also carries
  /// the assistant role.
  std::string chunk(const std::vector<TokenOut>& tokens);
  /// An SSE chunk releasing `text` held back earlier (a partial character, a possible stop
  /// string) without a new token: its logprobs, when asked for, list no token, so that a
  /// client counting them sees exactly usage.completion_tokens.
  std::string text_chunk(const std::string& text);
  /// A chat chunk with the answer's tool calls (each whole: id, name and arguments at once, as
  /// OpenAI clients accumulate them).
  std::string tool_calls_chunk(const std::vector<core::ToolCall>& calls);
  /// The last content chunk: empty delta and the finish reason ("tool_calls" when the answer
  /// made calls).
  std::string finish_chunk(core::FinishReason reason, bool tool_calls = false);
  /// The usage chunk sent before [DONE] when stream_options.include_usage is set.
  std::string usage_chunk(const Usage& usage) const;
  /// A complete (non-streaming) response with every choice, `choices[i]` as index i; a choice's
  /// message carries its tool calls (content null when there is no text).
  std::string full_response(const std::vector<Choice>& choices, const Usage& usage) const;

 private:
  std::string content_chunk(const std::string& text, const std::vector<TokenOut>& tokens);

  std::string envelope_prefix() const;

  core::GenerationRequest::Api api_;
  std::string model_;
  std::string id_;
  std::int64_t created_s_;
  bool logprobs_;
  std::int32_t index_;
  std::int64_t sent_characters_ = 0;  // completions' text_offset: characters already streamed
  bool sent_role_ = false;
};

}  // namespace aegaeon::rpc::http::openai
