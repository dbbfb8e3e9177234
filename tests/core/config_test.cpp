#include "core/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace aegaeon::core {
namespace {

// Asserts that `result` failed with kInvalidArgument and a message equal to `message`.
template <typename T>
void expect_error_message(const Result<T>& result, const std::string& message) {
  ASSERT_FALSE(result.ok()) << "expected error: " << message;
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.error().message, message);
}

TEST(ConfigParse, DefaultsWhenEmpty) {
  for (const char* text : {"", "# only a comment\n", "---\n"}) {
    const Result<Config> config = parse_config(text, "config.yaml");
    ASSERT_TRUE(config.ok()) << config.error().message;
    EXPECT_EQ(config->http.host, "127.0.0.1");
    EXPECT_EQ(config->http.port, 8000);
    EXPECT_EQ(config->http.max_body_bytes, 1U << 20);
    EXPECT_EQ(config->http.max_header_bytes, 64U << 10);
    EXPECT_EQ(config->http.api_key, "");
    EXPECT_EQ(config->log.level, "info");
    EXPECT_EQ(config->log.format, "text");
  }
}

TEST(ConfigParse, HappyPath) {
  const Result<Config> config = parse_config(R"(
http:
  host: 0.0.0.0
  port: 9000
  max_body_bytes: 2MiB
  max_header_bytes: 8192
  api_key: "sk-test"
log:
  level: off      # YAML 1.1 would call this a boolean; we read the text
  format: json
)",
                                             "config.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->http.host, "0.0.0.0");
  EXPECT_EQ(config->http.port, 9000);
  EXPECT_EQ(config->http.max_body_bytes, 2U << 20);
  EXPECT_EQ(config->http.max_header_bytes, 8192U);
  EXPECT_EQ(config->http.api_key, "sk-test");
  EXPECT_EQ(config->log.level, "off");
  EXPECT_EQ(config->log.format, "json");
}

TEST(ConfigParse, FlatDottedKeys) {
  const Result<Config> config = parse_config("http.port: 9001\nlog:\n  level: warn\n", "c.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->http.port, 9001);
  EXPECT_EQ(config->log.level, "warn");
  expect_error_message(parse_config("http:\n  port: 1\nhttp.port: 2\n", "c.yaml"),
                       "c.yaml:3: duplicate key 'http.port'");
  expect_error_message(parse_config("http.prot: 2\n", "c.yaml"),
                       "c.yaml:1: unknown key 'http.prot' (did you mean 'http.port'?)");
  expect_error_message(parse_config("http.port: x\n", "c.yaml"),
                       "c.yaml:1: key 'http.port': expected an integer in 1..65535, got 'x'");
}

TEST(ConfigParse, EmptySectionKeepsDefaults) {
  const Result<Config> config = parse_config("http:\nlog:\n  level: debug\n", "c.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->http.port, 8000);
  EXPECT_EQ(config->log.level, "debug");
}

TEST(ConfigErrors, WrongTypeNamesFileLineKeyAndExpectation) {
  expect_error_message(
      parse_config("http:\n  port: abc\n", "config.yaml"),
      "config.yaml:2: key 'http.port': expected an integer in 1..65535, got 'abc'");
  expect_error_message(
      parse_config("http:\n  port: 70000\n", "config.yaml"),
      "config.yaml:2: key 'http.port': expected an integer in 1..65535, got '70000'");
  expect_error_message(parse_config("http:\n  port: 0\n", "config.yaml"),
                       "config.yaml:2: key 'http.port': expected an integer in 1..65535, got '0'");
  expect_error_message(parse_config("http:\n  port: -1\n", "config.yaml"),
                       "config.yaml:2: key 'http.port': expected an integer in 1..65535, got '-1'");
  expect_error_message(
      parse_config("http:\n  port: 80.5\n", "config.yaml"),
      "config.yaml:2: key 'http.port': expected an integer in 1..65535, got '80.5'");
  expect_error_message(parse_config("http:\n  port:\n", "config.yaml"),
                       "config.yaml:2: key 'http.port': expected an integer in 1..65535, got an "
                       "empty value");
  expect_error_message(parse_config("http:\n  port: [1, 2]\n", "config.yaml"),
                       "config.yaml:2: key 'http.port': expected an integer in 1..65535, got a "
                       "sequence");
  expect_error_message(parse_config("http:\n  host: ''\n", "config.yaml"),
                       "config.yaml:2: key 'http.host': expected a non-empty string, got an empty "
                       "value");
}

TEST(ConfigErrors, ByteSizes) {
  expect_error_message(
      parse_config("http:\n  max_body_bytes: 1MB\n", "c.yaml"),
      "c.yaml:2: key 'http.max_body_bytes': expected a byte size in 1..1TiB (an integer, "
      "optionally with a KiB/MiB/GiB/TiB suffix), got '1MB'");
  expect_error_message(
      parse_config("http:\n  max_header_bytes: 100\n", "c.yaml"),
      "c.yaml:2: key 'http.max_header_bytes': expected a byte size in 1KiB..16MiB (an integer, "
      "optionally with a KiB/MiB/GiB/TiB suffix), got '100'");
  // Overflow in the suffix multiplication is caught, not wrapped.
  EXPECT_FALSE(parse_config("http:\n  max_body_bytes: 99999999999999TiB\n", "c.yaml").ok());
  const Result<Config> config = parse_config("http:\n  max_body_bytes: 1TiB\n", "c.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->http.max_body_bytes, 1ULL << 40);
}

TEST(ConfigErrors, Enums) {
  expect_error_message(parse_config("log:\n  level: verbose\n", "c.yaml"),
                       "c.yaml:2: key 'log.level': expected one of "
                       "trace|debug|info|warn|error|off, got 'verbose'");
  expect_error_message(parse_config("log:\n  format: xml\n", "c.yaml"),
                       "c.yaml:2: key 'log.format': expected one of text|json, got 'xml'");
}

TEST(ConfigErrors, UnknownKeysSuggest) {
  expect_error_message(parse_config("http:\n  prot: 1\n", "c.yaml"),
                       "c.yaml:2: unknown key 'http.prot' (did you mean 'http.port'?)");
  expect_error_message(parse_config("htpp:\n  port: 1\n", "c.yaml"),
                       "c.yaml:1: unknown key 'htpp' (did you mean 'http'?)");
  expect_error_message(parse_config("port: 1\n", "c.yaml"),
                       "c.yaml:1: unknown key 'port' (did you mean 'http.port'?)");
  const Result<Config> far = parse_config("http:\n  completely_unrelated: 1\n", "c.yaml");
  ASSERT_FALSE(far.ok());
  EXPECT_EQ(far.error().message,
            "c.yaml:2: unknown key 'http.completely_unrelated'; known keys: http.host, http.port, "
            "http.max_body_bytes, http.max_header_bytes, http.api_key, http.tls_cert_file, http.tls_key_file, "
            "log.level, log.format, "
            "serve.models_dir, serve.data_dir, serve.prefill_devices, serve.decode_devices, "
            "serve.device, serve.device_threads, serve.kv_bytes, serve.weight_slots, serve.host_cache_bytes, "
            "serve.ttft_slo_ms, "
            "serve.tbt_slo_ms, "
            "serve.admission, serve.policy, serve.max_prompt_tokens, serve.max_tokens_limit, "
            "admin.enabled, admin.host, admin.port, admin.api_key, "
            "cluster.tls_ca_file, cluster.tls_cert_file, cluster.tls_key_file");
}

TEST(ConfigErrors, StructureAndDuplicates) {
  expect_error_message(parse_config("- a\n- b\n", "c.yaml"),
                       "c.yaml:1: expected a mapping of sections at the top level, got a sequence");
  expect_error_message(parse_config("just a string\n", "c.yaml"),
                       "c.yaml:1: expected a mapping of sections at the top level, got 'just a "
                       "string'");
  expect_error_message(parse_config("http: 8000\n", "c.yaml"),
                       "c.yaml:1: key 'http': expected a mapping, got '8000'");
  expect_error_message(parse_config("http:\n  port: 1\n  port: 2\n", "c.yaml"),
                       "c.yaml:3: duplicate key 'http.port'");
  expect_error_message(parse_config("log: {}\nlog: {}\n", "c.yaml"),
                       "c.yaml:2: duplicate key 'log'");
}

TEST(ConfigErrors, YamlSyntaxNamesFileAndLine) {
  const Result<Config> config = parse_config("http:\n  port: 1\n  host: [unclosed\n", "bad.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(config.error().message.starts_with("bad.yaml:")) << config.error().message;
  EXPECT_NE(config.error().message.find("YAML syntax error"), std::string::npos)
      << config.error().message;

  const Result<Config> tabs = parse_config("http:\n  port: 1\n bad: indent\n", "bad.yaml");
  ASSERT_FALSE(tabs.ok());
  EXPECT_TRUE(tabs.error().message.starts_with("bad.yaml:3:")) << tabs.error().message;
}

TEST(ConfigErrors, SecretNotEchoed) {
  // An api_key can't fail validation today, but a wrong type must not print it either.
  const Result<Config> config = parse_config("http:\n  api_key: [sk-secret]\n", "c.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().message.find("sk-secret"), std::string::npos) << config.error().message;
}

TEST(ConfigFile, LoadsAndReportsMissingFile) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("aegaeon_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "aegaeon.yaml";
  {
    std::ofstream file(path);
    file << "http:\n  port: 8123\nlog:\n  level: warn\n";
  }
  const Result<Config> config = load_config_file(path);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->http.port, 8123);
  EXPECT_EQ(config->log.level, "warn");

  {
    std::ofstream file(path);
    file << "http:\n  port: nope\n";
  }
  const Result<Config> bad = load_config_file(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            path.string() + ":2: key 'http.port': expected an integer in 1..65535, got 'nope'");

  const Result<Config> missing = load_config_file(dir / "missing.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message, (dir / "missing.yaml").string() + ": no such file");

  const Result<Config> directory = load_config_file(dir);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().message, dir.string() + ": not a regular file");
  std::filesystem::remove_all(dir);
}

TEST(ConfigOverride, AppliesAndValidates) {
  Config config;
  ASSERT_TRUE(apply_override(config, "http.port=9000").ok());
  ASSERT_TRUE(apply_override(config, "http.api_key=").ok());     // empty is allowed: no auth
  ASSERT_TRUE(apply_override(config, "http.api_key=a=b").ok());  // only the first '=' splits
  ASSERT_TRUE(apply_override(config, "log.format=json").ok());
  ASSERT_TRUE(apply_override(config, "http.max_body_bytes=4KiB").ok());
  EXPECT_EQ(config.http.port, 9000);
  EXPECT_EQ(config.http.api_key, "a=b");
  EXPECT_EQ(config.log.format, "json");
  EXPECT_EQ(config.http.max_body_bytes, 4096U);

  expect_error_message(apply_override(config, "http.port=abc"),
                       "override: key 'http.port': expected an integer in 1..65535, got 'abc'");
  expect_error_message(apply_override(config, "http.port"),
                       "override 'http.port': expected key=value, e.g. http.port=9000");
  expect_error_message(apply_override(config, "=1"),
                       "override '=1': expected key=value, e.g. http.port=9000");
  expect_error_message(apply_override(config, "log.levle=debug"),
                       "override: unknown key 'log.levle' (did you mean 'log.level'?)");
  expect_error_message(apply_override(config, "http=1"),
                       "override: 'http' is a section, not a key; its keys: http.host, http.port, "
                       "http.max_body_bytes, http.max_header_bytes, http.api_key, http.tls_cert_file, "
                       "http.tls_key_file");
  EXPECT_EQ(config.http.port, 9000);  // failed overrides changed nothing
}

TEST(ConfigOverride, OverridesAfterFileWin) {
  Result<Config> config = parse_config("http:\n  port: 1234\n", "c.yaml");
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(apply_override(*config, "http.port=4321").ok());
  EXPECT_EQ(config->http.port, 4321);
}

TEST(ConfigDescribe, ListsEveryKeyAndRedactsSecrets) {
  Config config;
  config.http.api_key = "sk-very-secret";
  const std::string text = describe_config(config);
  EXPECT_EQ(text,
            "http.host: 127.0.0.1\n"
            "http.port: 8000\n"
            "http.max_body_bytes: 1MiB\n"
            "http.max_header_bytes: 64KiB\n"
            "http.api_key: <redacted>\n"
            "http.tls_cert_file: \n"
            "http.tls_key_file: \n"
            "log.level: info\n"
            "log.format: text\n"
            "serve.models_dir: \n"
            "serve.data_dir: \n"
            "serve.prefill_devices: 1\n"
            "serve.decode_devices: 1\n"
            "serve.device: cpu\n"
            "serve.device_threads: 1\n"
            "serve.kv_bytes: 64MiB\n"
            "serve.weight_slots: 0\n"
            "serve.host_cache_bytes: 0\n"
            "serve.ttft_slo_ms: 10000\n"
            "serve.tbt_slo_ms: 100\n"
            "serve.admission: true\n"
            "serve.policy: aegaeon\n"
            "serve.max_prompt_tokens: 0\n"
            "serve.max_tokens_limit: 0\n"
            "admin.enabled: false\n"
            "admin.host: 127.0.0.1\n"
            "admin.port: 8001\n"
            "admin.api_key: <unset>\n"
            "cluster.tls_ca_file: \n"
            "cluster.tls_cert_file: \n"
            "cluster.tls_key_file: \n");
  // Every described value parses back to the same config through overrides.
  Config round_trip;
  round_trip.http.port = 1;
  for (const std::string& key : config_keys()) {
    if (key == "http.api_key" || key == "admin.api_key") continue;
    const std::size_t start = text.find(key + ": ") + key.size() + 2;
    const std::string value = text.substr(start, text.find('\n', start) - start);
    ASSERT_TRUE(apply_override(round_trip, key + "=" + value).ok()) << key;
  }
  EXPECT_EQ(describe_config(round_trip), describe_config(Config{}));
}

TEST(ConfigServe, ParsesTheServeSectionAndNamesBadValues) {
  auto config = parse_config("serve:\n  decode_devices: 3\n  kv_bytes: 128MiB\n  admission: false\n", "s.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->serve.decode_devices, 3u);
  EXPECT_EQ(config->serve.kv_bytes, 128u << 20);
  EXPECT_FALSE(config->serve.admission);
  auto bad = parse_config("serve:\n  device_threads: 0\n", "s.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("serve.device_threads"), std::string::npos) << bad.error().message;
}

TEST(ConfigAdmin, ParsesTheAdminSectionAndKeepsItsKeySecret) {
  auto config = parse_config("admin:\n  enabled: true\n  port: 0\n  api_key: adm-secret\n", "a.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_TRUE(config->admin.enabled);
  EXPECT_EQ(config->admin.port, 0) << "0 picks a free port";
  EXPECT_EQ(config->admin.host, "127.0.0.1");
  EXPECT_EQ(describe_config(*config).find("adm-secret"), std::string::npos);
  auto bad = parse_config("serve:\n  max_tokens_limit: -1\n", "s.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("serve.max_tokens_limit"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace aegaeon::core
