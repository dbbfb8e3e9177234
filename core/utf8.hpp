// UTF-8 checks shared by the text formats aegaeon writes (Prometheus exposition, JSON logs):
// both must stay valid UTF-8 even when a label value or log message comes from user input.
#pragma once

#include <string>
#include <string_view>

namespace aegaeon::core {

/// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view text);

/// `text` with every ill-formed byte sequence replaced by U+FFFD; valid text is returned as is.
std::string to_valid_utf8(std::string_view text);

/// Length in bytes of the well-formed UTF-8 sequence starting at text[0], or 0 when text[0]
/// does not start one (text must not be empty).
std::size_t utf8_sequence_length(std::string_view text);

/// Characters (code points) in `text`, each ill-formed byte counting as one (as U+FFFD would).
std::size_t utf8_length(std::string_view text);

}  // namespace aegaeon::core
