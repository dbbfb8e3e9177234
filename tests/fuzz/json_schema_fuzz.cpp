// Target "json_schema": untrusted JSON Schemas (response_format) through text::JsonGrammar, and
// untrusted text read through the compiled grammar. The input is a schema, a NUL byte, then the
// text. Whatever the grammar reads to completion must be JSON (nlohmann parses it).
#include <nlohmann/json.hpp>
#include <string_view>

#include "tests/fuzz/fuzz_targets.hpp"
#include "text/json_grammar.hpp"

namespace aegaeon::fuzz {

int fuzz_json_schema(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const std::string_view schema = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? std::string_view{} : input.substr(nul + 1);
  auto grammar = text::JsonGrammar::compile(schema);
  if (!grammar.ok()) {
    if (grammar.error().field.empty()) fuzz_fail("a refused schema names no field");
    return 0;
  }
  const text::JsonGrammar& g = **grammar;
  text::JsonGrammar::State state = g.start();
  text::JsonGrammar::State next;
  std::size_t read = 0;
  for (char c : text) {
    g.step(state, static_cast<std::uint8_t>(c), next);
    if (next.empty()) break;
    std::swap(state, next);
    ++read;
  }
  if (g.complete(state) && nlohmann::json::parse(text.substr(0, read), nullptr, false).is_discarded()) {
    fuzz_fail("the grammar completed a text that is not JSON");
  }
  return 0;
}

}  // namespace aegaeon::fuzz
