// Helpers of the cluster targets that the replay test uses to prove the harness reaches the
// registry (a fuzzer that only ever hits framing errors would prove little).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aegaeon::fuzz {

/// Valid two-party RPC streams a worker could send: bootstrap + register (+ heartbeats).
std::vector<std::string> cluster_rpc_seeds();

/// Single flat messages: a NodeInfo root, a Heartbeat root, and each RPC message of the seeds.
std::vector<std::string> cluster_message_seeds();

/// How many nodes the fuzzed ClusterRegistryServer has accepted so far in this process.
std::uint64_t cluster_rpc_registrations();

/// The cluster token the fuzzed registry expects (the seeds carry it).
inline constexpr const char* kFuzzClusterToken = "fuzz-cluster-token";

}  // namespace aegaeon::fuzz
