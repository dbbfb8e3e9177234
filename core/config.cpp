#include "core/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <system_error>

#include "core/file.hpp"
#include "core/logging.hpp"

namespace aegaeon::core {
namespace {

// One settable field. YAML loading and `key=value` overrides both end in `parse`, so a field
// is validated identically whichever way it is set.
struct Field {
  std::string key;       // dotted: "http.port"
  std::string expected;  // completes "expected ...": "an integer in 1..65535"
  bool secret = false;   // shown redacted by describe_config
  std::function<bool(Config&, std::string_view)> parse;  // false: text is not `expected`
  std::function<std::string(const Config&)> show;
};

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

// "1048576", "1MiB", "64KiB": binary suffixes only, so a size never means two things.
std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  static constexpr std::pair<std::string_view, int> kSuffixes[] = {
      {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
  int shift = 0;
  for (const auto& [suffix, bits] : kSuffixes) {
    if (text.size() > suffix.size() && text.ends_with(suffix)) {
      text.remove_suffix(suffix.size());
      shift = bits;
      break;
    }
  }
  const std::optional<std::uint64_t> number = parse_unsigned(text);
  if (!number || (shift > 0 && *number > (std::numeric_limits<std::uint64_t>::max() >> shift))) {
    return std::nullopt;
  }
  return *number << shift;
}

std::string format_byte_size(std::uint64_t bytes) {
  static constexpr std::pair<std::string_view, int> kSuffixes[] = {
      {"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}};
  for (const auto& [suffix, bits] : kSuffixes) {
    const std::uint64_t unit = std::uint64_t{1} << bits;
    if (bytes >= unit && bytes % unit == 0)
      return std::to_string(bytes / unit) + std::string(suffix);
  }
  return std::to_string(bytes);
}

template <typename Section, typename Int>
Field integer_field(std::string key, Section Config::*section, Int Section::*member,
                    std::uint64_t min, std::uint64_t max) {
  Field field;
  field.key = std::move(key);
  field.expected = "an integer in " + std::to_string(min) + ".." + std::to_string(max);
  field.parse = [=](Config& config, std::string_view text) {
    const std::optional<std::uint64_t> value = parse_unsigned(text);
    if (!value || *value < min || *value > max) return false;
    (config.*section).*member = static_cast<Int>(*value);
    return true;
  };
  field.show = [=](const Config& config) { return std::to_string((config.*section).*member); };
  return field;
}

template <typename Section>
Field byte_size_field(std::string key, Section Config::*section, std::uint64_t Section::*member,
                      std::uint64_t min, std::uint64_t max) {
  Field field;
  field.key = std::move(key);
  field.expected = "a byte size in " + format_byte_size(min) + ".." + format_byte_size(max) +
                   " (an integer, optionally with a KiB/MiB/GiB/TiB suffix)";
  field.parse = [=](Config& config, std::string_view text) {
    const std::optional<std::uint64_t> value = parse_byte_size(text);
    if (!value || *value < min || *value > max) return false;
    (config.*section).*member = *value;
    return true;
  };
  field.show = [=](const Config& config) { return format_byte_size((config.*section).*member); };
  return field;
}

template <typename Section>
Field string_field(std::string key, Section Config::*section, std::string Section::*member,
                   bool allow_empty, bool secret = false) {
  Field field;
  field.key = std::move(key);
  field.expected = allow_empty ? "a string" : "a non-empty string";
  field.secret = secret;
  field.parse = [=](Config& config, std::string_view text) {
    if (text.empty() && !allow_empty) return false;
    (config.*section).*member = std::string(text);
    return true;
  };
  field.show = [=](const Config& config) { return (config.*section).*member; };
  return field;
}

template <typename Section>
Field enum_field(std::string key, Section Config::*section, std::string Section::*member,
                 std::vector<std::string_view> choices) {
  Field field;
  field.key = std::move(key);
  field.expected = "one of ";
  for (std::size_t i = 0; i < choices.size(); ++i) {
    field.expected += (i > 0 ? "|" : "") + std::string(choices[i]);
  }
  field.parse = [=](Config& config, std::string_view text) {
    if (std::find(choices.begin(), choices.end(), text) == choices.end()) return false;
    (config.*section).*member = std::string(text);
    return true;
  };
  field.show = [=](const Config& config) { return (config.*section).*member; };
  return field;
}

// Accepts the YAML 1.1 spellings people write: true/false, yes/no, on/off.
template <typename Section>
Field bool_field(std::string key, Section Config::*section,
                                  bool Section::*member) {
  Field field;
  field.key = std::move(key);
  field.expected = "a boolean (true|false)";
  field.parse = [=](Config& config, std::string_view text) {
    if (text == "true" || text == "yes" || text == "on") {
      (config.*section).*member = true;
    } else if (text == "false" || text == "no" || text == "off") {
      (config.*section).*member = false;
    } else {
      return false;
    }
    return true;
  };
  field.show = [=](const Config& config) { return (config.*section).*member ? "true" : "false"; };
  return field;
}

// The one table of settable fields. A new section adds its rows here.
const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    std::vector<Field> t;
    t.push_back(string_field("http.host", &Config::http, &HttpConfig::host, false));
    t.push_back(integer_field("http.port", &Config::http, &HttpConfig::port, 1, 65535));
    t.push_back(byte_size_field("http.max_body_bytes", &Config::http, &HttpConfig::max_body_bytes,
                                1, std::uint64_t{1} << 40));
    t.push_back(byte_size_field("http.max_header_bytes", &Config::http,
                                &HttpConfig::max_header_bytes, 1 << 10, 16 << 20));
    t.push_back(string_field("http.api_key", &Config::http, &HttpConfig::api_key, true, true));
    t.push_back(string_field("http.tls_cert_file", &Config::http, &HttpConfig::tls_cert_file, true));
    t.push_back(string_field("http.tls_key_file", &Config::http, &HttpConfig::tls_key_file, true));
    t.push_back(enum_field("log.level", &Config::log, &LogConfig::level,
                           {"trace", "debug", "info", "warn", "error", "off"}));
    t.push_back(enum_field("log.format", &Config::log, &LogConfig::format, {"text", "json"}));
    t.push_back(string_field("serve.models_dir", &Config::serve, &ServeConfig::models_dir, true));
    t.push_back(string_field("serve.data_dir", &Config::serve, &ServeConfig::data_dir, true));
    t.push_back(integer_field("serve.prefill_devices", &Config::serve, &ServeConfig::prefill_devices, 1, 64));
    t.push_back(integer_field("serve.decode_devices", &Config::serve, &ServeConfig::decode_devices, 1, 64));
    t.push_back(string_field("serve.device", &Config::serve, &ServeConfig::device, false));
    t.push_back(integer_field("serve.device_threads", &Config::serve, &ServeConfig::device_threads, 1, 1024));
    t.push_back(byte_size_field("serve.kv_bytes", &Config::serve, &ServeConfig::kv_bytes, 1 << 20,
                                std::uint64_t{1} << 40));
    t.push_back(integer_field("serve.weight_slots", &Config::serve, &ServeConfig::weight_slots, 0, 1024));
    t.push_back(byte_size_field("serve.host_cache_bytes", &Config::serve, &ServeConfig::host_cache_bytes, 0,
                                std::uint64_t{1} << 50));
    t.push_back(integer_field("serve.ttft_slo_ms", &Config::serve, &ServeConfig::ttft_slo_ms, 1, 3600000));
    t.push_back(integer_field("serve.tbt_slo_ms", &Config::serve, &ServeConfig::tbt_slo_ms, 1, 600000));
    t.push_back(bool_field("serve.admission", &Config::serve, &ServeConfig::admission));
    t.push_back(enum_field("serve.policy", &Config::serve, &ServeConfig::policy,
                           {"aegaeon", "request-level", "static"}));
    t.push_back(integer_field("serve.max_prompt_tokens", &Config::serve, &ServeConfig::max_prompt_tokens,
                              0, 1 << 24));
    t.push_back(integer_field("serve.max_tokens_limit", &Config::serve, &ServeConfig::max_tokens_limit,
                              0, 1 << 24));
    t.push_back(bool_field("admin.enabled", &Config::admin, &AdminConfig::enabled));
    t.push_back(string_field("admin.host", &Config::admin, &AdminConfig::host, false));
    t.push_back(integer_field("admin.port", &Config::admin, &AdminConfig::port, 0, 65535));
    t.push_back(string_field("admin.api_key", &Config::admin, &AdminConfig::api_key, true, true));
    t.push_back(string_field("cluster.tls_ca_file", &Config::cluster, &ClusterConfig::tls_ca_file, true));
    t.push_back(string_field("cluster.tls_cert_file", &Config::cluster, &ClusterConfig::tls_cert_file, true));
    t.push_back(string_field("cluster.tls_key_file", &Config::cluster, &ClusterConfig::tls_key_file, true));
    return t;
  }();
  return table;
}

std::string_view section_of(std::string_view key) { return key.substr(0, key.find('.')); }

std::vector<std::string> section_names() {
  std::vector<std::string> sections;
  for (const Field& field : fields()) {
    const std::string section(section_of(field.key));
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      sections.push_back(section);
    }
  }
  return sections;
}

const Field* find_field(std::string_view key) {
  for (const Field& field : fields()) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "unknown key 'http.prot' (did you mean 'http.port'?)", or the list of valid keys.
std::string unknown_key_message(std::string_view key) {
  const std::vector<std::string> sections = section_names();
  if (std::find(sections.begin(), sections.end(), key) != sections.end()) {
    std::string message = "'" + std::string(key) + "' is a section, not a key; its keys: ";
    bool first = true;
    for (const Field& field : fields()) {
      if (section_of(field.key) != key) continue;
      message += (first ? "" : ", ") + field.key;
      first = false;
    }
    return message;
  }
  std::vector<std::string> candidates = config_keys();
  candidates.insert(candidates.end(), sections.begin(), sections.end());
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const std::string& candidate : candidates) {
    std::size_t distance = edit_distance(key, candidate);
    // A leaf written without its section ("port" for "http.port") is a close match too.
    const std::size_t dot = candidate.find('.');
    if (dot != std::string::npos && key == std::string_view(candidate).substr(dot + 1))
      distance = 1;
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  std::string message = "unknown key '" + std::string(key) + "'";
  if (best_distance <= std::max<std::size_t>(2, key.size() / 4)) {
    return message + " (did you mean '" + best + "'?)";
  }
  message += "; known keys: ";
  const std::vector<std::string> keys = config_keys();
  for (std::size_t i = 0; i < keys.size(); ++i) message += (i > 0 ? ", " : "") + keys[i];
  return message;
}

// The shared path: finds the field and parses the text, or says what was expected.
Result<void> set_field(Config& config, std::string_view key, std::string_view text) {
  const Field* field = find_field(key);
  if (field == nullptr) return error(ErrorCode::kInvalidArgument, unknown_key_message(key));
  if (!field->parse(config, text)) {
    const std::string got = text.empty()
                                ? "an empty value"
                                : "'" + (field->secret ? redact(text) : std::string(text)) + "'";
    return error(ErrorCode::kInvalidArgument,
                 "key '" + field->key + "': expected " + field->expected + ", got " + got);
  }
  return ok();
}

std::string node_kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Null:
      return "an empty value";
    default:
      return "'" + node.Scalar() + "'";
  }
}

// "config.yaml:3" (1-based line) when the node knows where it came from.
std::string location(std::string_view source, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return std::string(source);
  return std::string(source) + ":" + std::to_string(mark.line + 1);
}

Result<Config> walk_document(const YAML::Node& root, std::string_view source) {
  Config config;
  if (!root.IsDefined() || root.IsNull()) return config;  // an empty file: all defaults
  const auto fail = [&](const YAML::Node& at, const std::string& message) -> Error {
    return error(ErrorCode::kInvalidArgument, location(source, at) + ": " + message);
  };
  if (!root.IsMap()) {
    return fail(root, "expected a mapping of sections at the top level, got " + node_kind(root));
  }
  const std::vector<std::string> sections = section_names();
  std::set<std::string> seen;
  // One dotted key with its YAML value, however it was written (nested or "http.port: 1").
  const auto set_key = [&](const YAML::Node& key_node, const std::string& key,
                           const YAML::Node& value) -> Result<void> {
    if (!seen.insert(key).second) return fail(key_node, "duplicate key '" + key + "'");
    if (!value.IsScalar() && !value.IsNull()) {
      const Field* field = find_field(key);
      if (field == nullptr) return fail(key_node, unknown_key_message(key));
      return fail(value,
                  "key '" + key + "': expected " + field->expected + ", got " + node_kind(value));
    }
    const Result<void> set = set_field(config, key, value.IsNull() ? "" : value.Scalar());
    if (!set.ok()) return fail(value.IsNull() ? key_node : value, set.error().message);
    return ok();
  };
  for (const auto& section_entry : root) {
    const YAML::Node& section_key = section_entry.first;
    const YAML::Node& section_value = section_entry.second;
    if (!section_key.IsScalar()) return fail(section_key, "expected a section name");
    const std::string section = section_key.Scalar();
    if (section.find('.') != std::string::npos) {  // a flat "http.port: 9000" line
      AEGAEON_TRY(set_key(section_key, section, section_value));
      continue;
    }
    if (!seen.insert(section).second) return fail(section_key, "duplicate key '" + section + "'");
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      return fail(section_key, unknown_key_message(section));
    }
    if (section_value.IsNull()) continue;  // "http:" with nothing below: defaults
    if (!section_value.IsMap()) {
      return fail(section_value,
                  "key '" + section + "': expected a mapping, got " + node_kind(section_value));
    }
    for (const auto& entry : section_value) {
      if (!entry.first.IsScalar()) return fail(entry.first, "expected a key name");
      AEGAEON_TRY(set_key(entry.first, section + "." + entry.first.Scalar(), entry.second));
    }
  }
  return config;
}

}  // namespace

Result<Config> parse_config(std::string_view yaml_text, std::string_view source_name) {
  // yaml-cpp reports through exceptions; they stop here so the rest of aegaeon sees Results.
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    return walk_document(root, source_name);
  } catch (const YAML::Exception& e) {
    std::string where(source_name);
    if (!e.mark.is_null()) {
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    }
    return error(ErrorCode::kInvalidArgument, where + ": YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    return error(ErrorCode::kInvalidArgument, std::string(source_name) + ": " + e.what());
  }
}

Result<Config> load_config_file(const std::filesystem::path& path) {
  AEGAEON_TRY_ASSIGN(text, read_file(path));
  return parse_config(text, path.string());
}

Result<void> apply_override(Config& config, std::string_view key_equals_value) {
  const std::size_t equals = key_equals_value.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    return error(ErrorCode::kInvalidArgument, "override '" + std::string(key_equals_value) +
                                                  "': expected key=value, e.g. http.port=9000");
  }
  const Result<void> set =
      set_field(config, key_equals_value.substr(0, equals), key_equals_value.substr(equals + 1));
  if (!set.ok()) return set.error().with_context("override");
  return ok();
}

std::string describe_config(const Config& config) {
  std::string out;
  for (const Field& field : fields()) {
    out +=
        field.key + ": " + (field.secret ? redact(field.show(config)) : field.show(config)) + "\n";
  }
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const Field& field : fields()) keys.push_back(field.key);
  return keys;
}

}  // namespace aegaeon::core
