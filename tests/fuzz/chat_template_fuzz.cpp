// Target "chat_template": an untrusted chat template (model folders come from anywhere) through
// the Jinja parser and, when it parses, a render with a conversation that exercises tools,
// tool calls and every role — under a small step and size budget, so an endless or exploding
// template must end in an error, never a hang, a crash or a leak.
#include <cstdint>
#include <string_view>

#include "tests/fuzz/fuzz_targets.hpp"
#include "text/jinja/template.hpp"

namespace aegaeon::fuzz {

int fuzz_chat_template(const std::uint8_t* data, std::size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  auto parsed = text::jinja::Template::parse(source);
  if (!parsed.ok()) return 0;
  static const auto context = text::jinja::parse_json(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
      {"role": "assistant", "content": "<think>x</think>", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "{\"c\": 21}"},
      {"role": "user", "content": "Thanks \u00e9\ud83d\ude00"}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false
  })");
  if (!context.ok()) fuzz_fail("the fuzz context does not parse");
  text::jinja::RenderOptions options;
  options.max_steps = 100'000;
  options.max_value_size = 1u << 20;
  (void)parsed->render(*context, options);
  return 0;
}

}  // namespace aegaeon::fuzz
