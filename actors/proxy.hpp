// The proxy role: the front door behind the HTTP API. Tokenizes and templates requests, checks
// them against the model's context, asks prefill for admission, and turns token events into
// OpenAI responses or SSE chunks (streaming decode, stop strings, usage, logprobs).
#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "actors/policy/request.hpp"
#include "core/generation.hpp"
#include "rpc/http/http_types.hpp"

namespace aegaeon::actors {

class ModelCatalog;
struct ServingMetrics;

/// Spawns the proxy. It needs a wire_atom message with (prefill, decode) before serving.
caf::actor spawn_proxy(caf::actor_system& system, std::shared_ptr<const ModelCatalog> catalog,
                       policy::Slo slo, std::shared_ptr<ServingMetrics> metrics);

/// Hands a validated request and the way to answer it to the proxy (non-blocking; callable from
/// the kj thread).
void submit_generation(const caf::actor& proxy, core::GenerationRequest request,
                       const rpc::http::Responder& responder);

/// Connects the proxy to the prefill and decode roles (set-up, once).
void wire_proxy(const caf::actor& proxy, const caf::actor& prefill, const caf::actor& decode);

}  // namespace aegaeon::actors
