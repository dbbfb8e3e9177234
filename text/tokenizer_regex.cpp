// PCRE2 behind tokenizer_detail::Regex: the pre-tokenizer patterns of GPT-2, Llama-3 and Qwen2
// need lookahead and Unicode classes (\p{L}, \p{N}, \s), which std::regex lacks.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <string>

#include "text/tokenizer_impl.hpp"

namespace aegaeon::text::tokenizer_detail {
namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

// Per-thread match scratch: match data and a JIT stack big enough for long whitespace runs.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(4, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

}  // namespace

core::Result<std::shared_ptr<const Regex>> Regex::compile(std::string_view pattern, bool literal) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // PCRE2_LITERAL admits no UCP (a literal has no classes to widen).
  const std::uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error_code, buffer, sizeof(buffer));
    return core::error(core::ErrorCode::kInvalidArgument,
                       "invalid regex at offset " + std::to_string(error_offset) + ": " +
                           reinterpret_cast<const char*>(buffer));
  }
  std::shared_ptr<Regex> regex(new Regex());
  regex->code_ = code;
  regex->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return std::shared_ptr<const Regex>(std::move(regex));
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

void Regex::find_all(std::string_view text,
                     std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  MatchScratch& s = scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t offset = 0;
  while (offset <= text.size()) {
    // The input was made valid UTF-8 before pre-tokenization, so the check is skipped.
    const int rc = jit_ ? pcre2_jit_match(as_code(code_), subject, text.size(), offset,
                                          PCRE2_NO_UTF_CHECK, s.data, s.context)
                        : pcre2_match(as_code(code_), subject, text.size(), offset,
                                      PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc < 0) break;  // no more matches (or a resource limit: the rest stays unsplit)
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
    const std::size_t begin = ovector[0];
    const std::size_t end = ovector[1];
    if (end > begin) {
      out.emplace_back(begin, end);
      offset = end;
    } else {
      // Empty matches are skipped, as Rust's find_iter does; step one character forward.
      offset = end + 1;
      while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) ++offset;
    }
  }
}

}  // namespace aegaeon::text::tokenizer_detail
