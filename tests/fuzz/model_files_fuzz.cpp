// Targets "safetensors_header" (untrusted .safetensors files) and "model_config" (untrusted
// config.json files) of a Hugging Face model folder.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "gpu/model/model_config.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/safetensors.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace aegaeon::fuzz {
namespace {

// The reader takes a path, so inputs go through one scratch file per process, removed at exit.
struct ScratchFile {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("aegaeon-fuzz-" + std::to_string(::getpid()) + ".safetensors");
  ~ScratchFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

// expected_tensors() lists every layer's tensors; a config is only expanded when that list is
// small enough for a fuzzing iteration (the real loader then checks each against the file).
constexpr int kMaxExpandedLayers = 4096;

}  // namespace

int fuzz_safetensors_header(const std::uint8_t* data, std::size_t size) {
  static const ScratchFile scratch;
  {
    std::ofstream out(scratch.path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) fuzz_fail("cannot write the scratch file " + scratch.path.string());
  }
  auto entries = model::read_safetensors_header(scratch.path);
  if (!entries.ok()) {
    if (entries.error().message.empty()) fuzz_fail("read_safetensors_header failed without a message");
    return 0;
  }
  // The documented contract: every tensor lies inside the file, after the header.
  for (const auto& entry : *entries) {
    if (entry.file_offset < 8 || entry.file_offset > size || entry.bytes > size - entry.file_offset) {
      fuzz_fail("a tensor accepted by read_safetensors_header lies outside the file");
    }
  }
  return 0;
}

int fuzz_model_config(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto config = model::parse_model_config(json, "fuzz/config.json");
  if (!config.ok()) {
    if (config.error().message.empty()) fuzz_fail("parse_model_config failed without a message");
    return 0;
  }
  (void)config->num_parameters();
  if (config->num_layers <= kMaxExpandedLayers) (void)model::expected_tensors(*config);
  // What the synthesizer writes for a valid config must parse back.
  auto again = model::parse_model_config(model::model_config_to_json(*config), "fuzz/again.json");
  if (!again.ok()) fuzz_fail("model_config_to_json output does not parse back: " + again.error().message);
  return 0;
}

}  // namespace aegaeon::fuzz
