// Logging set-up: spdlog's default logger writes to stderr as text or as JSON lines (one object
// per line: ts, level, logger, msg), so log shippers can parse it. Code logs through spdlog
// (`spdlog::info(...)`) after init_logging ran once at process start.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/config.hpp"
#include "core/result.hpp"

namespace spdlog {
class logger;
namespace sinks {
class sink;
}  // namespace sinks
}  // namespace spdlog

namespace aegaeon::core {

/// Replaces spdlog's default logger ("aegaeon") with one writing to stderr in `config.format`
/// at `config.level`; an unknown level or format is an error naming the key.
[[nodiscard]] Result<void> init_logging(const LogConfig& config);

/// Same, writing to `sink` instead of stderr (tests, or a file sink).
[[nodiscard]] Result<void> init_logging(const LogConfig& config,
                                        std::shared_ptr<spdlog::sinks::sink> sink);

/// A logger named `name` (the JSON "logger" field) sharing the default logger's sinks, level
/// and format; for a subsystem that wants its own name in the log.
std::shared_ptr<spdlog::logger> named_logger(const std::string& name);

/// What to print instead of a secret (API key, cluster token): "<unset>" when empty, else
/// "<redacted>". Never reveals length or any character of the secret.
std::string redact(std::string_view secret);

/// One JSON log line (without the newline) as the JSON format writes it; exposed for tests
/// and for tools that emit the same shape. `ts` is RFC 3339 UTC with microseconds.
std::string format_json_log_line(std::string_view ts, std::string_view level,
                                 std::string_view logger, std::string_view msg);

}  // namespace aegaeon::core
