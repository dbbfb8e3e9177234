#include "cmd/demo_models.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <unistd.h>

#include "gpu/model/model_synthesizer.hpp"
#include "text/tokenizer.hpp"

namespace aegaeon::embedded {
std::string_view demo_tokenizer_json();
std::string_view demo_tokenizer_config_json();
}  // namespace aegaeon::embedded

namespace aegaeon::cmd {
namespace {

namespace fs = std::filesystem;

// Four sizes and three architectures (Qwen2, Llama, Qwen3) the demo tokenizer fits (its 1122
// ids, added tokens included, are the vocabulary of each): every model has its own KV block
// geometry and weight size, so switches copy different amounts. BF16, as real checkpoints ship.
struct DemoModel {
  const char* name;
  model::Architecture architecture;
  int hidden;
  int layers;
};
constexpr DemoModel kDemoModels[] = {
    {"demo-xs", model::Architecture::kQwen2, 256, 4},
    {"demo-s", model::Architecture::kLlama, 384, 6},
    {"demo-m", model::Architecture::kQwen3, 512, 6},
    {"demo-l", model::Architecture::kLlama, 640, 8},
};
constexpr int kDemoVocab = 1122;

fs::path default_data_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return fs::path(xdg) / "aegaeon";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return fs::path(home) / ".cache" / "aegaeon";
  }
  return fs::temp_directory_path() / "aegaeon";
}

// Where the demo models' generations stop: the tokenizer's end-of-turn and end-of-text tokens,
// listed in their config.json as a real Qwen2.5 folder lists them.
core::Result<std::vector<std::int32_t>> demo_eos_token_ids() {
  auto tokenizer = text::Tokenizer::from_json(embedded::demo_tokenizer_json(), "demo tokenizer.json",
                                              embedded::demo_tokenizer_config_json());
  if (!tokenizer.ok()) return tokenizer.error();
  std::vector<std::int32_t> ids;
  for (const char* token : {"<|im_end|>", "<|endoftext|>"}) {
    auto id = tokenizer->token_to_id(token);
    if (!id) return core::error(core::ErrorCode::kInternal, std::string("the demo tokenizer has no ") + token);
    ids.push_back(*id);
  }
  return ids;
}

core::Result<void> write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return core::error(core::ErrorCode::kUnavailable, "cannot write " + path.string());
  return core::ok();
}

}  // namespace

core::Result<std::vector<worker::ModelSpec>> ensure_demo_models(fs::path data_dir) {
  if (data_dir.empty()) data_dir = default_data_dir();
  // The version in the folder name changes whenever the set changes, so a stale cache of an
  // older set is never served.
  fs::path root = data_dir / "demo-models-v3";
  auto eos_ids = demo_eos_token_ids();
  if (!eos_ids.ok()) return eos_ids.error();
  std::vector<worker::ModelSpec> specs;
  std::uint64_t seed = 1;
  for (const DemoModel& demo : kDemoModels) {
    const std::string name = demo.name;
    fs::path dir = root / name;
    specs.push_back({name, dir});
    model::SynthSpec spec;
    spec.config = model::synth_config(demo.architecture, demo.hidden, demo.layers, kDemoVocab);
    spec.config.eos_token_ids = *eos_ids;
    spec.dtype = backend::DType::kBF16;
    spec.seed = seed++;
    if (fs::exists(dir / "complete")) continue;
    spdlog::info("synthesizing demo model {} ({}, hidden {}, {} layers, bf16) into {} (first start only)",
                 name, model::to_string(demo.architecture), demo.hidden, demo.layers, dir.string());
    // Written aside and renamed into place, so concurrent first starts never see half a model.
    fs::path staging = root / (name + ".partial-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::create_directories(staging, ec);
    if (ec) return core::error(core::ErrorCode::kUnavailable, "cannot create " + staging.string() + ": " + ec.message());
    AEGAEON_TRY(model::write_synthetic_model(staging, spec));
    AEGAEON_TRY(write_file(staging / "tokenizer.json", embedded::demo_tokenizer_json()));
    AEGAEON_TRY(write_file(staging / "tokenizer_config.json", embedded::demo_tokenizer_config_json()));
    AEGAEON_TRY(write_file(staging / "complete", "written by aegaeon serve\n"));
    if (fs::exists(dir) && !fs::exists(dir / "complete")) fs::remove_all(dir, ec);  // a crashed start
    fs::rename(staging, dir, ec);
    if (ec) {
      fs::remove_all(staging);  // another process won the race; its copy is identical
      if (!fs::exists(dir / "complete")) {
        return core::error(core::ErrorCode::kUnavailable, "cannot move " + staging.string() + " to " + dir.string() + ": " + ec.message());
      }
    }
  }
  return specs;
}

core::Result<std::vector<worker::ModelSpec>> models_in(const fs::path& models_dir) {
  std::error_code ec;
  if (!fs::is_directory(models_dir, ec)) {
    return core::error(core::ErrorCode::kNotFound,
                       "serve.models_dir: '" + models_dir.string() + "' is not a directory");
  }
  std::vector<worker::ModelSpec> specs;
  for (const auto& entry : fs::directory_iterator(models_dir, ec)) {
    if (entry.is_directory() && fs::exists(entry.path() / "config.json")) {
      specs.push_back({entry.path().filename().string(), entry.path()});
    }
  }
  std::sort(specs.begin(), specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  if (specs.empty()) {
    return core::error(core::ErrorCode::kNotFound, "serve.models_dir: no model folder (with a config.json) in '" +
                                                       models_dir.string() + "'");
  }
  return specs;
}

}  // namespace aegaeon::cmd
