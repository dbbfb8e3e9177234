#include "actors/worker_relay.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <unordered_map>

#include "actors/model_catalog.hpp"
#include "actors/serving_atoms.hpp"

// Travels from the kj thread to the relay only; never serialized.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::rpc::GenerationStream)

namespace aegaeon::actors {
namespace {

using remote_atom = caf::atom_constant<caf::atom("remote")>;  // kj → relay: a new generation

struct RelayState {
  caf::actor prefill;
  caf::actor decode;
  std::unordered_map<policy::RequestId, rpc::GenerationStream> streams;
  std::shared_ptr<std::atomic<std::uint32_t>> in_flight;
  static inline const char* name = "worker_relay";
};

using RelayActor = caf::stateful_actor<RelayState>;

void forget(RelayActor* self, policy::RequestId id) {
  if (self->state.streams.erase(id) != 0) self->state.in_flight->store(
      static_cast<std::uint32_t>(self->state.streams.size()));
}

// Stops the runtime's work on `id` (frees its KV) and forgets it.
void cancel(RelayActor* self, policy::RequestId id) {
  if (self->state.streams.count(id) == 0) return;
  self->send(self->state.prefill, cancel_atom::value, id);
  self->send(self->state.decode, cancel_atom::value, id);
  forget(self, id);
}

void end_with_error(const rpc::GenerationStream& stream, std::string message) {
  core::GenerationUpdate update;
  update.finished = true;
  update.reason = core::FinishReason::kError;
  update.error = std::move(message);
  stream.send(std::move(update));
}

caf::behavior relay_actor(RelayActor* self, std::shared_ptr<std::atomic<std::uint32_t>> in_flight) {
  self->state.in_flight = std::move(in_flight);
  return {
      [self](wire_atom, caf::actor prefill, caf::actor decode) {
        self->state.prefill = std::move(prefill);
        self->state.decode = std::move(decode);
      },
      [self](remote_atom, PrefillJob& job, const rpc::GenerationStream& stream) {
        policy::RequestId id = job.info.id;
        self->state.streams.emplace(id, stream);
        self->state.in_flight->store(static_cast<std::uint32_t>(self->state.streams.size()));
        self->request(self->state.prefill, caf::infinite, admit_atom::value, std::move(job))
            .then(
                [self, id](const AdmissionReply& reply) {
                  auto it = self->state.streams.find(id);
                  if (reply.admitted || it == self->state.streams.end()) return;
                  end_with_error(it->second, "overloaded: " + reply.reason);
                  forget(self, id);
                },
                [self, id](caf::error& error) {
                  auto it = self->state.streams.find(id);
                  if (it == self->state.streams.end()) return;
                  end_with_error(it->second, "admission failed: " + self->system().render(error));
                  forget(self, id);
                });
      },
      [self](token_atom, std::vector<TokenEvent>& events) {
        for (auto& event : events) {
          auto it = self->state.streams.find(event.id);
          if (it == self->state.streams.end()) continue;  // cancelled already
          core::GenerationUpdate update;
          update.tokens = std::move(event.tokens);
          update.logprobs = std::move(event.logprobs);
          update.queue_s = event.queue_s;
          update.finished = event.finished;
          update.reason = event.reason;
          update.error = std::move(event.error);
          if (!it->second.send(std::move(update))) {
            cancel(self, event.id);  // the controller is gone: stop generating
          } else if (event.finished) {
            forget(self, event.id);
          }
        }
      },
      [self](cancel_atom, policy::RequestId id) { cancel(self, id); },
  };
}

}  // namespace

caf::actor spawn_worker_relay(caf::actor_system& system,
                              std::shared_ptr<std::atomic<std::uint32_t>> in_flight) {
  return system.spawn(relay_actor, std::move(in_flight));
}

void start_remote_generation(const caf::actor& relay, const ModelCatalog& catalog, std::uint64_t id,
                             core::GenerationJob job, rpc::GenerationStream stream) {
  // The controller validated the request against the same model; a job failing here comes from
  // a mismatched or misbehaving peer.
  const CatalogEntry* model = catalog.find(job.model);
  if (model == nullptr) {
    return end_with_error(stream, "model '" + job.model + "' is not served by this worker");
  }
  auto prompt_tokens = static_cast<std::int64_t>(job.prompt.size());
  if (prompt_tokens == 0 || job.max_output_tokens < 1 ||
      prompt_tokens + job.max_output_tokens > model->max_context_tokens) {
    return end_with_error(stream, "job does not fit model '" + job.model + "': " +
                                      std::to_string(prompt_tokens) + " prompt + " +
                                      std::to_string(job.max_output_tokens) + " output tokens, context " +
                                      std::to_string(model->max_context_tokens));
  }
  PrefillJob prefill;
  prefill.info = policy::RequestInfo{static_cast<policy::RequestId>(id), model->id, 0.0,
                                     static_cast<std::int32_t>(prompt_tokens), job.max_output_tokens};
  prefill.prompt = std::move(job.prompt);
  prefill.sampling.temperature = job.temperature;
  prefill.sampling.top_k = job.top_k;
  prefill.sampling.top_p = job.top_p;
  prefill.sampling.presence_penalty = job.presence_penalty;
  prefill.sampling.frequency_penalty = job.frequency_penalty;
  prefill.sampling.seed = job.seed;
  caf::anon_send(relay, remote_atom::value, std::move(prefill), std::move(stream));
}

void cancel_remote_generation(const caf::actor& relay, std::uint64_t id) {
  caf::anon_send(relay, cancel_atom::value, static_cast<policy::RequestId>(id));
}

}  // namespace aegaeon::actors
