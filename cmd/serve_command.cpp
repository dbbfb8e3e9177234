#include <CLI/CLI.hpp>

#include "cmd/commands.hpp"

namespace aegaeon::cmd {

void add_serve_command(CLI::App& app) {
  auto* sub = app.add_subcommand("serve", "Serve the OpenAI-compatible API in one process");
  sub->callback([] { throw CommandError("serve: not built yet"); });
}

}  // namespace aegaeon::cmd
