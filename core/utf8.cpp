#include "core/utf8.hpp"

#include <algorithm>
#include <cstdint>

namespace aegaeon::core {

namespace {

// What a lead byte asks of the bytes after it (Unicode 15, table 3-7 "Well-Formed UTF-8 Byte
// Sequences"): the sequence's length (0: it cannot start one) and the allowed range of the
// second byte, which rules out overlongs, surrogates and > U+10FFFF.
struct LeadByte {
  std::size_t length = 0;
  std::uint8_t second_min = 0x80;
  std::uint8_t second_max = 0xBF;
};

LeadByte lead_byte(std::uint8_t lead) {
  if (lead < 0x80) return {1};
  if (lead >= 0xC2 && lead <= 0xDF) return {2};
  if (lead >= 0xE0 && lead <= 0xEF) {
    return {3, static_cast<std::uint8_t>(lead == 0xE0 ? 0xA0 : 0x80), static_cast<std::uint8_t>(lead == 0xED ? 0x9F : 0xBF)};
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    return {4, static_cast<std::uint8_t>(lead == 0xF0 ? 0x90 : 0x80), static_cast<std::uint8_t>(lead == 0xF4 ? 0x8F : 0xBF)};
  }
  return {};
}

// How many bytes from text[pos] (pos < size) follow its lead byte's rule: the whole sequence
// when it is well-formed, else its maximal subpart (at least the lead byte itself).
std::size_t matched_bytes(std::string_view text, std::size_t pos, const LeadByte& rule) {
  std::size_t k = 1;
  for (; k < rule.length && pos + k < text.size(); ++k) {
    const auto b = static_cast<std::uint8_t>(text[pos + k]);
    const bool ok = k == 1 ? b >= rule.second_min && b <= rule.second_max : b >= 0x80 && b <= 0xBF;
    if (!ok) break;
  }
  return k;
}

}  // namespace

std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) return 0;
  const LeadByte rule = lead_byte(static_cast<std::uint8_t>(text[pos]));
  if (rule.length == 0) return 0;
  const std::size_t matched = matched_bytes(text, pos, rule);
  return matched == rule.length ? matched : 0;
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
    // One U+FFFD for the maximal subpart: the lead byte and the bytes that could still have
    // completed its sequence.
    const std::size_t skip = matched_bytes(text, pos, lead_byte(static_cast<std::uint8_t>(text[pos])));
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
