// The aegaeon binary: parses the command line and runs one subcommand.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cmd/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "aegaeon: serve many LLMs on a shared pool of GPUs by switching models between tokens.\n"
      "Run `aegaeon <command> --help` for the options of a command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", AEGAEON_VERSION);
  aegaeon::cmd::add_serve_command(app);
  aegaeon::cmd::add_version_command(app);
  aegaeon::cmd::add_simulate_command(app);
  aegaeon::cmd::add_plan_command(app);
  aegaeon::cmd::add_model_command(app);
  aegaeon::cmd::add_generate_command(app);
  aegaeon::cmd::add_controller_command(app);
  aegaeon::cmd::add_worker_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const aegaeon::cmd::CommandError& e) {
    std::fprintf(stderr, "aegaeon: %s\n", e.what());
    return e.exit_code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aegaeon: fatal: %s\n", e.what());
    return 1;
  }
  return 0;
}
