// Targets "tokenizer_json" (untrusted tokenizer.json files) and "tokenizer_text" (untrusted
// prompt text and token ids through the real test tokenizers).
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace aegaeon::fuzz {
namespace {

constexpr std::array<std::string_view, 6> kTexts{
    "Hello, world! It's 2025.", "  leading spaces\tand\ttabs\n\nnew lines  ",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 caf\xc3\xa9", "<|im_start|>user<|im_end|>",
    "invalid \xff\xfe utf-8 \xc3", "12345 67890 a1b2c3",
};

// Encodes, checks every id is in the id space, decodes.
void exercise(const text::Tokenizer& tokenizer, std::string_view text, bool special) {
  const auto ids = tokenizer.encode(text, special);
  const auto vocab = tokenizer.vocab_size();
  for (auto id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= vocab) fuzz_fail("encode produced an id outside vocab_size()");
    if (!tokenizer.id_to_token(id).has_value()) fuzz_fail("encode produced an id with no token");
  }
  (void)tokenizer.decode(ids, special);
  (void)tokenizer.decode(ids, !special);
}

// The tokenizers under tests/text/testdata, loaded once.
const std::vector<text::Tokenizer>& test_tokenizers() {
  static const std::vector<text::Tokenizer> tokenizers = [] {
    std::vector<text::Tokenizer> loaded;
    for (const char* name : {"gpt2", "llama2", "llama3", "mistral", "qwen2"}) {
      auto t = text::Tokenizer::load(std::string(AEGAEON_SOURCE_DIR) +
                                    "/tests/text/testdata/tokenizers/" + name +
                                    "/tokenizer.json");
      if (!t.ok()) fuzz_fail("cannot load a test tokenizer: " + t.error().message);
      loaded.push_back(*t);
    }
    return loaded;
  }();
  return tokenizers;
}

}  // namespace

int fuzz_tokenizer_json(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto tokenizer = text::Tokenizer::from_json(json, "fuzz/tokenizer.json");
  if (!tokenizer.ok()) {
    if (tokenizer.error().message.empty()) fuzz_fail("from_json failed without a message");
    return 0;
  }
  for (auto text : kTexts) exercise(*tokenizer, text, /*special=*/true);
  // Decoding arbitrary ids (unknown ones included) must not fail.
  std::vector<std::int32_t> ids{-1, 0, 1, 2, 255, 256, std::numeric_limits<std::int32_t>::max()};
  const auto vocab = static_cast<std::int32_t>(std::min<std::size_t>(tokenizer->vocab_size(), 512));
  for (std::int32_t id = 0; id < vocab; ++id) ids.push_back(id);
  (void)tokenizer->decode(ids, false);
  (void)tokenizer->decode(ids, true);
  return 0;
}

int fuzz_tokenizer_text(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& tokenizers = test_tokenizers();
  const auto& tokenizer = tokenizers[data[0] % tokenizers.size()];
  const bool special = (data[0] & 0x80) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  exercise(tokenizer, text, special);
  // The same bytes read as little-endian int32 ids (unknown ids are skipped by decode).
  std::vector<std::int32_t> ids;
  for (std::size_t i = 1; i + 4 <= size; i += 4) {
    ids.push_back(static_cast<std::int32_t>(
        static_cast<std::uint32_t>(data[i]) | static_cast<std::uint32_t>(data[i + 1]) << 8 |
        static_cast<std::uint32_t>(data[i + 2]) << 16 | static_cast<std::uint32_t>(data[i + 3]) << 24));
  }
  (void)tokenizer.decode(ids, special);
  return 0;
}

}  // namespace aegaeon::fuzz
