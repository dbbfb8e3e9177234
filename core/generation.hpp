// A generation request and its output events as plain data: what the HTTP API parses, what the
// proxy, prefill and decode roles pass between them (in one process through CAF, across
// processes mirrored in rpc/schema), and what the API formats back.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aegaeon::core {

/// A served model's index in a node's catalog: the same number in the proxy, the policies and
/// the device worker.
using ModelId = std::int32_t;

/// One generation, from the proxy that accepted it to the device that runs it (where it is the
/// sequence's id).
using RequestId = std::uint64_t;

/// Structured outputs: the generated text must be exactly `before`, then JSON satisfying
/// `json_schema`, then exactly `after` — OpenAI's response_format (nothing around the JSON) or a
/// forced tool call in the model's format (e.g. Hermes' <tool_call> tags). Tokens that would
/// leave it are masked (text/constrained_decoding.hpp).
struct StructuredOutput {
  std::string json_schema;  ///< a JSON Schema as text (`{"type":"object"}`: any object); empty: any text
  std::string before;
  std::string after;

  [[nodiscard]] bool empty() const { return json_schema.empty(); }
  bool operator==(const StructuredOutput&) const = default;
};

/// How to pick tokens, the one shape every layer uses: parsed from the API, carried through the
/// actors and the cluster wire, applied by the sampler. OpenAI semantics and defaults; top_k,
/// min_p and repetition_penalty as vLLM defines them.
struct SamplingParams {
  float temperature = 1.0f;         ///< 0: greedy (argmax)
  float top_p = 1.0f;               ///< nucleus mass kept, (0, 1]
  std::int32_t top_k = 0;           ///< 0 or -1: all tokens
  float min_p = 0.0f;               ///< drop tokens below min_p × the top probability, [0, 1]
  float presence_penalty = 0.0f;    ///< subtracted once from every token already generated, [-2, 2]
  float frequency_penalty = 0.0f;   ///< subtracted per occurrence in the generated tokens, [-2, 2]
  float repetition_penalty = 1.0f;  ///< vLLM's: divide positive, multiply negative logits of tokens in the prompt or output
  /// The random stream's seed. Unset in a request that gave none; the proxy draws one before the
  /// request leaves it, so a generation resumed elsewhere continues the same stream.
  std::optional<std::uint64_t> seed;
  std::int32_t top_logprobs = 0;    ///< most likely tokens to report per step (never sampled by)
  /// Score the prompt too (OpenAI's echo with logprobs): -1 no; N >= 0: every prompt token's
  /// logprob given the tokens before it, with the N most likely tokens of that position.
  std::int32_t prompt_logprobs = -1;
  /// OpenAI's logit_bias: (token, bias in [-100, 100]) added to the token's logit before the
  /// penalties and the sampling; -100 in effect bans a token, +100 all but forces it.
  std::vector<std::pair<std::int32_t, float>> logit_bias;
  /// Structured outputs: what the text must be (empty: anything).
  StructuredOutput structured;

  bool operator==(const SamplingParams&) const = default;

  /// Argmax of the logits: what tests, parity checks and `aegaeon generate` default to.
  static SamplingParams greedy() {
    SamplingParams p;
    p.temperature = 0.0f;
    return p;
  }
};

/// When a generation ends, apart from stop strings (they need text, so the proxy matches them).
/// The device worker's sequence applies these after every token it samples: the one place that
/// decides a sequence is finished.
struct StopConditions {
  /// Tokens to generate at most, the first one included (unset: the model's context ends it).
  /// 0: none; the prompt is only scored (SamplingParams::prompt_logprobs).
  std::int32_t max_tokens = std::numeric_limits<std::int32_t>::max();
  /// Until this many tokens are generated the stop tokens cannot be sampled (vLLM's min_tokens:
  /// their logits are masked, so the answer goes on instead of ending early).
  std::int32_t min_tokens = 0;
  /// Tokens that end the generation and are not part of its text, its logprobs or its token
  /// count: the model's end-of-sequence ids (unless the request says ignore_eos) and the
  /// request's stop_token_ids (vLLM returns those unless they are special tokens).
  std::vector<std::int32_t> stop_token_ids;

  bool operator==(const StopConditions&) const = default;
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

/// One prompt of /v1/completions: text, or token ids (what evaluation harnesses send).
struct CompletionPrompt {
  std::string text;
  std::vector<std::int32_t> token_ids;  ///< non-empty: the prompt, instead of `text`
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
  /// kChat, tool_choice: set when the answer must be a tool call — to this function, or to any
  /// of the tools when empty ("required"). Unset: the model decides ("auto").
  std::optional<std::string> forced_tool;
  /// kCompletion: at least one; each gets `n` choices, indexed prompt by prompt.
  std::vector<CompletionPrompt> prompts;
  std::int32_t n = 1;              ///< choices per prompt, each its own generation
  std::optional<std::int32_t> max_tokens;  ///< unset: up to the model's context
  std::vector<std::string> stop;   ///< at most 4; the stop text is not returned
  std::vector<std::int32_t> stop_token_ids;  ///< vLLM's: these tokens end the generation too
  bool ignore_eos = false;         ///< vLLM's: the model's end-of-sequence tokens do not end it
  std::int32_t min_tokens = 0;     ///< vLLM's: no stop token before this many tokens
  bool stream = false;
  bool include_usage = false;      ///< stream_options.include_usage
  bool logprobs = false;           ///< return the sampled tokens' log-probabilities
  bool echo = false;               ///< kCompletion: the answer starts with the prompt (scored with logprobs)
  bool skip_special_tokens = true;  ///< vLLM's: special tokens (e.g. <|im_end|>) left out of the text
  bool include_stop_str_in_output = false;  ///< vLLM's: the matched stop string ends the text
  SamplingParams sampling;         ///< sampling.top_logprobs: with logprobs, the N most likely tokens per step
  std::string user;                ///< OpenAI's end-user id; for logs and fairness only
};

/// Why a generation ended (OpenAI's finish_reason).
enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };

/// Text name of a finish reason ("stop", "length", ...).
const char* to_string(FinishReason reason);

/// Tokens one generation produced (a decode step's, or the first from prefill) and, with the
/// last, how it ended: the one event every hop forwards, from the device roles to the proxy and,
/// across processes, from a worker to its controller (GenerationUpdate adds that hop's fields).
struct TokenEvent {
  RequestId id = 0;
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;
  /// Per token, the most likely tokens of its step (best first) when the request asked for
  /// top_logprobs (empty otherwise, or shorter than `tokens`).
  std::vector<std::vector<TokenLogprob>> top_logprobs;
  /// On the first event, when SamplingParams::prompt_logprobs asked: the logprob of prompt token
  /// i + 1 given the tokens before it (the first prompt token has none), and with each the most
  /// likely tokens of that position.
  std::vector<float> prompt_logprobs;
  std::vector<std::vector<TokenLogprob>> prompt_top_logprobs;
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  std::string error;    ///< set when the generation failed
  double queue_s = -1;  ///< set on the first event: arrival to prefill start
};

}  // namespace aegaeon::core
