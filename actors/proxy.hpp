// The proxy role: the front door behind the HTTP API. Tokenizes and templates requests, checks
// them against the model's context, asks prefill for admission, and turns token events into
// OpenAI responses or SSE chunks (streaming decode, stop strings, usage, logprobs).
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/policy/request.hpp"
#include "core/generation.hpp"
#include "rpc/http/http_types.hpp"

namespace aegaeon::actors {

class ModelCatalog;
struct ServingMetrics;

/// Spawns the proxy. It needs a wire_atom message with (prefill, decode) before serving.
/// `max_prompt_tokens` (0: the model's context only) refuses longer prompts with HTTP 400.
caf::actor spawn_proxy(caf::actor_system& system, std::shared_ptr<const ModelCatalog> catalog,
                       policy::Slo slo, std::shared_ptr<ServingMetrics> metrics,
                       std::int32_t max_prompt_tokens = 0);

/// What the admin API changes at the front door.
enum class FrontAction {
  kReport,   ///< nothing: report only
  kDrain,    ///< refuse new requests for the model (HTTP 503 + Retry-After); in-flight ones finish
  kUndrain,  ///< accept them again
  kUnload,   ///< refuse new requests for the model as unloaded (HTTP 404) — only if it has none
             ///< in flight (FrontActivity::unloaded says whether it took)
  kLoad,     ///< accept them again after an unload
};

/// One model at the front door, as the admin API reports it.
struct FrontActivity {
  std::string name;
  bool draining = false;
  bool unloaded = false;     ///< new requests get HTTP 404 (kUnload)
  std::int32_t running = 0;  ///< generating (first token sent)
  std::int32_t waiting = 0;  ///< admitted or queued, no token yet
};

/// Applies kUnload or kLoad (other actions: nothing) to `model`, whose requests in flight
/// `activity` counts, in a front door's `unloaded` set and in `activity`. An unload takes only
/// when none is in flight: checked and marked in one actor step, so no request slips in between.
/// The proxy and a cluster worker's relay share it.
void apply_unload_or_load(FrontAction action, core::ModelId model, FrontActivity& activity,
                          std::set<core::ModelId>& unloaded);

/// Receives the proxy's answer to an admin action: every model, in catalog order. Called on the
/// proxy's thread; it must not block.
using FrontReport = std::function<void(std::vector<FrontActivity>)>;

/// Asks the proxy to apply `action` to the model called `model` (ignored for kReport; the name
/// must be served) and then report (non-blocking; callable from the kj thread).
void send_front_action(const caf::actor& proxy, FrontAction action, std::string model,
                       FrontReport report);

/// Seconds a client is told to wait (Retry-After) when its model is draining.
inline constexpr int kDrainRetryAfterS = 10;

/// Hands a validated request and the way to answer it to the proxy (non-blocking; callable from
/// the kj thread).
void submit_generation(const caf::actor& proxy, core::GenerationRequest request,
                       const rpc::http::Responder& responder);

/// Connects the proxy to the prefill and decode roles (set-up, once).
void wire_proxy(const caf::actor& proxy, const caf::actor& prefill, const caf::actor& decode);

}  // namespace aegaeon::actors
