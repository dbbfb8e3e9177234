// Cluster membership over Cap'n Proto RPC: the controller's Registry server and the worker's
// client. Both run on the KjRuntime thread; the public API is plain data and may be used from
// any other thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cluster_types.hpp"
#include "core/result.hpp"

namespace aegaeon::rpc {

class KjRuntime;

/// The wire version this build speaks (rpc/schema/cluster.capnp protocolVersion).
uint32_t cluster_protocol_version();

/// A node as the registry knows it.
struct RegisteredNode {
  uint64_t node_id = 0;
  core::NodeRegistration registration;
  core::HeartbeatReport last_heartbeat;
  std::chrono::steady_clock::time_point last_seen;
};

/// Serves the Registry interface. Refuses peers with another protocol version or a wrong
/// cluster token, with a message saying which.
class ClusterRegistryServer {
 public:
  /// Listening address, shared secret and hooks (called on the kj thread; must not block).
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 0;  ///< 0 picks an ephemeral port
    std::string cluster_token;
    uint32_t heartbeat_interval_ms = 1000;
    std::function<void(const RegisteredNode&)> on_register;
    std::function<void(const core::HeartbeatReport&)> on_heartbeat;
  };

  /// Binds and serves; fails with kUnavailable naming the address if it cannot bind.
  static core::Result<std::unique_ptr<ClusterRegistryServer>> start(KjRuntime& runtime,
                                                                    Options options);
  ~ClusterRegistryServer();

  /// The bound port.
  [[nodiscard]] uint16_t port() const;
  /// A snapshot of the registered nodes.
  [[nodiscard]] std::vector<RegisteredNode> nodes() const;

  struct Impl;  ///< opaque; defined in cluster_registry.cpp

 private:
  explicit ClusterRegistryServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// A connection to a controller's Registry. Calls block the calling thread (never the kj
/// thread) for at most `timeout`.
class ClusterClient {
 public:
  /// Connects to host:port; fails with kUnavailable when nothing answers.
  static core::Result<std::unique_ptr<ClusterClient>> connect(
      KjRuntime& runtime, const std::string& host, uint16_t port,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~ClusterClient();

  /// Registers this node. kUnauthenticated for a wrong token, kInvalidArgument for a version
  /// mismatch, kUnavailable when the connection fails.
  core::Result<core::RegistrationReply> register_node(const core::NodeRegistration& node,
                                                      const std::string& cluster_token);
  /// Sends a heartbeat; returns whether the controller still knows the node.
  core::Result<bool> heartbeat(const core::HeartbeatReport& beat);

 private:
  struct Impl;
  explicit ClusterClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::rpc
