// The controller's side of the cluster: it stands where prefill and decode stand behind the
// proxy in `aegaeon serve`, so the controller's proxy (tokenizing, templates, stop strings, SSE)
// is the same code as the all-in-one's. Each admitted request runs on the least loaded live
// worker serving its model (actors/policy/worker_choice). A worker started with --role prefill
// stops after the first token and hands the KV off; the router then continues the request on a
// decode worker, which pulls the KV from the prefill worker. When a worker dies mid-generation,
// the request is re-submitted to another with its prompt plus the tokens already streamed
// (re-prefill), so the client's stream goes on with no token repeated or missing.
// The router is also the cluster's placement: every 250 ms it assigns models to the host caches
// of the workers that have a limit (policy::assign_host_caches, by requests per model across the
// cluster) and sends each worker its share (Worker.hold); a request goes only to a worker that
// holds its model, and waits (parked, up to 60 s) while one loads it. A proxy controller's router
// does not place: it routes by what workers hold and reports its parked requests instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "actors/model_catalog.hpp"
#include "actors/policy/request.hpp"
#include "actors/serving_node.hpp"
#include "core/cluster_types.hpp"
#include "core/result.hpp"
#include "rpc/cluster_registry.hpp"
#include "rpc/http/http_types.hpp"

namespace prometheus {
class Registry;
}

namespace aegaeon::actors {

struct ServingMetrics;

/// The models the workers serve, as the controller's front door knows them. It grows as workers
/// with new models join; a model keeps its id, so requests in flight keep theirs. Thread-safe.
class ClusterCatalog {
 public:
  /// Learns the models of a joining node it does not know yet (by name: the first description
  /// wins). Errors name the model whose tokenizer does not load.
  core::Result<void> add(const core::NodeRegistration& node);
  /// The current catalog (never null).
  [[nodiscard]] std::shared_ptr<const ModelCatalog> current() const;

 private:
  mutable std::mutex mutex_;
  std::vector<core::ServedModel> models_;
  std::shared_ptr<const ModelCatalog> current_ = std::make_shared<const ModelCatalog>();
};

/// A worker as the controller's admin API reports it.
struct WorkerStatus {
  std::uint64_t node_id = 0;
  std::string name;            ///< its --name
  bool draining = false;       ///< gets no new generation (nor re-prefills); in-flight ones finish
  std::int64_t in_flight = 0;  ///< generations placed on it and not finished
  std::vector<std::string> models;  ///< whose weights it holds now (its last heartbeat)
  std::uint64_t held_bytes = 0;     ///< host memory those weights take
  std::uint64_t cache_bytes = 0;    ///< its host cache limit (serve.host_cache_bytes; 0: none)
};
/// What the admin API asks of the router.
enum class WorkerAction { kReport, kDrain, kUndrain };
/// Receives every live worker, by node id, after an admin action. Called on the router's
/// thread; it must not block.
using WorkerReport = std::function<void(std::vector<WorkerStatus>)>;

/// Requests waiting for a worker to hold their model, by model (the router publishes them at
/// each tick; a proxy controller's heartbeats report them to the controller that places models).
/// Thread-safe.
class ParkedBoard {
 public:
  void publish(std::map<std::string, std::uint32_t> by_model);
  [[nodiscard]] std::map<std::string, std::uint32_t> by_model() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint32_t> by_model_;
};

/// The controller's serving front: a proxy over the cluster router. A new proxy is spawned when
/// the catalog grew (a proxy's catalog is fixed); the old one finishes its requests. Thread-safe.
class ClusterFront {
 public:
  /// `places_models`: this controller places models on the workers' host caches (one per
  /// cluster); without it, it routes by what the workers report holding (a proxy controller).
  /// `join_window`: for this long after its start the front answers a model it does not know
  /// yet with 503 and Retry-After rather than 404: the workers of a restarted controller join
  /// again within their rejoin backoff, and until then their models are unknown here, not
  /// absent from the cluster.
  ClusterFront(caf::actor_system& system, rpc::ClusterRegistryServer& registry,
               std::shared_ptr<const ClusterCatalog> catalog, policy::Slo slo, prometheus::Registry& metrics,
               bool places_models = true, std::chrono::milliseconds join_window = std::chrono::seconds(15));
  ~ClusterFront();

  /// Hands a validated request to the current proxy (non-blocking; callable from the kj thread).
  void submit(core::GenerationRequest request, const rpc::http::Responder& responder);
  /// Requests waiting for a worker to hold their model, by model (any thread).
  [[nodiscard]] std::map<std::string, std::uint32_t> waiting() const;
  /// Models with at least one live worker ("available").
  [[nodiscard]] std::vector<ModelStatus> models() const;
  /// Applies `action` to the live worker called `name` (nothing when none is; ignored for
  /// kReport), then reports every live worker (non-blocking; callable from the kj thread). A
  /// drained name stays drained if that worker re-joins, until undrained.
  void admin_workers(WorkerAction action, std::string name, WorkerReport report);
  /// Stops the proxies and the router.
  void stop();

 private:
  caf::actor_system& system_;
  rpc::ClusterRegistryServer& registry_;
  std::shared_ptr<const ClusterCatalog> catalog_;
  policy::Slo slo_;
  std::shared_ptr<ServingMetrics> serving_metrics_;
  std::shared_ptr<ParkedBoard> parked_ = std::make_shared<ParkedBoard>();
  caf::actor router_;
  std::mutex mutex_;  // guards the proxies
  std::vector<caf::actor> proxies_;  // the last one takes new requests
  std::shared_ptr<const ModelCatalog> proxy_catalog_;
  std::chrono::steady_clock::time_point join_window_ends_;
};

}  // namespace aegaeon::actors
