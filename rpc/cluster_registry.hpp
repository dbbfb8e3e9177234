// Cluster membership and remote generations over Cap'n Proto RPC: the controller's Registry
// server (which also submits generations to registered workers) and the worker's client (which
// runs them). Both run on the KjRuntime thread; the public API is plain data and may be used
// from any other thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cluster_types.hpp"
#include "core/result.hpp"
#include "rpc/tls.hpp"

namespace aegaeon::rpc {

class KjRuntime;

/// The wire version this build speaks (rpc/schema/cluster.capnp protocolVersion).
uint32_t cluster_protocol_version();

/// A node as the registry knows it. `last_heartbeat.held_models` is what it holds now (from its
/// registration until its first heartbeat).
struct RegisteredNode {
  uint64_t node_id = 0;
  core::NodeRegistration registration;
  core::HeartbeatReport last_heartbeat;
  std::chrono::steady_clock::time_point last_seen;
  bool can_generate = false;  ///< it registered a Worker capability
};

/// The worker's end of one generation the controller submitted. Copies share the generation.
class GenerationStream {
 public:
  /// Queues `update` for the controller (tokens in order; `finished` ends the generation). The
  /// wire is flow-controlled on the kj thread; this never waits for the network. Returns false
  /// once the generation was cancelled or the controller is gone: stop producing.
  bool send(core::GenerationUpdate update) const;

  struct Link;  ///< opaque; defined in cluster_registry.cpp
  explicit GenerationStream(std::shared_ptr<Link> link);

 private:
  std::shared_ptr<Link> link_;
};

/// What a worker does with the generations the controller submits. All run on the kj thread
/// and must not block (hand the work to an actor).
struct WorkerHandlers {
  /// Starts generation `id` (unique in this process); its output goes to `stream`. A
  /// prefill-only worker ends it with an update carrying `handoff` (its blob set).
  std::function<void(uint64_t id, core::GenerationJob job, GenerationStream stream)> start;
  /// The controller cancelled generation `id`, or its connection is gone: free it.
  std::function<void(uint64_t id)> cancel;
  /// Whether this worker can adopt `handoff` for `job` (model served, sizes sane); checked
  /// before any KV byte is pulled. Null: it decodes nothing another worker prefilled.
  std::function<core::Result<void>(const core::GenerationJob& job, const core::KvHandoff& handoff)> accepts;
  /// Continues generation `id` from `handoff`, whose blob was pulled from the prefill worker.
  std::function<void(uint64_t id, core::GenerationJob job, core::KvHandoff handoff, GenerationStream stream)> adopt;
  /// The controller's placement: the models this worker's host cache should hold (it unloads
  /// the others once idle and loads these). Null: it holds what it loaded at start.
  std::function<void(std::vector<std::string> models)> hold;
  /// Whether a handoff from a prefill worker on this host is read from its shared memory
  /// (rpc/shared_kv.hpp) rather than pulled through the controller (`aegaeon worker
  /// --kv-transport`).
  bool kv_shared_memory = true;
};

/// Why a node left the registry; the metric label of aegaeon_cluster_worker_departures_total.
enum class LeaveReason {
  kConnectionLost,    ///< the TCP connection closed (process exited or was killed)
  kHeartbeatTimeout,  ///< silent for heartbeat_timeout_ms (a partition keeps the connection)
};
/// "connection_lost" or "heartbeat_timeout".
const char* to_string(LeaveReason reason);

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
    /// A node silent for this long is dropped as if its connection had broken (a partition
    /// does not close the connection).
    uint32_t heartbeat_timeout_ms = 3000;
    std::function<void(const RegisteredNode&)> on_register;
    std::function<void(const core::HeartbeatReport&)> on_heartbeat;
    /// A node left: its connection broke or its heartbeats stopped (`why` says it in words).
    std::function<void(uint64_t node_id, LeaveReason reason, const std::string& why)> on_leave;
    /// Mutual TLS when set (a server-side context with a CA): a peer without a certificate the
    /// CA signed is refused before it can say anything, logged and passed to on_tls_refused.
    std::shared_ptr<const TlsContext> tls;
    TlsRefusalObserver on_tls_refused;
  };

  /// Called on the kj thread (must not block) for each update of a remote generation: tokens in
  /// order, then exactly one last update with `finished` or `worker_lost` set.
  using UpdateHandler = std::function<void(core::GenerationUpdate)>;

  /// Binds and serves; fails with kUnavailable naming the address if it cannot bind.
  static core::Result<std::unique_ptr<ClusterRegistryServer>> start(KjRuntime& runtime,
                                                                    Options options);
  ~ClusterRegistryServer();

  /// The bound port.
  [[nodiscard]] uint16_t port() const;
  /// A snapshot of the registered nodes (their models without tokenizer texts: on_register
  /// gets those).
  [[nodiscard]] std::vector<RegisteredNode> nodes() const;

  /// Submits `job` to node `node_id`. Returns the generation's id (for cancel()), or
  /// kNotFound when the node is gone or cannot generate.
  core::Result<uint64_t> generate(uint64_t node_id, const core::GenerationJob& job,
                                  UpdateHandler on_update);
  /// Continues a generation that a prefill-only worker ended with `handoff` (an update's, with
  /// its source_id) on decode worker `node_id`, which pulls the KV from the prefill worker
  /// through this controller. The handle is used up once the call is sent (on failure it stays,
  /// for another node or release_handoff). Returns the generation's id, or kNotFound when the
  /// node or the handle is gone.
  core::Result<uint64_t> decode(uint64_t node_id, const core::GenerationJob& job,
                                const core::KvHandoff& handoff, UpdateHandler on_update);
  /// Tells node `node_id` which models its host cache should hold (Worker.hold; what it holds
  /// comes back in its heartbeats). Non-blocking; a node that is gone is ignored.
  void hold(uint64_t node_id, const std::vector<std::string>& models);
  /// Drops a handoff nobody will decode (its prefill worker frees the KV). Unknown ids are ignored.
  void release_handoff(uint64_t source_id);
  /// Cancels a generation (the worker frees it); no update follows. Unknown ids are ignored.
  void cancel(uint64_t generation_id);

  struct Impl;  ///< opaque; defined in cluster_registry.cpp

 private:
  explicit ClusterRegistryServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// A connection to a controller's Registry. Calls block the calling thread (never the kj
/// thread) for at most `timeout`.
class ClusterClient {
 public:
  /// Connects to host:port, over TLS when `tls` is set (a client-side context); fails with
  /// kUnavailable when nothing answers or the handshake fails (the reason in words).
  static core::Result<std::unique_ptr<ClusterClient>> connect(
      KjRuntime& runtime, const std::string& host, uint16_t port, std::shared_ptr<const TlsContext> tls = nullptr,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~ClusterClient();

  /// Registers this node; with `handlers` it also offers to run generations. kUnauthenticated
  /// for a wrong token, kInvalidArgument for a version mismatch, kUnavailable when the
  /// connection fails.
  core::Result<core::RegistrationReply> register_node(
      const core::NodeRegistration& node, const std::string& cluster_token,
      std::shared_ptr<const WorkerHandlers> handlers = nullptr);
  /// Sends a heartbeat; returns whether the controller still knows the node.
  core::Result<bool> heartbeat(const core::HeartbeatReport& beat);

 private:
  struct Impl;
  explicit ClusterClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::rpc
