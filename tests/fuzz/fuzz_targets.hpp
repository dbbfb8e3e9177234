// The fuzz targets: one function per untrusted-input surface, with libFuzzer's
// LLVMFuzzerTestOneInput contract (any bytes in, return 0, never crash or hang). libFuzzer
// binaries wrap one each (libfuzzer_main.cpp); the GoogleTest corpus replay calls them all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace aegaeon::fuzz {

/// One target: its name (the folder under tests/fuzz/corpus/) and its input function.
struct FuzzTarget {
  std::string_view name;
  int (*run)(const std::uint8_t* data, std::size_t size);
};

/// Every target, in a fixed order.
std::span<const FuzzTarget> fuzz_targets();

/// YAML config text through core::parse_config, and each line through core::apply_override.
int fuzz_config(const std::uint8_t* data, std::size_t size);
/// A tokenizer.json through text::Tokenizer::from_json, then encode/decode of fixed texts.
int fuzz_tokenizer_json(const std::uint8_t* data, std::size_t size);
/// Text and token ids through encode/decode of the test tokenizers (first byte picks one).
int fuzz_tokenizer_text(const std::uint8_t* data, std::size_t size);
/// A chat template through text::jinja parse and render (with a step and size budget).
int fuzz_chat_template(const std::uint8_t* data, std::size_t size);
/// A safetensors file through model::read_safetensors_header.
int fuzz_safetensors_header(const std::uint8_t* data, std::size_t size);
/// A config.json through model::parse_model_config and, when valid, expected_tensors().
int fuzz_model_config(const std::uint8_t* data, std::size_t size);
/// A request body through the OpenAI validation (both APIs) and response formatting.
int fuzz_openai_request(const std::uint8_t* data, std::size_t size);
/// Raw bytes from a client to the real HttpServer over loopback; it must answer or close
/// within a deadline and stay responsive.
int fuzz_http_request(const std::uint8_t* data, std::size_t size);
/// The same server over TLS: the first byte picks the plaintext of a real TLS connection (even)
/// or raw bytes at the TLS port (odd); it must answer or close within a deadline.
int fuzz_https_request(const std::uint8_t* data, std::size_t size);
/// A flat Cap'n Proto message read as cluster NodeInfo and Heartbeat with bounded limits.
int fuzz_cluster_message(const std::uint8_t* data, std::size_t size);
/// Raw bytes from a peer to the real ClusterRegistryServer (two-party capnp RPC) over
/// loopback; it must answer or close within a deadline and stay responsive.
int fuzz_cluster_rpc(const std::uint8_t* data, std::size_t size);

/// A JSON Schema through text::JsonGrammar::compile, then text read through the grammar: what
/// it completes must parse as JSON.
int fuzz_json_schema(const std::uint8_t* data, std::size_t size);

/// Reports a broken invariant and aborts, so libFuzzer records the input as a crash and the
/// replay test fails.
[[noreturn]] void fuzz_fail(std::string_view what);

}  // namespace aegaeon::fuzz
