// UTF-8 checks and repair, the one module for every layer: the text formats aegaeon writes
// (Prometheus exposition, JSON logs, API responses) stay valid UTF-8 even when a value comes from
// user input, and the tokenizer repairs bytes as Hugging Face does (text/utf8 adds decoding and
// normalization on top).
#pragma once

#include <string>
#include <string_view>

namespace aegaeon::core {

/// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view text);

/// The replacement character U+FFFD, encoded.
inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";

/// `text` with every maximal ill-formed subsequence replaced by one U+FFFD (Unicode 3.9's
/// recommended practice, as Rust's String::from_utf8_lossy and so Hugging Face tokenizers do);
/// valid text is returned as is.
std::string to_valid_utf8(std::string_view text);

/// Length in bytes of the well-formed UTF-8 sequence starting at text[pos], or 0 when none does
/// (an ill-formed or truncated sequence, or pos at the end).
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos = 0);

/// Characters (code points) in `text`, each ill-formed byte counting as one.
std::size_t utf8_length(std::string_view text);

}  // namespace aegaeon::core
