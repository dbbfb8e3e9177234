// Result<T>: a value or an Error. aegaeon code returns these instead of throwing; exceptions
// appear only at process boundaries (cmd/, the HTTP and RPC front doors).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace aegaeon::core {

/// What kind of failure an Error is; front doors map these onto HTTP statuses and exit codes.
enum class ErrorCode {
  kInvalidArgument,   ///< the caller's input is wrong (HTTP 400, CLI usage error)
  kNotFound,          ///< a named thing does not exist (HTTP 404)
  kAlreadyExists,     ///< a named thing exists and must not
  kOutOfRange,        ///< a size or index beyond a limit (HTTP 413 for bodies, 400 for prompts)
  kResourceExhausted, ///< no capacity now, retry later (HTTP 429)
  kFailedPrecondition,///< the system is not in the state the operation needs (HTTP 409)
  kUnavailable,       ///< a peer or device cannot be reached
  kDeadlineExceeded,  ///< a timeout expired
  kCancelled,         ///< the work was cancelled (client gone, shutdown)
  kUnauthenticated,   ///< missing or wrong credentials (HTTP 401)
  kDataLoss,          ///< a file or message is corrupt or truncated
  kInternal,          ///< a bug: an invariant did not hold
};

/// Stable lower-case name of an ErrorCode, used in logs and JSON error objects.
std::string_view to_string(ErrorCode code);

/// A failure: a code for machines and a message for people. Messages name the input that was
/// wrong and what was expected ("config.yaml: key 'http.port': expected an integer").
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string field;  ///< the offending input field (JSON field, config key), when there is one

  /// Returns this error with `context: ` prepended to the message (e.g. a file name).
  [[nodiscard]] Error with_context(std::string_view context) const;
};

/// Builds an Error; a shorthand so call sites read `return error(kNotFound, "...")`.
inline Error error(ErrorCode code, std::string message) { return Error{code, std::move(message), {}}; }

/// A value of type T or an Error. Cheap to move; checked access asserts in debug builds.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}    // NOLINT(google-explicit-constructor)

  /// True when a value is held.
  [[nodiscard]] bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  /// The value; only valid when ok().
  T& value() & { assert(ok()); return std::get<T>(state_); }
  const T& value() const& { assert(ok()); return std::get<T>(state_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; only valid when !ok().
  [[nodiscard]] const Error& error() const { assert(!ok()); return std::get<Error>(state_); }

  /// The value, or `fallback` when this holds an error.
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Error> state_;
};

/// Result of an operation that produces no value.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  [[nodiscard]] const Error& error() const { assert(!ok_); return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

/// Success value for Result<void>.
inline Result<void> ok() { return {}; }

}  // namespace aegaeon::core

/// Evaluates a Result-returning expression and returns its error from the enclosing function.
#define AEGAEON_TRY(expr)                          \
  do {                                             \
    auto aegaeon_try_result_ = (expr);             \
    if (!aegaeon_try_result_.ok()) {               \
      return aegaeon_try_result_.error();          \
    }                                              \
  } while (false)

/// Declares `var` as the value of a Result-returning expression, or returns its error from the
/// enclosing function (for code that unwraps one result after another, such as a parser).
#define AEGAEON_TRY_ASSIGN(var, expr)                         \
  auto var##_aegaeon_result_ = (expr);                        \
  if (!var##_aegaeon_result_.ok()) return var##_aegaeon_result_.error(); \
  auto var = std::move(var##_aegaeon_result_).value()
