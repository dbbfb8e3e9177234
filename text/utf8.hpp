// UTF-8 helpers the tokenizer needs beyond core/utf8 (checks and repair): decoding code points,
// Unicode whitespace, and NFC normalization (tables generated from Unicode data, no ICU).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aegaeon::text::utf8 {

/// Decodes the code point at `text[pos]` (which must start a well-formed sequence) and advances
/// `pos` past it.
char32_t decode(std::string_view text, std::size_t& pos);

/// Appends the UTF-8 encoding of `cp` to `out`.
void append(std::string& out, char32_t cp);

/// Unicode White_Space (Rust's char::is_whitespace), used by added-token lstrip/rstrip.
bool is_whitespace(char32_t cp);

/// Canonical composition (NFC) of well-formed UTF-8 `text`.
std::string to_nfc(std::string_view text);

}  // namespace aegaeon::text::utf8
