#include "tests/fuzz/fuzz_targets.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>

namespace aegaeon::fuzz {

std::span<const FuzzTarget> fuzz_targets() {
  static constexpr std::array kTargets{
      FuzzTarget{"config", fuzz_config},
      FuzzTarget{"tokenizer_json", fuzz_tokenizer_json},
      FuzzTarget{"tokenizer_text", fuzz_tokenizer_text},
      FuzzTarget{"chat_template", fuzz_chat_template},
      FuzzTarget{"safetensors_header", fuzz_safetensors_header},
      FuzzTarget{"model_config", fuzz_model_config},
      FuzzTarget{"openai_request", fuzz_openai_request},
      FuzzTarget{"http_request", fuzz_http_request},
      FuzzTarget{"https_request", fuzz_https_request},
      FuzzTarget{"cluster_message", fuzz_cluster_message},
      FuzzTarget{"cluster_rpc", fuzz_cluster_rpc},
      FuzzTarget{"json_schema", fuzz_json_schema},
  };
  return kTargets;
}

void fuzz_fail(std::string_view what) {
  std::fprintf(stderr, "fuzz target invariant broken: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

}  // namespace aegaeon::fuzz
