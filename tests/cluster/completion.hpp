// Completions as the cluster tests see them: the request body they send and what came back,
// streamed or not. Shared by the loopback and the network-namespace suites so that both compare
// streams with the no-fault output the same way.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace aegaeon::testing {

/// What one completion produced.
struct Completion {
  std::string text;
  std::string finish_reason;
  int completion_tokens = 0;
};

/// A /v1/completions body at temperature 0 (deterministic, so a re-run must give the same
/// text); a stream asks for the usage chunk too.
inline nlohmann::json request_body(const std::string& model, const std::string& prompt, int max_tokens,
                                   bool stream) {
  nlohmann::json body = {{"model", model}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  return body;
}

/// A non-streaming response body.
inline Completion parse_completion(const nlohmann::json& response) {
  return {response["choices"][0]["text"], response["choices"][0]["finish_reason"],
          response["usage"]["completion_tokens"]};
}

/// Adds one streamed chunk (an SSE event's data) to `completion`.
inline void add_chunk(Completion& completion, const nlohmann::json& chunk) {
  if (chunk.contains("usage") && chunk["usage"].is_object()) {
    completion.completion_tokens = chunk["usage"]["completion_tokens"];
  }
  if (!chunk["choices"].empty()) {
    completion.text += chunk["choices"][0]["text"].get<std::string>();
    if (chunk["choices"][0]["finish_reason"].is_string()) {
      completion.finish_reason = chunk["choices"][0]["finish_reason"];
    }
  }
}

}  // namespace aegaeon::testing
