// Subcommands of the `aegaeon` binary. Each add_*_command registers its CLI11 subcommand and
// the callback that runs it; the callback throws CommandError for a failure to report.
#pragma once

#include <stdexcept>

namespace CLI {
class App;
}

namespace aegaeon::cmd {

/// A failure a subcommand reports to the user: main prints the message and exits with `exit_code`.
struct CommandError : std::runtime_error {
  CommandError(const std::string& message, int exit_code = 1)
      : std::runtime_error(message), exit_code(exit_code) {}
  int exit_code;
};

/// `aegaeon version`: prints the version and the components it was built with.
void add_version_command(CLI::App& app);
/// `aegaeon serve`: everything in one process (HTTP API, actors, CPU backend).
void add_serve_command(CLI::App& app);
/// `aegaeon simulate`: the scheduling policies and baselines in virtual time on measured profiles.
void add_simulate_command(CLI::App& app);
/// `aegaeon plan`: the fewest devices (and prefill/decode split) reaching the target attainment.
void add_plan_command(CLI::App& app);
/// `aegaeon model synth`: writes a random-weight Hugging Face model folder with a trained tokenizer.
void add_model_command(CLI::App& app);
/// `aegaeon generate`: one-shot text generation from a model folder on the CPU backend.
void add_generate_command(CLI::App& app);
/// `aegaeon controller` / `aegaeon worker`: the cluster's front door and its serving processes.
void add_controller_command(CLI::App& app);
void add_worker_command(CLI::App& app);

}  // namespace aegaeon::cmd
