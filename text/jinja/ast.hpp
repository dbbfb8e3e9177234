// The syntax tree of a parsed template: expressions and statements, each with the template line
// it came from (errors name it).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "text/jinja/value.hpp"

namespace aegaeon::text::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using Body = std::vector<Stmt>;

namespace ast {
struct Literal { Value value; };                  // 'text', 42, 1.5
struct Name { std::string name; };                // messages, loop, true
struct Member { ExprPtr object; ExprPtr property; bool computed = false; };  // a.b, a[b], a.0
struct Slice { ExprPtr object; ExprPtr start, stop, step; };                 // a[1:-1:2]; null: absent
struct Call { ExprPtr callee; std::vector<ExprPtr> args; };                 // f(a, k=v, *xs, **kw)
struct Filter { ExprPtr operand; std::string name; std::vector<ExprPtr> args; bool called = false; };  // a | f(x)
struct Test { ExprPtr operand; std::string name; bool negate = false; };   // a is [not] defined
struct Unary { std::string op; ExprPtr operand; };                          // not a, -a
struct Binary { std::string op; ExprPtr left, right; };                     // a + b, a and b, a in b
struct Ternary { ExprPtr condition, if_true, if_false; };                   // a if c else b
struct Select { ExprPtr value, condition; };                                // a if c (undefined when not c)
struct ArrayLiteral { std::vector<ExprPtr> items; bool tuple = false; };   // [a, b] or a, b
struct ObjectLiteral { std::vector<std::pair<ExprPtr, ExprPtr>> entries; };  // {'k': v}
struct KeywordArg { std::string name; ExprPtr value; };                     // k=v in a call
struct Spread { ExprPtr value; bool keywords = false; };                    // *xs, **kw in a call

struct Text { std::string text; };
struct Output { ExprPtr expr; };                                            // {{ expr }}
struct If { ExprPtr test; Body body, otherwise; };
struct For { ExprPtr target; ExprPtr iterable; ExprPtr condition; Body body, otherwise; };
struct Set { ExprPtr target; ExprPtr value; Body body; };                   // value null: block set
/// Which of the implicit names `caller`, `kwargs`, `varargs` a macro or call block reads.
struct SpecialNames { bool caller = false, kwargs = false, varargs = false; };
struct Macro { std::string name; std::vector<ExprPtr> params; Body body; SpecialNames special; };
struct CallBlock { ExprPtr call; std::vector<ExprPtr> caller_params; Body body; SpecialNames special; };
struct FilterBlock { ExprPtr filter; Body body; };                          // filter: a Filter of nothing
struct Break {};
struct Continue {};
}  // namespace ast

struct Expr {
  int line = 0;
  std::variant<ast::Literal, ast::Name, ast::Member, ast::Slice, ast::Call, ast::Filter, ast::Test, ast::Unary,
               ast::Binary, ast::Ternary, ast::Select, ast::ArrayLiteral, ast::ObjectLiteral, ast::KeywordArg,
               ast::Spread>
      node;
};

struct Stmt {
  int line = 0;
  std::variant<ast::Text, ast::Output, ast::If, ast::For, ast::Set, ast::Macro, ast::CallBlock, ast::FilterBlock,
               ast::Break, ast::Continue>
      node;
};

}  // namespace aegaeon::text::jinja
