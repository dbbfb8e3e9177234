// The status actor: the node's liveness and identity, answering /health. It is the first actor
// behind the HTTP front door and the reference for how a kj handler asks an actor (anon_send
// with a Responder) and how an actor answers across threads (Responder::respond).
#pragma once

#include <string>

#include <caf/fwd.hpp>

#include "rpc/http/http_types.hpp"

namespace aegaeon::actors {

/// Static facts the status actor reports.
struct StatusInfo {
  std::string version;
  std::string node_name;
};

/// Spawns the status actor.
caf::actor spawn_status_actor(caf::actor_system& system, StatusInfo info);

/// Asks the status actor for the /health answer; it responds through `responder`. Non-blocking,
/// callable from the kj thread.
void request_health(const caf::actor& status, const rpc::http::Responder& responder);

/// Asks the status actor to stop (it finishes queued requests first).
void stop_actor(const caf::actor& actor);

}  // namespace aegaeon::actors
