// The embedded default's models: four small models of different sizes (Qwen2 and Llama
// architectures) synthesized once into a data directory, so `aegaeon serve` runs with no
// configuration and no downloads, and switches models because only one fits a weights region.
#pragma once

#include <filesystem>
#include <vector>

#include "core/result.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::cmd {

/// The demo models under `data_dir` (default: $XDG_CACHE_HOME/aegaeon or ~/.cache/aegaeon),
/// synthesizing any that are missing. Idempotent: a complete folder is reused as it is.
core::Result<std::vector<worker::ModelSpec>> ensure_demo_models(std::filesystem::path data_dir);

/// Every subfolder of `models_dir` holding a config.json, served under the folder's name.
core::Result<std::vector<worker::ModelSpec>> models_in(const std::filesystem::path& models_dir);

}  // namespace aegaeon::cmd
