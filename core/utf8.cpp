#include "core/utf8.hpp"

#include <algorithm>
#include <cstdint>

namespace aegaeon::core {

std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) return 0;
  text.remove_prefix(pos);
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  const std::uint8_t lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  // The allowed range of the second byte rules out overlongs, surrogates and > U+10FFFF
  // (Unicode 15, table 3-7 "Well-Formed UTF-8 Byte Sequences").
  std::uint8_t second_min = 0x80;
  std::uint8_t second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (byte(1) < second_min || byte(1) > second_max) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

bool is_valid_utf8(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t length = utf8_sequence_length(text, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

std::string to_valid_utf8(std::string_view text) {
  if (is_valid_utf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (const std::size_t length = utf8_sequence_length(text, pos); length != 0) {
      out.append(text.substr(pos, length));
      pos += length;
      continue;
    }
    // The maximal subpart: the lead byte and the continuation bytes that could still have
    // completed its sequence (the same second-byte ranges as above).
    const auto lead = static_cast<std::uint8_t>(text[pos]);
    const std::size_t expected = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3
                                 : lead >= 0xC2 && lead <= 0xDF                    ? 2
                                                                                   : 1;
    std::size_t skip = 1;
    for (std::size_t k = 1; k < expected && pos + k < text.size(); ++k) {
      const auto b = static_cast<std::uint8_t>(text[pos + k]);
      bool ok = b >= 0x80 && b <= 0xBF;
      if (k == 1) {
        if (lead == 0xE0) ok = b >= 0xA0 && b <= 0xBF;
        if (lead == 0xED) ok = b >= 0x80 && b <= 0x9F;
        if (lead == 0xF0) ok = b >= 0x90 && b <= 0xBF;
        if (lead == 0xF4) ok = b >= 0x80 && b <= 0x8F;
      }
      if (!ok) break;
      skip = k + 1;
    }
    out.append(kUtf8Replacement);
    pos += skip;
  }
  return out;
}

std::size_t utf8_length(std::string_view text) {
  std::size_t characters = 0;
  while (!text.empty()) {
    text.remove_prefix(std::max<std::size_t>(1, utf8_sequence_length(text)));
    ++characters;
  }
  return characters;
}

}  // namespace aegaeon::core
