#include "actors/worker_relay.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <unordered_map>

#include "actors/model_catalog.hpp"
#include "actors/serving_atoms.hpp"

// Travels from the kj thread to the relay only; never serialized.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::rpc::GenerationStream)

namespace aegaeon::actors {
namespace {

using remote_atom = caf::atom_constant<caf::atom("remote")>;  // kj → relay: a new generation
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;    // kj → relay: a handed-off one

// A generation in flight here: where its output goes and its model.
struct RemoteGeneration {
  rpc::GenerationStream stream;
  core::ModelId model = 0;
};

struct RelayState {
  caf::actor prefill;
  caf::actor decode;
  std::shared_ptr<const ModelCatalog> catalog;  // the node's (catalog_atom)
  std::unordered_map<core::RequestId, RemoteGeneration> streams;
  std::set<core::ModelId> unloaded;  // out of this worker's host cache: new work is refused
  std::shared_ptr<RelayLoad> load;
  static inline const char* name = "worker_relay";
};

using RelayActor = caf::stateful_actor<RelayState>;

// The name of `model` (its id until the node's catalog arrived).
std::string model_name(const RelayState& s, core::ModelId model) {
  return s.catalog ? s.catalog->at(model).name : std::to_string(model);
}

// Publishes the generations in flight by model (after every change to `streams`).
void publish_load(RelayActor* self) {
  auto& s = self->state;
  std::map<std::string, std::uint32_t> by_model;
  for (const auto& [id, generation] : s.streams) ++by_model[model_name(s, generation.model)];
  s.load->publish(std::move(by_model));
}

void forget(RelayActor* self, core::RequestId id) {
  if (self->state.streams.erase(id) != 0) publish_load(self);
}

// Stops the runtime's work on `id` (frees its KV) and forgets it.
void cancel(RelayActor* self, core::RequestId id) {
  if (self->state.streams.count(id) == 0) return;
  if (self->state.prefill) self->send(self->state.prefill, cancel_atom::value, id);
  if (self->state.decode) self->send(self->state.decode, cancel_atom::value, id);
  forget(self, id);
}

void end_with_error(const rpc::GenerationStream& stream, std::string message) {
  core::GenerationUpdate update;
  update.finished = true;
  update.reason = core::FinishReason::kError;
  update.error = std::move(message);
  stream.send(std::move(update));
}

// Refuses work for a model this worker no longer holds (the controller's placement moved it; a
// job sent before the controller learnt that can still arrive). True when refused.
bool refuse_unloaded(RelayActor* self, core::ModelId model, const rpc::GenerationStream& stream) {
  if (self->state.unloaded.count(model) == 0) return false;
  end_with_error(stream, "model '" + model_name(self->state, model) + "' is not loaded on this worker now");
  return true;
}

// The admin actions of a worker process: unload and load (the controller's placement); drains
// apply at the controller. Reports every model, its generations here counted as running.
void on_admin(RelayActor* self, FrontAction action, const std::string& model_name, const FrontReport& report) {
  auto& s = self->state;
  std::vector<FrontActivity> out;
  if (!s.catalog) return report(std::move(out));
  for (const auto& entry : s.catalog->entries()) out.push_back({entry.name, false, s.unloaded.count(entry.id) != 0, 0, 0});
  for (const auto& [id, generation] : s.streams) ++out.at(static_cast<size_t>(generation.model)).running;
  if (const CatalogEntry* model = s.catalog->find(model_name)) {
    apply_unload_or_load(action, model->id, out.at(static_cast<size_t>(model->id)), s.unloaded);
  }
  report(std::move(out));
}

caf::behavior relay_actor(RelayActor* self, std::shared_ptr<RelayLoad> load) {
  self->state.load = std::move(load);
  return {
      [self](wire_atom, caf::actor prefill, caf::actor decode) {
        self->state.prefill = std::move(prefill);
        self->state.decode = std::move(decode);
      },
      [self](catalog_atom, std::shared_ptr<const ModelCatalog>& catalog) { self->state.catalog = std::move(catalog); },
      [self](admin_atom, FrontAction action, const std::string& model, const FrontReport& report) {
        on_admin(self, action, model, report);
      },
      [self](remote_atom, PrefillJob& job, const rpc::GenerationStream& stream) {
        core::RequestId id = job.info.id;
        if (!self->state.prefill) return end_with_error(stream, "this worker only decodes (--role decode)");
        if (refuse_unloaded(self, job.info.model, stream)) return;
        self->state.streams.emplace(id, RemoteGeneration{stream, job.info.model});
        publish_load(self);
        self->request(self->state.prefill, caf::infinite, admit_atom::value, std::move(job))
            .then(
                [self, id](const AdmissionReply& reply) {
                  auto it = self->state.streams.find(id);
                  if (reply.admitted || it == self->state.streams.end()) return;
                  end_with_error(it->second.stream, "overloaded: " + reply.reason);
                  forget(self, id);
                },
                [self, id](caf::error& error) {
                  auto it = self->state.streams.find(id);
                  if (it == self->state.streams.end()) return;
                  end_with_error(it->second.stream, "admission failed: " + self->system().render(error));
                  forget(self, id);
                });
      },
      [self](token_atom, std::vector<TokenEvent>& events) {
        for (auto& event : events) {
          auto it = self->state.streams.find(event.id);
          if (it == self->state.streams.end()) continue;  // cancelled already
          const auto id = event.id;
          const bool finished = event.finished;
          core::GenerationUpdate update;
          static_cast<TokenEvent&>(update) = std::move(event);
          if (!it->second.stream.send(std::move(update))) {
            cancel(self, id);  // the controller is gone: stop generating
          } else if (finished) {
            forget(self, id);
          }
        }
      },
      // A prefill-only node's prefill role finished `handoff.job`: its KV goes to a decode worker.
      [self](handoff_atom, Handoff& handoff) {
        auto it = self->state.streams.find(handoff.job.info.id);
        if (it == self->state.streams.end()) return;  // cancelled: the KV is dropped here
        core::GenerationUpdate update;
        update.handoff = core::KvHandoff{handoff.kv.tokens, handoff.kv.last_token, handoff.kv.bytes.size(),
                                         std::move(handoff.kv.bytes), 0};
        it->second.stream.send(std::move(update));
        forget(self, handoff.job.info.id);
      },
      [self](adopt_atom, Handoff& handoff, const rpc::GenerationStream& stream) {
        if (!self->state.decode) return end_with_error(stream, "this worker only prefills (--role prefill)");
        if (refuse_unloaded(self, handoff.job.info.model, stream)) return;
        self->state.streams.emplace(handoff.job.info.id, RemoteGeneration{stream, handoff.job.info.model});
        publish_load(self);
        self->send(self->state.decode, handoff_atom::value, std::move(handoff));
      },
      [self](cancel_atom, core::RequestId id) { cancel(self, id); },
  };
}

}  // namespace

std::map<std::string, std::uint32_t> RelayLoad::by_model() const {
  std::lock_guard lock(mutex_);
  return by_model_;
}

std::uint32_t RelayLoad::total() const {
  std::lock_guard lock(mutex_);
  std::uint32_t total = 0;
  for (const auto& [model, count] : by_model_) total += count;
  return total;
}

void RelayLoad::publish(std::map<std::string, std::uint32_t> by_model) {
  std::lock_guard lock(mutex_);
  by_model_ = std::move(by_model);
}

caf::actor spawn_worker_relay(caf::actor_system& system, std::shared_ptr<RelayLoad> load) {
  return system.spawn(relay_actor, std::move(load));
}

namespace {

// Whether `job` fits `model`: a prompt, a max_tokens (0: echo only scores the prompt), fewer resumed tokens
// than the prompt has, room in the context for both, and sampling settings in the ranges the
// API admits (the sampler divides by the temperature and the repetition penalty). Checked for
// generations and handoffs.
bool job_fits(const core::GenerationJob& job, const CatalogEntry& model) {
  const auto prompt_tokens = static_cast<std::int64_t>(job.prompt.size());
  const auto& s = job.sampling;
  const bool sampling_ok = s.temperature >= 0 && s.top_p > 0 && s.top_p <= 1 && s.min_p >= 0 && s.min_p <= 1 &&
                           s.repetition_penalty > 0 && s.top_logprobs >= 0 && s.prompt_logprobs >= -1;
  return sampling_ok && prompt_tokens > 0 && job.stop.max_tokens >= 0 && job.stop.min_tokens >= 0 &&
         job.resumed_tokens >= 0 && job.resumed_tokens < prompt_tokens &&
         prompt_tokens + job.stop.max_tokens <= model.max_context_tokens;
}

// The job's structured-output constraint over this worker's copy of the model's vocabulary
// (null without one); the controller compiled the same schema, so an error means a mismatch.
core::Result<std::shared_ptr<const core::TokenConstraint>> constrain(const core::GenerationJob& job,
                                                                     const CatalogEntry& model) {
  if (job.sampling.structured.empty()) return std::shared_ptr<const core::TokenConstraint>();
  return model.constrain(job.sampling.structured);
}

}  // namespace

void start_remote_generation(const caf::actor& relay, const ModelCatalog& catalog, std::uint64_t id,
                             core::GenerationJob job, rpc::GenerationStream stream) {
  // The controller validated the request against the same model; a job failing here comes from
  // a mismatched or misbehaving peer.
  const CatalogEntry* model = catalog.find(job.model);
  if (model == nullptr) {
    return end_with_error(stream, "model '" + job.model + "' is not served by this worker");
  }
  auto prompt_tokens = static_cast<std::int64_t>(job.prompt.size());
  if (!job_fits(job, *model)) {
    return end_with_error(stream, "job does not fit model '" + job.model + "': " +
                                      std::to_string(prompt_tokens) + " prompt + " +
                                      std::to_string(job.stop.max_tokens) + " output tokens (" +
                                      std::to_string(job.resumed_tokens) + " of the prompt resumed), context " +
                                      std::to_string(model->max_context_tokens));
  }
  auto constraint = constrain(job, *model);
  if (!constraint.ok()) return end_with_error(stream, constraint.error().message);
  PrefillJob prefill;
  prefill.info = policy::RequestInfo{id, model->id, 0.0,
                                     static_cast<std::int32_t>(prompt_tokens), job.stop.max_tokens};
  prefill.prompt = std::move(job.prompt);
  prefill.sampling = job.sampling;
  prefill.stop = job.stop;
  prefill.resumed_tokens = job.resumed_tokens;
  prefill.constraint = std::move(*constraint);
  caf::anon_send(relay, remote_atom::value, std::move(prefill), std::move(stream));
}

core::Result<void> check_handoff(const ModelCatalog& catalog, const core::GenerationJob& job,
                                 const core::KvHandoff& handoff, std::uint64_t kv_bytes_per_token) {
  const CatalogEntry* model = catalog.find(job.model);
  if (model == nullptr) {
    return core::error(core::ErrorCode::kNotFound, "model '" + job.model + "' is not served by this worker");
  }
  const auto prompt_tokens = static_cast<std::int64_t>(job.prompt.size());
  if (handoff.kv_tokens != prompt_tokens || !job_fits(job, *model)) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "handoff of " + std::to_string(handoff.kv_tokens) + " KV tokens does not fit a job of " +
                           std::to_string(prompt_tokens) + " prompt + " + std::to_string(job.stop.max_tokens) +
                           " output tokens on model '" + job.model + "' (context " +
                           std::to_string(model->max_context_tokens) + ")");
  }
  // KV lives in whole blocks of a few tokens; twice the tokens' bytes bounds any layout and
  // keeps a hostile size from allocating more than the context could ever need.
  const std::uint64_t bound = 2 * (static_cast<std::uint64_t>(prompt_tokens) + 64) * kv_bytes_per_token;
  if (handoff.bytes == 0 || handoff.bytes > bound) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "handoff of " + std::to_string(handoff.bytes) + " KV bytes for " +
                           std::to_string(prompt_tokens) + " tokens of model '" + job.model + "' (at most " +
                           std::to_string(bound) + ")");
  }
  return core::ok();
}

void adopt_remote_generation(const caf::actor& relay, const ModelCatalog& catalog, std::uint64_t id,
                             core::GenerationJob job, core::KvHandoff handoff, rpc::GenerationStream stream) {
  const CatalogEntry* model = catalog.find(job.model);
  if (model == nullptr) return end_with_error(stream, "model '" + job.model + "' is not served by this worker");
  auto constraint = constrain(job, *model);
  if (!constraint.ok()) return end_with_error(stream, constraint.error().message);
  Handoff adopted;
  adopted.job.info = policy::RequestInfo{id, model->id, 0.0,
                                         static_cast<std::int32_t>(job.prompt.size()), job.stop.max_tokens};
  adopted.job.sampling = job.sampling;
  adopted.job.prompt = std::move(job.prompt);
  adopted.kv.seq = id;
  adopted.kv.model = model->id;
  adopted.kv.tokens = handoff.kv_tokens;
  adopted.kv.bytes = std::move(handoff.blob);
  adopted.job.stop = job.stop;
  adopted.kv.stop = job.stop;
  adopted.kv.produced = 1;  // the prefill worker's first token
  adopted.kv.last_token = handoff.last_token;
  // What the request generated so far: the resumed tail of the prompt and the prefill worker's
  // first token. Penalties count them and the seeded stream skips their draws.
  const auto resumed = std::clamp<std::int32_t>(job.resumed_tokens, 0, static_cast<std::int32_t>(adopted.job.prompt.size()));
  adopted.kv.generated.assign(adopted.job.prompt.end() - resumed, adopted.job.prompt.end());
  adopted.kv.generated.push_back(handoff.last_token);
  // The sampler starts here, where the prompt is at hand (the repetition penalty counts it).
  adopted.kv.sampler.emplace(job.sampling, adopted.kv.generated, adopted.job.prompt, *constraint);
  caf::anon_send(relay, adopt_atom::value, std::move(adopted), std::move(stream));
}

void cancel_remote_generation(const caf::actor& relay, std::uint64_t id) {
  caf::anon_send(relay, cancel_atom::value, id);
}

}  // namespace aegaeon::actors
