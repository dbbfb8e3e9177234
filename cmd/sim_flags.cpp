#include "cmd/sim_flags.hpp"

#include <CLI/CLI.hpp>
#include <cstdint>

#include "sim/simulator.hpp"

namespace aegaeon::cmd {

void add_policy_variant_flags(CLI::App& sub, sim::SimConfig& config) {
  auto* c = &config;
  sub.add_flag("--no-elastic-memory", [c](std::int64_t) { c->elastic_memory = false; },
               "aegaeon: the paper's device (one model's weights and one batch's KV at a time, prompts only on "
               "prefill devices) instead of several resident models with elastic KV, cost-aware placement with "
               "admission, and prefill on the decode devices that hold the model");
  sub.add_flag("--no-immediate-turns", [c](std::int64_t) { c->immediate_turns = false; },
               "aegaeon: a new decode batch waits for the next round (the paper) instead of joining the running one");
  sub.add_flag("--no-bounded-rounds", [c](std::int64_t) { c->bounded_rounds = false; },
               "aegaeon: decode rounds bounded only by Q_max per batch (the paper) instead of half the TTFT SLO");
  sub.add_flag("--no-adaptive-split", [c](std::int64_t) { c->adaptive_split = false; },
               "aegaeon: keep the --prefill split fixed instead of the prefill device decoding while the models in "
               "demand and their KV fit on the devices (the adaptive split applies with --prefill 1, the default)");
  sub.add_flag("--no-admission", [c](std::int64_t) { c->admission.enabled = false; },
               "Admit every request and serve it however late (the paper's artifact) instead of turning a prompt "
               "away (429) when it is still waiting at its TTFT deadline; applies to every system");
}

}  // namespace aegaeon::cmd
