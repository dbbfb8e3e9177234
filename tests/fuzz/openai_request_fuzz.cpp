// Target "openai_request": untrusted /v1/chat/completions and /v1/completions bodies through
// the OpenAI validation, and what the server then formats for a valid one.
#include <string>
#include <string_view>

#include "core/generation.hpp"
#include "rpc/http/openai_api.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace aegaeon::fuzz {

int fuzz_openai_request(const std::uint8_t* data, std::size_t size) {
  namespace openai = rpc::http::openai;
  using Api = core::GenerationRequest::Api;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (Api api : {Api::kChat, Api::kCompletion}) {
    auto request = openai::parse_generation_request(body, api);
    if (!request.ok()) {
      if (request.error().message.empty()) fuzz_fail("request rejected without a message");
      const auto response = openai::error_response(request.error());
      if (response.status < 400 || response.body.empty()) fuzz_fail("error_response is not an error");
      continue;
    }
    // A validated request's model name and options flow into every response the server formats.
    openai::ResponseFormatter formatter(api, request->model, 1, 1700000000, true);
    const std::vector<openai::TokenOut> tokens{{"Hel", -0.5f, "Hel"}, {"lo\n\"", -1.0f, "lo"}};
    (void)formatter.chunk(tokens);
    (void)formatter.finish_chunk(core::FinishReason::kStop);
    (void)formatter.usage_chunk({3, 2});
    (void)formatter.full_response({{"Hello", tokens, core::FinishReason::kLength}}, {3, 2});
  }
  return 0;
}

}  // namespace aegaeon::fuzz
