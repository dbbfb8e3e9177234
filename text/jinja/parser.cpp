// A lexer and a recursive-descent parser with @huggingface/jinja's grammar and precedence
// (lowest first): `x if c else y`, or, and, not, comparisons and `in`, `+ - ~`, `* / // %`, `**`,
// `is` tests, `|` filters, unary signs, calls/members/slices, primaries.
#include "text/jinja/parser.hpp"

#include <cstdlib>
#include <string>
#include <vector>

#include "text/utf8.hpp"

namespace aegaeon::text::jinja {
namespace {

// ---- source preparation -----------------------------------------------------------------------

// The text the lexer reads, and for every byte of it the template line it came from (the
// preparation removes newlines, so counting them afterwards would misplace errors).
struct Source {
  std::string text;
  std::vector<int> line;

  void push(char c, int from_line) {
    text += c;
    line.push_back(from_line);
  }
};

bool is_block_open_tail(char c) { return c == '#' || c == '%' || c == '-'; }

// Drops one trailing newline, applies lstrip_blocks (spaces and tabs before `{%`, `{#` or `{-`
// at the start of a line) and trim_blocks (the newline right after `%}`, `#}` or `-}`), as
// @huggingface/jinja's preprocess does with regular expressions before lexing.
Source prepare(std::string_view original) {
  std::string_view s = original;
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  Source out;
  out.text.reserve(s.size());
  int line = 1;
  bool line_start = true;
  for (std::size_t i = 0; i < s.size();) {
    if (line_start) {
      std::size_t j = i;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
      if (j + 1 < s.size() && s[j] == '{' && is_block_open_tail(s[j + 1])) i = j;
      line_start = false;
      continue;
    }
    const char c = s[i];
    if (c == '}' && !out.text.empty() && is_block_open_tail(out.text.back()) && i + 1 < s.size() && s[i + 1] == '\n') {
      out.push(c, line);
      i += 2;  // trim_blocks: the newline goes
      ++line;
      line_start = true;
      continue;
    }
    out.push(c, line);
    ++i;
    if (c == '\n' || c == '\r') {
      if (c == '\n') ++line;
      line_start = true;
    }
  }
  return out;
}

bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Removes transformers' `{% generation %}` / `{% endgeneration %}` markers (they only tell
// training code which tokens the assistant wrote), honouring their `-` whitespace control.
Source remove_generation_markers(const Source& in) {
  const std::string& s = in.text;
  Source out;
  std::size_t last = 0;
  std::size_t pos = 0;
  while ((pos = s.find("{%", pos)) != std::string::npos) {
    std::size_t i = pos + 2;
    const bool lstrip = i < s.size() && s[i] == '-';
    if (lstrip) ++i;
    while (i < s.size() && is_ascii_space(s[i])) ++i;
    if (s.compare(i, 3, "end") == 0 && s.compare(i + 3, 10, "generation") == 0) i += 3;
    if (s.compare(i, 10, "generation") != 0) {
      pos += 2;
      continue;
    }
    i += 10;
    while (i < s.size() && is_ascii_space(s[i])) ++i;
    const bool rstrip = i < s.size() && s[i] == '-';
    if (rstrip) ++i;
    if (s.compare(i, 2, "%}") != 0) {
      pos += 2;
      continue;
    }
    i += 2;
    std::size_t after_end = i;
    while (after_end < s.size() && is_ascii_space(s[after_end])) ++after_end;
    std::size_t keep_end = pos;
    if (lstrip) {
      while (keep_end > last && is_ascii_space(s[keep_end - 1])) --keep_end;
    }
    for (std::size_t k = last; k < keep_end; ++k) out.push(s[k], in.line[k]);
    if (!rstrip) {
      for (std::size_t k = i; k < after_end; ++k) out.push(s[k], in.line[k]);
    }
    last = pos = after_end;
  }
  for (std::size_t k = last; k < s.size(); ++k) out.push(s[k], in.line[k]);
  return out;
}

// ---- lexer ------------------------------------------------------------------------------------

enum class Tok {
  kText, kNumber, kString, kIdentifier, kEquals, kOpenParen, kCloseParen, kOpenStatement,
  kCloseStatement, kOpenExpression, kCloseExpression, kOpenSquare, kCloseSquare, kOpenCurly,
  kCloseCurly, kComma, kDot, kColon, kPipe, kAdditive, kMultiplicative, kPower, kComparison,
  kUnary, kComment,
};

struct Token {
  Tok type;
  std::string value;
  int line;
};

struct Symbol {
  std::string_view text;
  Tok type;
};

// Longest first where one symbol starts another.
constexpr Symbol kSymbols[] = {
    {"{%", Tok::kOpenStatement}, {"%}", Tok::kCloseStatement}, {"{{", Tok::kOpenExpression},
    {"}}", Tok::kCloseExpression}, {"(", Tok::kOpenParen},     {")", Tok::kCloseParen},
    {"{", Tok::kOpenCurly},        {"}", Tok::kCloseCurly},     {"[", Tok::kOpenSquare},
    {"]", Tok::kCloseSquare},      {",", Tok::kComma},          {".", Tok::kDot},
    {":", Tok::kColon},            {"|", Tok::kPipe},           {"<=", Tok::kComparison},
    {">=", Tok::kComparison},      {"==", Tok::kComparison},    {"!=", Tok::kComparison},
    {"<", Tok::kComparison},       {">", Tok::kComparison},     {"+", Tok::kAdditive},
    {"-", Tok::kAdditive},         {"~", Tok::kAdditive},       {"**", Tok::kPower},
    {"*", Tok::kMultiplicative},   {"//", Tok::kMultiplicative}, {"/", Tok::kMultiplicative},
    {"%", Tok::kMultiplicative},   {"=", Tok::kEquals},
};

bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(const Source& source) : src_(source.text), lines_(source.line) {}

  core::Result<std::vector<Token>> run() {
    while (pos_ < src_.size()) {
      const Tok* last = tokens_.empty() ? nullptr : &tokens_.back().type;
      if (!last || *last == Tok::kCloseStatement || *last == Tok::kCloseExpression || *last == Tok::kComment) {
        std::size_t end = pos_;
        while (true) {
          end = src_.find('{', end);
          if (end == std::string::npos) {
            end = src_.size();
            break;
          }
          const char next = end + 1 < src_.size() ? src_[end + 1] : '\0';
          if (next == '%' || next == '{' || next == '#') break;
          ++end;
        }
        if (end > pos_) {
          push(Tok::kText, src_.substr(pos_, end - pos_));
          pos_ = end;
          continue;
        }
      }
      if (auto step = lex_one(); !step.ok()) return step.error();
    }
    return std::move(tokens_);
  }

 private:
  int line() const { return pos_ < lines_.size() ? lines_[pos_] : (lines_.empty() ? 1 : lines_.back()); }
  char at(std::size_t i) const { return i < src_.size() ? src_[i] : '\0'; }
  void push(Tok type, std::string value) { tokens_.push_back({type, std::move(value), line()}); }
  core::Error fail(const std::string& what) const {
    return core::error(core::ErrorCode::kInvalidArgument, "line " + std::to_string(line()) + ": " + what);
  }

  // JavaScript's trimEnd on the text before a `{%-`, `{{-` or `{#-`.
  void strip_trailing_whitespace() {
    if (tokens_.empty() || tokens_.back().type != Tok::kText) return;
    tokens_.back().value = std::string(strip_js_whitespace(tokens_.back().value, false, true));
    if (tokens_.back().value.empty()) tokens_.pop_back();
  }
  // Past JavaScript whitespace: after `-%}`, `-}}`, `-#}` and inside a tag.
  void skip_whitespace() {
    pos_ = src_.size() - strip_js_whitespace(std::string_view(src_).substr(pos_), true, false).size();
  }

  core::Result<std::monostate> lex_one() {
    const Tok* last = tokens_.empty() ? nullptr : &tokens_.back().type;
    if (at(pos_) == '{') {
      const char next = at(pos_ + 1);
      if (next == '#') {
        pos_ += 2;
        const bool strip_before = at(pos_) == '-';
        if (strip_before) ++pos_;
        const std::size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) return fail("missing end of comment tag '#}'");
        const bool strip_after = end > pos_ && src_[end - 1] == '-';
        if (strip_before) strip_trailing_whitespace();
        push(Tok::kComment, "");
        pos_ = end + 2;
        if (strip_after) skip_whitespace();
        return std::monostate{};
      }
      if (at(pos_ + 2) == '-' && (next == '%' || next == '{')) {
        strip_trailing_whitespace();
        push(next == '%' ? Tok::kOpenStatement : Tok::kOpenExpression, next == '%' ? "{%" : "{{");
        if (next == '{') curly_depth_ = 0;
        pos_ += 3;
        return std::monostate{};
      }
    }
    skip_whitespace();
    if (pos_ >= src_.size()) return fail("unexpected end of template inside a tag");
    const char c = src_[pos_];
    if (c == '-' && at(pos_ + 2) == '}' && (at(pos_ + 1) == '%' || at(pos_ + 1) == '}')) {
      push(at(pos_ + 1) == '%' ? Tok::kCloseStatement : Tok::kCloseExpression, at(pos_ + 1) == '%' ? "%}" : "}}");
      pos_ += 3;
      skip_whitespace();
      return std::monostate{};
    }
    if (c == '-' || c == '+') {
      if (!last || *last == Tok::kText) return fail(std::string("unexpected character '") + c + "'");
      const bool binary = *last == Tok::kIdentifier || *last == Tok::kNumber || *last == Tok::kString ||
                          *last == Tok::kCloseParen || *last == Tok::kCloseSquare;
      if (!binary) {  // a sign: merged into a following number literal, else a unary operator
        ++pos_;
        std::string num = digits();
        if (!num.empty() && at(pos_) == '.' && is_digit(at(pos_ + 1))) {
          ++pos_;
          num += "." + digits();
        }
        push(num.empty() ? Tok::kUnary : Tok::kNumber, std::string(1, c) + num);
        return std::monostate{};
      }
    }
    for (const auto& symbol : kSymbols) {
      if (symbol.text == "}}" && curly_depth_ > 0) continue;  // closes an object literal instead
      if (src_.compare(pos_, symbol.text.size(), symbol.text) != 0) continue;
      push(symbol.type, std::string(symbol.text));
      if (symbol.type == Tok::kOpenExpression) curly_depth_ = 0;
      if (symbol.type == Tok::kOpenCurly) ++curly_depth_;
      if (symbol.type == Tok::kCloseCurly) --curly_depth_;
      pos_ += symbol.text.size();
      return std::monostate{};
    }
    if (c == '\'' || c == '"') return string_literal(c);
    if (is_digit(c)) {
      std::string num = digits();
      if (*last != Tok::kDot && at(pos_) == '.' && is_digit(at(pos_ + 1))) {
        ++pos_;
        num += "." + digits();
      }
      push(Tok::kNumber, num);
      return std::monostate{};
    }
    if (is_word(c)) {
      const std::size_t start = pos_;
      while (pos_ < src_.size() && is_word(src_[pos_])) ++pos_;
      push(Tok::kIdentifier, src_.substr(start, pos_ - start));
      return std::monostate{};
    }
    return fail(std::string("unexpected character '") + c + "'");
  }

  std::string digits() {
    const std::size_t start = pos_;
    while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
    return src_.substr(start, pos_ - start);
  }

  core::Result<std::monostate> string_literal(char quote) {
    const int start_line = line();
    ++pos_;
    std::string value;
    while (true) {
      if (pos_ >= src_.size()) return fail("unterminated string literal starting on line " + std::to_string(start_line));
      const char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos_ >= src_.size()) return fail("unterminated string literal");
      const char e = src_[pos_++];
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\\': value += '\\'; break;
        case 'x':
        case 'u': {
          const std::size_t n = e == 'x' ? 2 : 4;
          const std::string hex = src_.substr(pos_, n);
          if (hex.size() != n || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            return fail(std::string("invalid escape \\") + e + hex);
          }
          utf8::append(value, static_cast<char32_t>(std::strtoul(hex.c_str(), nullptr, 16)));
          pos_ += n;
          break;
        }
        default: return fail(std::string("unknown escape '\\") + e + "' in a string literal");
      }
    }
    tokens_.push_back({Tok::kString, std::move(value), start_line});
    return std::monostate{};
  }

  const std::string& src_;
  const std::vector<int>& lines_;
  std::size_t pos_ = 0;
  int curly_depth_ = 0;
  std::vector<Token> tokens_;
};

// ---- parser -----------------------------------------------------------------------------------

template <typename Node>
ExprPtr make(int line, Node node) {
  auto e = std::make_unique<Expr>();
  e->line = line;
  e->node = std::move(node);
  return e;
}

using ExprResult = core::Result<ExprPtr>;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  core::Result<Body> program() {
    Body body;
    while (current_ < tokens_.size()) {
      if (auto ok = parse_any(body); !ok.ok()) return ok.error();
    }
    return body;
  }

 private:
  // ---- token helpers
  const Token* peek(std::size_t ahead = 0) const {
    return current_ + ahead < tokens_.size() ? &tokens_[current_ + ahead] : nullptr;
  }
  bool is(Tok type, std::size_t ahead = 0) const { return peek(ahead) && peek(ahead)->type == type; }
  bool is_identifier(std::string_view name, std::size_t ahead = 0) const {
    return is(Tok::kIdentifier, ahead) && peek(ahead)->value == name;
  }
  bool is_statement(std::initializer_list<std::string_view> names) const {
    if (!is(Tok::kOpenStatement) || !is(Tok::kIdentifier, 1)) return false;
    for (auto name : names) {
      if (peek(1)->value == name) return true;
    }
    return false;
  }
  int line() const {
    if (const Token* t = peek()) return t->line;
    return tokens_.empty() ? 1 : tokens_.back().line;
  }
  core::Error fail(const std::string& what) const {
    const Token* t = peek();
    return core::error(core::ErrorCode::kInvalidArgument,
                       "line " + std::to_string(line()) + ": " + what +
                           (t ? " (found '" + (t->type == Tok::kText ? std::string("text") : t->value) + "')"
                              : " (found the end of the template)"));
  }
  core::Result<std::monostate> expect(Tok type, std::string_view what) {
    if (!is(type)) return fail("expected " + std::string(what));
    ++current_;
    return std::monostate{};
  }
  core::Result<std::monostate> expect_identifier(std::string_view name) {
    if (!is_identifier(name)) return fail("expected '" + std::string(name) + "'");
    ++current_;
    return std::monostate{};
  }
  core::Result<std::monostate> expect_end_tag(std::string_view name) {
    AEGAEON_TRY(expect(Tok::kOpenStatement, "'{%' opening {% " + std::string(name) + " %}"));
    AEGAEON_TRY(expect_identifier(name));
    return expect(Tok::kCloseStatement, "'%}'");
  }

  // Parses statements into `body` until one of `ends` opens a statement.
  core::Result<std::monostate> parse_until(Body& body, std::initializer_list<std::string_view> ends,
                                           std::string_view block) {
    while (!is_statement(ends)) {
      if (current_ >= tokens_.size()) {
        return fail("the template ended inside {% " + std::string(block) + " %} (missing {% end" + std::string(block) + " %})");
      }
      AEGAEON_TRY(parse_any(body));
    }
    return std::monostate{};
  }

  // ---- statements
  core::Result<std::monostate> parse_any(Body& body) {
    const Token& t = tokens_[current_];
    switch (t.type) {
      case Tok::kComment: ++current_; return std::monostate{};
      case Tok::kText:
        body.push_back(Stmt{t.line, ast::Text{t.value}});
        ++current_;
        return std::monostate{};
      case Tok::kOpenStatement: return parse_statement(body);
      case Tok::kOpenExpression: {
        ++current_;
        const int at_line = line();
        AEGAEON_TRY_ASSIGN(expr, expression());
        AEGAEON_TRY(expect(Tok::kCloseExpression, "'}}'"));
        body.push_back(Stmt{at_line, ast::Output{std::move(expr)}});
        return std::monostate{};
      }
      default: return fail("unexpected token outside a tag");
    }
  }

  core::Result<std::monostate> parse_statement(Body& body) {
    const Nesting nesting(*this);
    if (nesting.too_deep()) return fail("statements nest too deeply");
    ++current_;  // {%
    if (!is(Tok::kIdentifier)) return fail("expected a statement name after '{%'");
    const std::string name = peek()->value;
    const int at_line = line();
    ++current_;
    if (name == "set") {
      AEGAEON_TRY_ASSIGN(stmt, set_statement());
      body.push_back(Stmt{at_line, std::move(stmt)});
    } else if (name == "if") {
      AEGAEON_TRY_ASSIGN(stmt, if_statement());
      AEGAEON_TRY(expect_end_tag("endif"));
      body.push_back(Stmt{at_line, std::move(stmt)});
    } else if (name == "for") {
      AEGAEON_TRY_ASSIGN(stmt, for_statement());
      AEGAEON_TRY(expect_end_tag("endfor"));
      body.push_back(Stmt{at_line, std::move(stmt)});
    } else if (name == "macro") {
      AEGAEON_TRY_ASSIGN(stmt, macro_statement());
      AEGAEON_TRY(expect_end_tag("endmacro"));
      body.push_back(Stmt{at_line, std::move(stmt)});
    } else if (name == "call") {
      AEGAEON_TRY_ASSIGN(stmt, call_statement());
      body.push_back(Stmt{at_line, std::move(stmt)});
    } else if (name == "filter") {
      AEGAEON_TRY_ASSIGN(filter, filter_application(nullptr));
      AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}'"));
      ast::FilterBlock block{std::move(filter), {}};
      AEGAEON_TRY(parse_until(block.body, {"endfilter"}, "filter"));
      AEGAEON_TRY(expect_end_tag("endfilter"));
      body.push_back(Stmt{at_line, std::move(block)});
    } else if (name == "break" || name == "continue") {
      AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}'"));
      if (name == "break") {
        body.push_back(Stmt{at_line, ast::Break{}});
      } else {
        body.push_back(Stmt{at_line, ast::Continue{}});
      }
    } else {
      return core::error(core::ErrorCode::kInvalidArgument,
                         "line " + std::to_string(at_line) + ": unknown statement '" + name + "'");
    }
    return std::monostate{};
  }

  core::Result<ast::Set> set_statement() {
    AEGAEON_TRY_ASSIGN(target, expression_sequence(false));
    ast::Set set{std::move(target), nullptr, {}};
    if (is(Tok::kEquals)) {
      ++current_;
      AEGAEON_TRY_ASSIGN(value, expression_sequence(false));
      set.value = std::move(value);
    } else {
      AEGAEON_TRY(expect(Tok::kCloseStatement, "'=' or '%}' in {% set %}"));
      AEGAEON_TRY(parse_until(set.body, {"endset"}, "set"));
      current_ += 2;  // {% endset
    }
    AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}'"));
    return set;
  }

  core::Result<ast::If> if_statement() {
    AEGAEON_TRY_ASSIGN(test, expression());
    AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}' after the if condition"));
    ast::If node{std::move(test), {}, {}};
    AEGAEON_TRY(parse_until(node.body, {"elif", "else", "endif"}, "if"));
    if (is_statement({"elif"})) {
      const int at_line = line();
      current_ += 2;
      AEGAEON_TRY_ASSIGN(nested, if_statement());
      node.otherwise.push_back(Stmt{at_line, std::move(nested)});
    } else if (is_statement({"else"})) {
      current_ += 2;
      AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}' after else"));
      AEGAEON_TRY(parse_until(node.otherwise, {"endif"}, "if"));
    }
    return node;
  }

  core::Result<ast::For> for_statement() {
    AEGAEON_TRY_ASSIGN(target, expression_sequence(true));
    const bool valid = std::holds_alternative<ast::Name>(target->node) ||
                       (std::holds_alternative<ast::ArrayLiteral>(target->node) &&
                        std::get<ast::ArrayLiteral>(target->node).tuple);
    if (!valid) return fail("expected a name or names for the loop variable");
    if (!is_identifier("in")) return fail("expected 'in' after the loop variable");
    ++current_;
    AEGAEON_TRY_ASSIGN(iterable, expression());
    AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}' after the for clause"));
    ast::For node{std::move(target), nullptr, nullptr, {}, {}};
    if (auto* select = std::get_if<ast::Select>(&iterable->node)) {  // for x in xs if cond
      node.iterable = std::move(select->value);
      node.condition = std::move(select->condition);
    } else {
      node.iterable = std::move(iterable);
    }
    AEGAEON_TRY(parse_until(node.body, {"endfor", "else"}, "for"));
    if (is_statement({"else"})) {
      current_ += 2;
      AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}' after else"));
      AEGAEON_TRY(parse_until(node.otherwise, {"endfor"}, "for"));
    }
    return node;
  }

  core::Result<ast::Macro> macro_statement() {
    if (!is(Tok::kIdentifier)) return fail("expected the macro's name");
    ast::Macro macro{peek()->value, {}, {}, {}};
    ++current_;
    AEGAEON_TRY_ASSIGN(params, arguments(/*parameters=*/true));
    macro.params = std::move(params);
    AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}' after the macro's parameters"));
    special_names_.push_back({});
    auto parsed = parse_until(macro.body, {"endmacro"}, "macro");
    macro.special = finish_special_names(macro.params);
    if (!parsed.ok()) return parsed.error();
    return macro;
  }

  core::Result<ast::CallBlock> call_statement() {
    ast::CallBlock block;
    if (is(Tok::kOpenParen)) {
      AEGAEON_TRY_ASSIGN(params, arguments(/*parameters=*/true));
      block.caller_params = std::move(params);
    }
    if (!is(Tok::kIdentifier)) return fail("expected the name of the macro to call");
    AEGAEON_TRY_ASSIGN(callee, primary());
    if (!is(Tok::kOpenParen)) return fail("expected '(' after the called macro's name");
    const int at_line = callee->line;
    AEGAEON_TRY_ASSIGN(args, arguments(false));
    block.call = make(at_line, ast::Call{std::move(callee), std::move(args)});
    AEGAEON_TRY(expect(Tok::kCloseStatement, "'%}'"));
    special_names_.push_back({});
    auto parsed = parse_until(block.body, {"endcall"}, "call");
    block.special = finish_special_names(block.caller_params);
    if (!parsed.ok()) return parsed.error();
    AEGAEON_TRY(expect_end_tag("endcall"));
    return block;
  }

  // The special names a macro body read, minus its own parameters of those names.
  ast::SpecialNames finish_special_names(const std::vector<ExprPtr>& params) {
    ast::SpecialNames special = special_names_.back();
    special_names_.pop_back();
    for (const auto& p : params) {
      const std::string& n = std::holds_alternative<ast::Name>(p->node) ? std::get<ast::Name>(p->node).name
                                                                         : std::get<ast::KeywordArg>(p->node).name;
      if (n == "caller") special.caller = false;
      if (n == "kwargs") special.kwargs = false;
      if (n == "varargs") special.varargs = false;
    }
    return special;
  }

  // ---- expressions
  ExprResult expression() {
    const Nesting nesting(*this);
    if (nesting.too_deep()) return fail("the expression nests too deeply");
    return if_expression();
  }

  // a, b, c → a tuple (for-loop targets, set targets, parenthesized tuples).
  ExprResult expression_sequence(bool primary_only) {
    const int at_line = line();
    AEGAEON_TRY_ASSIGN(first, primary_only ? primary() : expression());
    if (!is(Tok::kComma)) return first;
    ast::ArrayLiteral tuple{{}, true};
    tuple.items.push_back(std::move(first));
    while (is(Tok::kComma)) {
      ++current_;
      AEGAEON_TRY_ASSIGN(next, primary_only ? primary() : expression());
      tuple.items.push_back(std::move(next));
    }
    return make(at_line, std::move(tuple));
  }

  ExprResult if_expression() {
    const int at_line = line();
    AEGAEON_TRY_ASSIGN(value, or_expression());
    if (!is_identifier("if")) return value;
    ++current_;
    AEGAEON_TRY_ASSIGN(condition, or_expression());
    if (!is_identifier("else")) return make(at_line, ast::Select{std::move(value), std::move(condition)});
    ++current_;
    const Nesting nesting(*this);
    if (nesting.too_deep()) return fail("the expression nests too deeply");
    AEGAEON_TRY_ASSIGN(otherwise, if_expression());
    return make(at_line, ast::Ternary{std::move(condition), std::move(value), std::move(otherwise)});
  }

  template <typename Next>
  ExprResult left_assoc(Next next, const std::function<bool()>& at_operator) {
    AEGAEON_TRY_ASSIGN(left, (this->*next)());
    while (at_operator()) {
      const int at_line = line();
      std::string op = peek()->value;
      ++current_;
      AEGAEON_TRY_ASSIGN(right, (this->*next)());
      left = make(at_line, ast::Binary{std::move(op), std::move(left), std::move(right)});
    }
    return left;
  }

  ExprResult or_expression() { return left_assoc(&Parser::and_expression, [&] { return is_identifier("or"); }); }
  ExprResult and_expression() { return left_assoc(&Parser::not_expression, [&] { return is_identifier("and"); }); }

  ExprResult not_expression() {
    if (!is_identifier("not")) return comparison();
    const Nesting nesting(*this);
    if (nesting.too_deep()) return fail("the expression nests too deeply");
    const int at_line = line();
    ++current_;
    AEGAEON_TRY_ASSIGN(operand, not_expression());
    return make(at_line, ast::Unary{"not", std::move(operand)});
  }

  ExprResult comparison() {
    AEGAEON_TRY_ASSIGN(left, additive());
    while (true) {
      const int at_line = line();
      std::string op;
      if (is_identifier("not") && is_identifier("in", 1)) {
        op = "not in";
        current_ += 2;
      } else if (is_identifier("in") || is(Tok::kComparison)) {
        op = peek()->value;
        ++current_;
      } else {
        break;
      }
      AEGAEON_TRY_ASSIGN(right, additive());
      left = make(at_line, ast::Binary{std::move(op), std::move(left), std::move(right)});
    }
    return left;
  }

  ExprResult additive() { return left_assoc(&Parser::multiplicative, [&] { return is(Tok::kAdditive); }); }
  ExprResult multiplicative() { return left_assoc(&Parser::power, [&] { return is(Tok::kMultiplicative); }); }
  ExprResult power() { return left_assoc(&Parser::test_expression, [&] { return is(Tok::kPower); }); }

  ExprResult test_expression() {
    AEGAEON_TRY_ASSIGN(operand, filter_expression());
    while (is_identifier("is")) {
      const int at_line = line();
      ++current_;
      const bool negate = is_identifier("not");
      if (negate) ++current_;
      if (!is(Tok::kIdentifier)) return fail("expected a test name after 'is'");
      std::string name = peek()->value;
      ++current_;
      operand = make(at_line, ast::Test{std::move(operand), std::move(name), negate});
    }
    return operand;
  }

  ExprResult filter_expression() {
    AEGAEON_TRY_ASSIGN(operand, unary_sign());
    while (is(Tok::kPipe)) {
      ++current_;
      AEGAEON_TRY_ASSIGN(filtered, filter_application(std::move(operand)));
      operand = std::move(filtered);
    }
    return operand;
  }

  // `name` or `name(args)` applied to `operand` (null for a {% filter %} block).
  ExprResult filter_application(ExprPtr operand) {
    if (!is(Tok::kIdentifier)) return fail("expected a filter name");
    const int at_line = line();
    ast::Filter filter{std::move(operand), peek()->value, {}, false};
    ++current_;
    if (is(Tok::kOpenParen)) {
      AEGAEON_TRY_ASSIGN(args, arguments(false));
      filter.args = std::move(args);
      filter.called = true;
    }
    return make(at_line, std::move(filter));
  }

  ExprResult unary_sign() {
    if ((is(Tok::kUnary) || is(Tok::kAdditive)) && (peek()->value == "-" || peek()->value == "+")) {
      const Nesting nesting(*this);
      if (nesting.too_deep()) return fail("the expression nests too deeply");
      const int at_line = line();
      std::string op = peek()->value;
      ++current_;
      AEGAEON_TRY_ASSIGN(operand, unary_sign());
      return make(at_line, ast::Unary{std::move(op), std::move(operand)});
    }
    return call_member();
  }

  ExprResult call_member() {
    AEGAEON_TRY_ASSIGN(head, primary());
    AEGAEON_TRY_ASSIGN(member, members(std::move(head)));
    if (is(Tok::kOpenParen)) return call(std::move(member));
    return member;
  }

  ExprResult call(ExprPtr callee) {
    const Nesting nesting(*this);
    if (nesting.too_deep()) return fail("the expression nests too deeply");
    const int at_line = line();
    AEGAEON_TRY_ASSIGN(args, arguments(false));
    ExprPtr result = make(at_line, ast::Call{std::move(callee), std::move(args)});
    AEGAEON_TRY_ASSIGN(member, members(std::move(result)));
    if (is(Tok::kOpenParen)) return call(std::move(member));
    return member;
  }

  // (a, k=v, *xs, **kw) for calls; (a, k=default) for macro parameters.
  core::Result<std::vector<ExprPtr>> arguments(bool parameters) {
    AEGAEON_TRY(expect(Tok::kOpenParen, "'('"));
    std::vector<ExprPtr> args;
    bool saw_keyword = false;
    bool saw_spread = false;
    while (!is(Tok::kCloseParen)) {
      if (current_ >= tokens_.size()) return fail("expected ')'");
      const int at_line = line();
      const bool keyword_spread = is(Tok::kPower);
      const bool spread = is(Tok::kMultiplicative) && peek()->value == "*";
      if (parameters && (keyword_spread || spread)) return fail("argument unpacking is not allowed in parameters");
      if (keyword_spread) {
        ++current_;
        AEGAEON_TRY_ASSIGN(value, expression());
        args.push_back(make(at_line, ast::Spread{std::move(value), true}));
        if (is(Tok::kComma)) ++current_;
        if (!is(Tok::kCloseParen)) return fail("'**' must be applied to the last argument");
        break;
      }
      ExprPtr argument;
      if (spread) {
        if (saw_spread) return fail("only one '*' argument unpacking is allowed");
        saw_spread = true;
        ++current_;
        AEGAEON_TRY_ASSIGN(value, expression());
        argument = make(at_line, ast::Spread{std::move(value), false});
      } else {
        AEGAEON_TRY_ASSIGN(value, expression());
        argument = std::move(value);
        if (is(Tok::kEquals)) {
          ++current_;
          auto* name = std::get_if<ast::Name>(&argument->node);
          if (!name) return fail(parameters ? "expected a name for the parameter" : "expected a name for the keyword argument");
          AEGAEON_TRY_ASSIGN(default_value, expression());
          argument = make(at_line, ast::KeywordArg{name->name, std::move(default_value)});
        }
        const bool keyword = std::holds_alternative<ast::KeywordArg>(argument->node);
        if (parameters && !keyword && !std::holds_alternative<ast::Name>(argument->node)) {
          return fail("expected a name for the parameter");
        }
        if (keyword) {
          saw_keyword = true;
        } else if (saw_keyword) {
          return fail(parameters ? "a parameter without a default follows one with a default"
                                 : "a positional argument follows a keyword argument");
        } else if (saw_spread) {
          return fail("a positional argument follows '*' unpacking");
        }
      }
      args.push_back(std::move(argument));
      if (is(Tok::kComma)) ++current_;
    }
    ++current_;  // )
    return args;
  }

  ExprResult members(ExprPtr object) {
    while (is(Tok::kDot) || is(Tok::kOpenSquare)) {
      const int at_line = line();
      const bool computed = is(Tok::kOpenSquare);
      ++current_;
      if (computed) {
        // [a], or a slice [start:stop:step] with any part left out.
        std::vector<ExprPtr> parts;
        bool slice = false;
        bool expecting_part = true;
        while (!is(Tok::kCloseSquare)) {
          if (current_ >= tokens_.size()) return fail("expected ']'");
          if (is(Tok::kColon)) {
            if (expecting_part) parts.push_back(nullptr);
            ++current_;
            slice = true;
            expecting_part = true;
            continue;
          }
          AEGAEON_TRY_ASSIGN(part, expression());
          parts.push_back(std::move(part));
          expecting_part = false;
          if (is(Tok::kColon)) {
            ++current_;
            slice = true;
            expecting_part = true;
          }
        }
        // @huggingface/jinja keeps a part only for each expression or bare ':' it meets.
        if (parts.empty()) return fail("expected an index or a slice inside '[]'");
        ++current_;  // ]
        if (slice) {
          if (parts.size() > 3) return fail("a slice takes at most three parts");
          parts.resize(3);
          object = make(at_line, ast::Slice{std::move(object), std::move(parts[0]), std::move(parts[1]), std::move(parts[2])});
        } else {
          object = make(at_line, ast::Member{std::move(object), std::move(parts[0]), true});
        }
      } else {
        AEGAEON_TRY_ASSIGN(property, primary());
        const bool valid = std::holds_alternative<ast::Name>(property->node) ||
                           (std::holds_alternative<ast::Literal>(property->node) &&
                            std::get<ast::Literal>(property->node).value.is(Value::Kind::kInteger));
        if (!valid) return fail("expected a name or an integer after '.'");
        object = make(at_line, ast::Member{std::move(object), std::move(property), false});
      }
    }
    return object;
  }

  ExprResult primary() {
    const Token* t = peek();
    if (!t) return fail("expected an expression");
    const int at_line = t->line;
    switch (t->type) {
      case Tok::kNumber: {
        ++current_;
        if (t->value.find('.') != std::string::npos) return make(at_line, ast::Literal{Value::floating(std::strtod(t->value.c_str(), nullptr))});
        return make(at_line, ast::Literal{Value::integer(std::strtoll(t->value.c_str(), nullptr, 10))});
      }
      case Tok::kString: {
        std::string value;
        while (is(Tok::kString)) value += tokens_[current_++].value;  // 'a' 'b' concatenates
        return make(at_line, ast::Literal{Value::string(std::move(value))});
      }
      case Tok::kIdentifier: {
        ++current_;
        for (auto& frame : special_names_) {
          if (t->value == "caller") frame.caller = true;
          if (t->value == "kwargs") frame.kwargs = true;
          if (t->value == "varargs") frame.varargs = true;
        }
        return make(at_line, ast::Name{t->value});
      }
      case Tok::kOpenParen: {
        ++current_;
        AEGAEON_TRY_ASSIGN(inner, expression_sequence(false));
        AEGAEON_TRY(expect(Tok::kCloseParen, "')'"));
        return inner;
      }
      case Tok::kOpenSquare: {
        ++current_;
        ast::ArrayLiteral array;
        while (!is(Tok::kCloseSquare)) {
          if (current_ >= tokens_.size()) return fail("expected ']'");
          AEGAEON_TRY_ASSIGN(item, expression());
          array.items.push_back(std::move(item));
          if (is(Tok::kComma)) ++current_;
        }
        ++current_;
        return make(at_line, std::move(array));
      }
      case Tok::kOpenCurly: {
        ++current_;
        ast::ObjectLiteral object;
        while (!is(Tok::kCloseCurly)) {
          if (current_ >= tokens_.size()) return fail("expected '}'");
          AEGAEON_TRY_ASSIGN(key, expression());
          AEGAEON_TRY(expect(Tok::kColon, "':' between a key and its value"));
          AEGAEON_TRY_ASSIGN(value, expression());
          object.entries.emplace_back(std::move(key), std::move(value));
          if (is(Tok::kComma)) ++current_;
        }
        ++current_;
        return make(at_line, std::move(object));
      }
      default: return fail("expected an expression");
    }
  }

  std::vector<Token> tokens_;
  std::size_t current_ = 0;
  std::vector<ast::SpecialNames> special_names_;  // one frame per macro or call block being parsed

  // Recursion depth of the parse (and so of evaluating its tree): bounded, so a hostile or broken
  // template is an error rather than a stack overflow.
  static constexpr int kMaxNesting = 100;
  int nesting_ = 0;
  struct Nesting {
    explicit Nesting(Parser& p) : parser(p) { ++parser.nesting_; }
    ~Nesting() { --parser.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    [[nodiscard]] bool too_deep() const { return parser.nesting_ > kMaxNesting; }
    Parser& parser;
  };
};

}  // namespace

core::Result<Body> parse(std::string_view source) {
  const Source prepared = remove_generation_markers(prepare(source));
  auto tokens = Lexer(prepared).run();
  if (!tokens.ok()) return tokens.error();
  return Parser(std::move(tokens).value()).program();
}

}  // namespace aegaeon::text::jinja
