#include <CLI/CLI.hpp>
#include <caf/config.hpp>
#include <cstdio>

#include "cmd/commands.hpp"

namespace aegaeon::cmd {

void add_version_command(CLI::App& app) {
  auto* sub = app.add_subcommand("version", "Print the aegaeon version and build components");
  sub->callback([] {
    std::printf("aegaeon %s\n", AEGAEON_VERSION);
    std::printf("  caf %d.%d.%d\n", CAF_VERSION / 10000, CAF_VERSION / 100 % 100, CAF_VERSION % 100);
#ifdef AEGAEON_HAVE_CUDA_BACKEND
    std::printf("  cuda backend: built\n");
#else
    std::printf("  cuda backend: not built\n");
#endif
  });
}

}  // namespace aegaeon::cmd
