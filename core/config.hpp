// Process configuration: plain structs with defaults, loaded from YAML and adjusted by
// `key=value` overrides (the CLI's --set). Both paths go through one table of field
// descriptors in config.cpp; adding a section means adding a struct here, a member to Config
// and its rows to that table.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::core {

/// The OpenAI-compatible HTTP front door.
struct HttpConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::uint64_t max_body_bytes = 1 << 20;     ///< larger request bodies get HTTP 413
  std::uint64_t max_header_bytes = 64 << 10;  ///< larger header blocks get HTTP 431
  std::string api_key;                        ///< empty: no authentication; never logged
  /// HTTPS on this port and the admin port when both are set (PEM files; reloaded on SIGHUP).
  std::string tls_cert_file;
  std::string tls_key_file;
};

/// Mutual TLS between controllers and workers (all three set, or none: plain TCP). Every
/// certificate the CA signed is a member of the cluster; the cluster token is still required.
struct ClusterConfig {
  std::string tls_ca_file;    ///< the cluster's CA: a peer must present a certificate it signed
  std::string tls_cert_file;  ///< this process's certificate, signed by that CA
  std::string tls_key_file;   ///< its private key
};

/// Logging to stderr.
struct LogConfig {
  std::string level = "info";   ///< trace | debug | info | warn | error | off
  std::string format = "text";  ///< text | json (one JSON object per line)
};

/// The serving runtime of `aegaeon serve`: which models, which devices, which SLOs.
struct ServeConfig {
  std::string models_dir;     ///< a folder of Hugging Face model folders; empty: the demo set
  std::string data_dir;       ///< where the demo models are synthesized; empty: ~/.cache/aegaeon
  std::uint32_t prefill_devices = 1;
  std::uint32_t decode_devices = 1;
  /// Where the devices run: "cpu" (the CPU backend), "cuda" (device d on GPU d mod the GPUs
  /// visible) or "cuda:N" (every device on GPU N).
  std::string device = "cpu";
  std::uint32_t device_threads = 1;     ///< CPU backend compute threads per device
  std::uint64_t kv_bytes = 64 << 20;    ///< KV cache region per device
  /// Weight regions per device, each holding one model (sized for the largest): 0 lets the
  /// policy choose (aegaeon: one per served model, so switching among them copies nothing;
  /// request-level and static: 1). Each slot costs device memory: on a GPU set it to what fits.
  std::uint32_t weight_slots = 0;
  /// Host memory for model weights. 0: no limit (every model is loaded at start). On a cluster
  /// worker a limit makes it load only what the controller's placement puts on it, within this
  /// size; `aegaeon serve` refuses to start when its models need more.
  std::uint64_t host_cache_bytes = 0;
  std::uint32_t ttft_slo_ms = 10000;    ///< time-to-first-token SLO (paper: 10 s)
  std::uint32_t tbt_slo_ms = 100;       ///< time-between-tokens SLO (paper: 100 ms)
  bool admission = true;                ///< reject with 429 when the SLO is infeasible
  /// Scheduling policy: aegaeon (token-level preemptive switching) | request-level
  /// (ServerlessLLM-like baseline) | static (one model per device); see actors/policy/serving_policy.hpp.
  std::string policy = "aegaeon";
  /// Longest prompt accepted, in tokens (longer: HTTP 400 naming the prompt); 0: the model's
  /// context is the only bound.
  std::uint32_t max_prompt_tokens = 0;
  /// Cap on a request's max_tokens / max_completion_tokens (above it: HTTP 400 naming the
  /// field); 0: only the model's context bounds them.
  std::uint32_t max_tokens_limit = 0;
};

/// The admin API (model state, drain): a port of its own with a key of its own, so operators can
/// keep it off the network the public API faces.
struct AdminConfig {
  bool enabled = false;             ///< off by default: no admin port is opened
  std::string host = "127.0.0.1";
  std::uint16_t port = 8001;        ///< 0 picks a free port (logged at start)
  std::string api_key;              ///< required when enabled; never logged
};

/// Everything a process reads at start.
struct Config {
  HttpConfig http;
  LogConfig log;
  ServeConfig serve;
  AdminConfig admin;
  ClusterConfig cluster;
};

/// Parses YAML text; `source_name` (usually the file name) prefixes every error message.
/// Missing keys keep their defaults; unknown keys, wrong types and out-of-range values are
/// errors naming the key and what was expected.
[[nodiscard]] Result<Config> parse_config(std::string_view yaml_text, std::string_view source_name);

/// Reads and parses a YAML file.
[[nodiscard]] Result<Config> load_config_file(const std::filesystem::path& path);

/// Applies one `dotted.key=value` override (e.g. "http.port=9000"), validated like YAML.
[[nodiscard]] Result<void> apply_override(Config& config, std::string_view key_equals_value);

/// One line per field, `dotted.key: value`, secrets redacted; for `aegaeon config` and the
/// start-up log.
std::string describe_config(const Config& config);

/// Every settable dotted key, in table order.
std::vector<std::string> config_keys();

}  // namespace aegaeon::core
