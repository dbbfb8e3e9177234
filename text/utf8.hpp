// UTF-8 helpers the tokenizer needs: decoding code points, lossy repair of invalid input,
// Unicode whitespace, and NFC normalization (tables generated from Unicode data, no ICU).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aegaeon::text::utf8 {

/// The replacement character U+FFFD, encoded.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

/// Length in bytes of the well-formed UTF-8 sequence at `text[pos]`, or 0 when it is invalid
/// or truncated there.
std::size_t sequence_length(std::string_view text, std::size_t pos);

/// Decodes the code point at `text[pos]` (which must start a well-formed sequence) and advances
/// `pos` past it.
char32_t decode(std::string_view text, std::size_t& pos);

/// Appends the UTF-8 encoding of `cp` to `out`.
void append(std::string& out, char32_t cp);

/// True when `text` is well-formed UTF-8.
bool is_valid(std::string_view text);

/// `text` with every maximal invalid subsequence replaced by U+FFFD, the way Rust's
/// String::from_utf8_lossy (and so Hugging Face tokenizers) repairs bytes.
std::string to_valid_lossy(std::string_view text);

/// Unicode White_Space (Rust's char::is_whitespace), used by added-token lstrip/rstrip.
bool is_whitespace(char32_t cp);

/// Canonical composition (NFC) of well-formed UTF-8 `text`.
std::string to_nfc(std::string_view text);

}  // namespace aegaeon::text::utf8
