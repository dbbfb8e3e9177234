// Flags shared by `aegaeon simulate` and `aegaeon plan`: the switches that turn each idea of the
// default aegaeon policy off, for ablations and the paper's variant.
#pragma once

namespace CLI {
class App;
}
namespace aegaeon::sim {
struct SimConfig;
}

namespace aegaeon::cmd {

/// Adds --no-elastic-memory, --no-immediate-turns, --no-bounded-rounds and --no-admission to
/// `sub`, writing into `config` (which must outlive the command).
void add_policy_variant_flags(CLI::App& sub, sim::SimConfig& config);

}  // namespace aegaeon::cmd
