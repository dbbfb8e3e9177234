// The serving configuration shared by `aegaeon serve` and `aegaeon worker`: the YAML file, --set
// overrides and the options of the serving runtime built from them (defined in
// serve_command.cpp).
#pragma once

#include <string>
#include <vector>

#include "actors/serving_node.hpp"
#include "core/config.hpp"

namespace CLI {
class App;
}

namespace aegaeon::cmd {

/// The configuration flags of a serving command.
struct ServeOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string host;
  int port = -1;
  std::string policy;  ///< --policy: shorthand for --set serve.policy=...
};

/// Adds -c/--config and --set (the configuration every serving command reads) to `command`.
void add_config_options(CLI::App& command, ServeOptions& options);

/// Config from the file (if any), then --set overrides, then the dedicated flags. Throws
/// CommandError naming the bad file or key.
core::Config load_serve_config(const ServeOptions& options);

/// The serving runtime's options from the configuration (the demo set when no models_dir).
actors::ServingOptions serving_options(const core::ServeConfig& serve);

}  // namespace aegaeon::cmd
