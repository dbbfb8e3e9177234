#include "actors/status_actor.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <chrono>

#include "actors/serving_atoms.hpp"  // Responder may travel in messages

namespace aegaeon::actors {
namespace {

using health_atom = caf::atom_constant<caf::atom("health")>;

struct StatusState {
  StatusInfo info;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  uint64_t health_checks = 0;  ///< answered so far; each answer carries its sequence number
  static inline const char* name = "status";
};

caf::behavior status_actor(caf::stateful_actor<StatusState>* self, StatusInfo info) {
  self->state.info = std::move(info);
  return {
      [self](health_atom, const rpc::http::Responder& responder) {
        auto& state = self->state;
        double uptime_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - state.started).count();
        nlohmann::json body = {{"status", "ok"},
                               {"version", state.info.version},
                               {"node", state.info.node_name},
                               {"uptime_s", uptime_s},
                               {"health_checks", ++state.health_checks}};
        responder.respond(rpc::http::HttpResponse::json(200, body.dump()));
      },
  };
}

}  // namespace

caf::actor spawn_status_actor(caf::actor_system& system, StatusInfo info) {
  return system.spawn(status_actor, std::move(info));
}

void request_health(const caf::actor& status, const rpc::http::Responder& responder) {
  caf::anon_send(status, health_atom::value, responder);
}

void stop_actor(const caf::actor& actor) {
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

}  // namespace aegaeon::actors
