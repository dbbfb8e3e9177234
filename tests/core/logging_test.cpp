#include "core/logging.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace aegaeon::core {
namespace {

// Points spdlog's default logger at a string stream for one test, and back to stderr after.
class LoggingTest : public ::testing::Test {
 protected:
  void TearDown() override { ASSERT_TRUE(init_logging(LogConfig{}).ok()); }

  void init(const std::string& level, const std::string& format) {
    LogConfig config;
    config.level = level;
    config.format = format;
    ASSERT_TRUE(
        init_logging(config, std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)).ok());
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(stream_.str());
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  std::ostringstream stream_;
};

TEST_F(LoggingTest, JsonLinesAreValidJsonWithEscaping) {
  init("debug", "json");
  spdlog::info("plain message {}", 42);
  spdlog::warn("quotes \" backslash \\ newline \n tab \t bell \x07 bad utf8 \xff end");
  spdlog::debug("caf\xc3\xa9 {}", "\xe2\x9c\x93");
  named_logger("gpu")->error("from a subsystem");
  spdlog::trace("below the level, not written");

  const std::vector<std::string> written = lines();
  ASSERT_EQ(written.size(), 4U) << stream_.str();  // the embedded newline was escaped
  std::vector<nlohmann::json> parsed;
  for (const std::string& line : written) {
    ASSERT_TRUE(nlohmann::json::accept(line)) << line;
    parsed.push_back(nlohmann::json::parse(line));
  }
  EXPECT_EQ(parsed[0]["msg"], "plain message 42");
  EXPECT_EQ(parsed[0]["level"], "info");
  EXPECT_EQ(parsed[0]["logger"], "aegaeon");
  EXPECT_EQ(parsed[1]["msg"],
            "quotes \" backslash \\ newline \n tab \t bell \x07 bad utf8 \xEF\xBF\xBD end");
  EXPECT_EQ(parsed[1]["level"], "warn");
  EXPECT_EQ(parsed[2]["msg"], "caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_EQ(parsed[2]["level"], "debug");
  EXPECT_EQ(parsed[3]["logger"], "gpu");
  EXPECT_EQ(parsed[3]["level"], "error");
  for (const nlohmann::json& object : parsed) {
    EXPECT_EQ(object.size(), 4U);
    const std::string ts = object["ts"];
    // 2026-11-25T14:52:45.123456Z
    ASSERT_EQ(ts.size(), 27U) << ts;
    EXPECT_EQ(ts[10], 'T');
    EXPECT_EQ(ts[19], '.');
    EXPECT_EQ(ts.back(), 'Z');
  }
}

TEST_F(LoggingTest, TextFormatAndLevelFilter) {
  init("warn", "text");
  spdlog::info("hidden");
  spdlog::warn("shown {}", 1);
  const std::vector<std::string> written = lines();
  ASSERT_EQ(written.size(), 1U) << stream_.str();
  EXPECT_NE(written[0].find("[aegaeon] shown 1"), std::string::npos) << written[0];
  EXPECT_NE(written[0].find("warning"), std::string::npos) << written[0];
}

TEST_F(LoggingTest, OffWritesNothing) {
  init("off", "json");
  spdlog::error("nothing");
  EXPECT_EQ(stream_.str(), "");
}

TEST(Logging, RejectsBadLevelAndFormat) {
  LogConfig config;
  config.level = "loud";
  Result<void> result = init_logging(config);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message,
            "key 'log.level': expected one of trace|debug|info|warn|error|off, got 'loud'");
  config.level = "info";
  config.format = "xml";
  result = init_logging(config);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message, "key 'log.format': expected one of text|json, got 'xml'");
}

TEST(Logging, JsonLineShape) {
  EXPECT_EQ(format_json_log_line("t", "info", "l", "a\"b\x01"),
            R"({"ts":"t","level":"info","logger":"l","msg":"a\"b\u0001"})");
}

TEST(Logging, RedactHidesSecrets) {
  EXPECT_EQ(redact(""), "<unset>");
  EXPECT_EQ(redact("sk-1234567890"), "<redacted>");
  EXPECT_EQ(redact("x").find('x'), std::string::npos);
}

}  // namespace
}  // namespace aegaeon::core
