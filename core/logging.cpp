#include "core/logging.hpp"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <ctime>

#include "core/utf8.hpp"

namespace aegaeon::core {
namespace {

constexpr std::string_view kDefaultLoggerName = "aegaeon";

struct LevelName {
  std::string_view name;
  spdlog::level::level_enum level;
};
// Config spellings; spdlog's own names differ ("warning", "critical").
constexpr std::array<LevelName, 6> kLevels = {{{"trace", spdlog::level::trace},
                                               {"debug", spdlog::level::debug},
                                               {"info", spdlog::level::info},
                                               {"warn", spdlog::level::warn},
                                               {"error", spdlog::level::err},
                                               {"off", spdlog::level::off}}};

std::string_view level_name(spdlog::level::level_enum level) {
  if (level == spdlog::level::critical) return "critical";
  for (const LevelName& entry : kLevels) {
    if (entry.level == level) return entry.name;
  }
  return "info";
}

// JSON string escaping (RFC 8259): quote, backslash and control characters; ill-formed UTF-8
// becomes U+FFFD so every line stays parseable.
void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  while (!text.empty()) {
    const auto c = static_cast<unsigned char>(text[0]);
    if (c >= 0x80) {
      const std::size_t length = utf8_sequence_length(text);
      if (length == 0) {
        out += "\\ufffd";
        text.remove_prefix(1);
      } else {
        out.append(text.substr(0, length));
        text.remove_prefix(length);
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    text.remove_prefix(1);
  }
  out += '"';
}

// RFC 3339 UTC with microseconds: 2026-11-25T14:52:45.123456Z.
std::string format_timestamp(std::chrono::system_clock::time_point time) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  long fraction = static_cast<long>(micros % 1000000);
  if (fraction < 0) {  // before 1970: keep the fraction positive
    fraction += 1000000;
    --seconds;
  }
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  char micro_text[16];
  std::snprintf(micro_text, sizeof micro_text, ".%06ldZ", fraction);
  return std::string(buffer, length) + micro_text;
}

// spdlog formatter for the JSON-lines format.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line =
        format_json_log_line(format_timestamp(msg.time), level_name(msg.level),
                             std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                             std::string_view(msg.payload.data(), msg.payload.size()));
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLogFormatter>();
  }
};

}  // namespace

std::string format_json_log_line(std::string_view ts, std::string_view level,
                                 std::string_view logger, std::string_view msg) {
  std::string out;
  out.reserve(64 + msg.size());
  out += "{\"ts\":";
  append_json_string(out, ts);
  out += ",\"level\":";
  append_json_string(out, level);
  out += ",\"logger\":";
  append_json_string(out, logger);
  out += ",\"msg\":";
  append_json_string(out, msg);
  out += '}';
  return out;
}

Result<void> init_logging(const LogConfig& config, std::shared_ptr<spdlog::sinks::sink> sink) {
  const LevelName* level = nullptr;
  for (const LevelName& entry : kLevels) {
    if (entry.name == config.level) level = &entry;
  }
  if (level == nullptr) {
    return error(ErrorCode::kInvalidArgument,
                 "key 'log.level': expected one of trace|debug|info|warn|error|off, got '" +
                     config.level + "'");
  }
  if (config.format != "text" && config.format != "json") {
    return error(ErrorCode::kInvalidArgument,
                 "key 'log.format': expected one of text|json, got '" + config.format + "'");
  }
  if (!sink) return error(ErrorCode::kInvalidArgument, "init_logging: no sink given");

  auto logger = std::make_shared<spdlog::logger>(std::string(kDefaultLoggerName), std::move(sink));
  if (config.format == "json") {
    logger->set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%f %^%-5l%$ [%n] %v");
  }
  logger->set_level(level->level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return ok();
}

Result<void> init_logging(const LogConfig& config) {
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (config.format == "json") {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();  // no colour codes in JSON
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();  // colour only on a tty
  }
  return init_logging(config, std::move(sink));
}

std::shared_ptr<spdlog::logger> named_logger(const std::string& name) {
  return spdlog::default_logger()->clone(name);
}

std::string redact(std::string_view secret) { return secret.empty() ? "<unset>" : "<redacted>"; }

}  // namespace aegaeon::core
