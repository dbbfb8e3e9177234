// The simulator's data, compiled into the binary (sim/CMakeLists.txt embeds the files), so
// `aegaeon simulate` and `aegaeon plan` work from any directory of an installed product.
#pragma once

#include <string_view>

namespace aegaeon::sim {
/// The path that names the built-in profiles (ProfileTable::load) or lengths trace (load_trace).
inline constexpr const char* kBuiltinData = "builtin";
}  // namespace aegaeon::sim

namespace aegaeon::embedded {

/// sim/data/profiles.csv: measured prefill and decode times (the Aegaeon artifact's, vLLM fp16).
std::string_view sim_profiles_csv();
/// sim/data/traces/synth-40-0.5-1.0-1.0.csv: ShareGPT-like (input, output) lengths.
std::string_view sim_lengths_csv();

}  // namespace aegaeon::embedded
