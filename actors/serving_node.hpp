// ServingNode: the serving runtime of one process — host model cache, devices, and the proxy,
// prefill, decode and gpu_worker actors wired together. `aegaeon serve` builds one and routes
// the OpenAI API to it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "actors/policy/admission.hpp"
#include "actors/policy/request.hpp"
#include "actors/policy/serving_policy.hpp"
#include "core/generation.hpp"
#include "core/result.hpp"
#include "gpu/worker/device_worker.hpp"
#include "rpc/http/http_types.hpp"

namespace prometheus {
class Registry;
}

namespace aegaeon::actors {

class ModelCatalog;

/// Which roles a node runs. A prefill-only node hands each prefilled request's KV to `front`
/// (handoff_atom) instead of a decode role of its own; a decode-only node gets its requests as
/// handoffs from `front`. `aegaeon serve` runs both.
enum class NodeRole { kBoth, kPrefill, kDecode };
/// Whether a node with `role` runs the prefill role.
constexpr bool runs_prefill(NodeRole role) { return role != NodeRole::kDecode; }
/// Whether a node with `role` runs the decode role.
constexpr bool runs_decode(NodeRole role) { return role != NodeRole::kPrefill; }

/// What to serve and on what.
struct ServingOptions {
  std::vector<worker::ModelSpec> models;
  int prefill_devices = 1;
  int decode_devices = 1;
  worker::DeviceWorkerOptions device;
  policy::Slo slo;
  policy::AdmissionConfig admission;
  policy::ServingPolicy policy = policy::ServingPolicy::kAegaeon;
  /// Longest prompt accepted, in tokens; 0: the model's context only (serve.max_prompt_tokens).
  std::int32_t max_prompt_tokens = 0;
  /// Without prefill, prefill_devices is ignored; without decode, decode_devices is.
  NodeRole role = NodeRole::kBoth;
  /// Where prefill and decode send tokens instead of a proxy of its own (a worker process's
  /// relay, see actors/worker_relay.hpp); it gets the node's catalog (catalog_atom), the
  /// proxy's wire message and its admin actions (unload, load). With it, submit() is not
  /// available.
  caf::actor front;
  /// Read only the models' layouts at start: every model starts unloaded, and load_model reads
  /// its weights when wanted (a cluster worker with a host cache limit, whose controller places
  /// models on it).
  bool start_unloaded = false;
};

/// A served model as GET /v1/models reports it.
struct ModelStatus {
  std::string name;
  /// "resident" (weights on a device), "cached" (host memory only), or, through the admin API,
  /// "unloading", "unloaded" (not served until loaded again) or "loading".
  std::string state;
  std::int32_t max_context_tokens = 0;
  // What the admin API adds (filled by ServingNode::admin only):
  bool draining = false;     ///< new requests get HTTP 503 + Retry-After
  std::int32_t running = 0;  ///< requests generating
  std::int32_t waiting = 0;  ///< requests admitted or queued, no token yet
  /// The prefill and decode devices the model has to itself (ServingNode::set_pinned), if pinned.
  std::optional<std::int32_t> pinned_prefill_device;
  std::optional<std::int32_t> pinned_decode_device;
};

/// What the admin API asks of a node (see ServingNode::admin).
enum class AdminAction { kReport, kDrain, kUndrain };

/// Receives the outcome of an admin unload or load: every model's status, or why it was refused.
using AdminDone = std::function<void(core::Result<std::vector<ModelStatus>>)>;

/// The running serving runtime.
class ServingNode {
 public:
  /// Loads every model (progress is logged), creates the devices and spawns the actors.
  static core::Result<std::unique_ptr<ServingNode>> start(caf::actor_system& system,
                                                          ServingOptions options,
                                                          prometheus::Registry& registry);
  ~ServingNode();

  /// Hands a validated request to the proxy; it answers through `responder`.
  void submit(core::GenerationRequest request, const rpc::http::Responder& responder) const;
  /// The models taking requests (not unloaded) and whether each is resident on a device now.
  [[nodiscard]] std::vector<ModelStatus> models() const;
  /// Applies `action` to the served model `model` (ignored for kReport), then calls `done` with
  /// every model's full status, on an actor thread. Non-blocking; callable from the kj thread.
  void admin(AdminAction action, std::string model,
             std::function<void(std::vector<ModelStatus>)> done) const;
  /// Gives the served model `model` a prefill and a decode device of its own (`pinned`), or
  /// takes them back: its new requests then go only to those devices, and no other model's new
  /// requests do, so it never waits for a switch. Requests already placed finish where they are.
  /// kFailedPrecondition when the node cannot spare the devices (one of each role stays for the
  /// models that are not pinned) or its policy pins every model already (static). Callable from
  /// any thread.
  core::Result<void> set_pinned(std::string_view model, bool pinned) const;
  /// Unloads the served model `model`: its new requests get HTTP 404 from now on, every device
  /// forgets its weights, and their host memory is freed; then `done` gets every model's status.
  /// kFailedPrecondition, with nothing changed, when the model has requests in flight (drain it
  /// first), is pinned, or is not loaded. Non-blocking; `done` runs on an actor thread.
  void unload_model(std::string model, AdminDone done) const;
  /// Loads an unloaded model again: reads its folder anew on a thread of its own (the weights
  /// may have changed, the layout may not: HostModelCache::load_weights), then takes its
  /// requests again; `done` gets every model's status, or kFailedPrecondition with the load's
  /// error (the model stays unloaded) or when the model is not unloaded. Non-blocking.
  void load_model(std::string model, AdminDone done) const;
  /// Tokenizers and context lengths (immutable; safe from any thread).
  [[nodiscard]] const ModelCatalog& catalog() const;
  /// Bytes of KV one token of model `model` takes (safe from any thread).
  [[nodiscard]] std::uint64_t kv_bytes_per_token(core::ModelId model) const;
  /// Bytes of host memory model `model`'s weights take when loaded (safe from any thread).
  [[nodiscard]] std::uint64_t weight_bytes(core::ModelId model) const;
  /// Waits for loads in progress, then stops the actors (in-flight requests end with an error or
  /// cancellation).
  void stop();

 private:
  struct Impl;
  explicit ServingNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::actors
