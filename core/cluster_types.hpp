// Plain mirrors of rpc/schema/cluster.capnp for in-process use (DESIGN.md rule 3); conversion
// to and from the wire lives in rpc/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aegaeon::core {

/// One device a node offers.
struct DeviceInfo {
  std::string kind;  ///< "cpu" or "cuda"
  uint32_t index = 0;
  uint64_t arena_bytes = 0;
};

/// What a node sends when it joins the cluster.
struct NodeRegistration {
  std::string node_name;
  uint32_t protocol_version = 0;
  std::vector<DeviceInfo> devices;
  uint64_t host_cache_bytes = 0;
  std::vector<std::string> models_on_disk;
  std::vector<std::string> roles;  ///< "prefill", "decode"
};

/// The controller's answer to a registration.
struct RegistrationReply {
  uint64_t node_id = 0;
  uint32_t heartbeat_interval_ms = 0;
};

/// A node's periodic liveness and load report.
struct HeartbeatReport {
  uint64_t node_id = 0;
  uint64_t sequence = 0;
  uint32_t running_requests = 0;
  uint32_t waiting_requests = 0;
  float kv_usage = 0;  ///< 0..1
};

}  // namespace aegaeon::core
