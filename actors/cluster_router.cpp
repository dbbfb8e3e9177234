#include "actors/cluster_router.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <map>
#include <set>

#include "actors/policy/placement.hpp"
#include "actors/policy/worker_choice.hpp"
#include "actors/proxy.hpp"
#include "actors/serving_atoms.hpp"
#include "actors/serving_metrics.hpp"
#include "core/metrics.hpp"
#include "core/utf8.hpp"
#include "rpc/http/openai_api.hpp"

// Travels from the kj thread to the router only; never serialized.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::core::GenerationUpdate)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::WorkerAction)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::WorkerReport)

namespace aegaeon::actors {
namespace {

using update_atom = caf::atom_constant<caf::atom("update")>;  // kj → router: a worker's output
using tick_atom = caf::atom_constant<caf::atom("tick")>;      // self: place models, retry parked

// How often the router places models on the workers' host caches and retries parked requests:
// a worker that joins or loads a model gets work within a tick of its heartbeat.
constexpr auto kPlacementTick = std::chrono::milliseconds(250);
// How long a request may wait for a worker to load its model (parked) before it fails.
constexpr auto kParkTimeout = std::chrono::seconds(60);

// A request that keeps failing on live workers (a misbehaving peer) ends after this many
// placements instead of bouncing between them.
constexpr std::uint64_t kMaxAttempts = 16;

// Where a placed request runs now: on a worker with both roles (kWhole); on a prefill-only
// worker, until its KV handoff (kPrefill); on a decode worker that adopted the handoff (kDecode).
enum class Stage { kWhole, kPrefill, kDecode };

// One request the router placed on a worker.
struct Placed {
  caf::actor proxy;
  core::RequestId proxy_id = 0;
  core::GenerationJob job;              // as the proxy submitted it
  core::GenerationJob attempt_job;      // as the current attempt's prefill got it
  std::vector<std::int32_t> streamed;   // tokens already forwarded to the proxy
  Stage stage = Stage::kWhole;
  std::uint64_t handoff_bytes = 0;      // of the KV the decode stage pulls
  std::uint64_t node = 0;
  std::uint64_t generation = 0;         // the registry's id of the current attempt
  std::uint64_t attempt = 0;            // updates of earlier attempts are ignored
  std::set<std::uint64_t> failed_nodes;
  // Waiting for a worker to load its model (no node 0 exists): since when.
  std::optional<std::chrono::steady_clock::time_point> parked_since;
};

// The router's metrics (registered by ClusterFront).
struct RouterMetrics {
  prometheus::Family<prometheus::Counter>* resubmissions = nullptr;
  prometheus::Family<prometheus::Counter>* placements = nullptr;  // by worker name
  // KV handed from prefill-only to decode workers: count, bytes, seconds the transfers took, by
  // transport ("shared_memory" on one host, "rpc" through the controller).
  prometheus::Family<prometheus::Counter>* handoffs = nullptr;
  prometheus::Family<prometheus::Counter>* handoff_bytes = nullptr;
  prometheus::Family<prometheus::Counter>* handoff_seconds = nullptr;
};

struct RouterState {
  rpc::ClusterRegistryServer* registry = nullptr;
  std::shared_ptr<const ClusterCatalog> catalog;
  RouterMetrics metrics;
  std::uint64_t next_key = 1;
  std::map<std::uint64_t, Placed> placed;
  std::map<std::pair<caf::actor_addr, core::RequestId>, std::uint64_t> by_proxy;
  std::map<std::uint64_t, std::int64_t> in_flight;  // by node
  std::set<std::string> draining;                   // worker names the admin API drained
  // The host-cache placement (policy::assign_host_caches) of the workers with a cache limit, as
  // last sent to them (Worker.hold). A worker without a limit holds every model it has. Only one
  // controller of a cluster places models; the others (proxies) route by what workers hold.
  bool places_models = true;
  policy::CacheAssignment placement;
  std::shared_ptr<ParkedBoard> parked;  // parked requests by model, for a proxy's heartbeats
  static inline const char* name = "cluster_router";
};

using RouterActor = caf::stateful_actor<RouterState>;

void forget(RouterActor* self, std::uint64_t key) {
  auto& s = self->state;
  auto it = s.placed.find(key);
  if (it == s.placed.end()) return;
  if (it->second.node != 0) --s.in_flight[it->second.node];
  s.by_proxy.erase({it->second.proxy.address(), it->second.proxy_id});
  s.placed.erase(it);
}

void fail(RouterActor* self, std::uint64_t key, std::string error) {
  auto& p = self->state.placed.at(key);
  TokenEvent event;
  event.id = p.proxy_id;
  event.finished = true;
  event.reason = core::FinishReason::kError;
  event.error = std::move(error);
  self->send(p.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
  forget(self, key);
}

bool has_role(const rpc::RegisteredNode& node, std::string_view role) {
  const auto& roles = node.registration.roles;
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

// Whether `node` has `model`'s weights and keeps them: it says it holds them, and the placement
// does not take them away (a worker unloads a model once its generations end: it gets no more).
bool holds(const RouterState& s, const rpc::RegisteredNode& node, const std::string& model) {
  const auto& held = node.last_heartbeat.held_models;
  if (std::find(held.begin(), held.end(), model) == held.end()) return false;
  if (node.registration.host_cache_bytes == 0 || !s.places_models) return true;
  auto placed = s.placement.find(node.node_id);
  return placed != s.placement.end() && placed->second.count(model) != 0;
}

// Whether some live, undrained worker that prefills has `model` on disk: the placement can put
// the model there, so its requests wait for that rather than fail.
bool on_some_disk(const RouterState& s, const std::string& model) {
  const auto nodes = s.registry->nodes();
  return std::any_of(nodes.begin(), nodes.end(), [&](const rpc::RegisteredNode& node) {
    const auto& models = node.registration.served_models;
    return node.can_generate && has_role(node, "prefill") && s.draining.count(node.registration.node_name) == 0 &&
           std::any_of(models.begin(), models.end(), [&](const core::ServedModel& m) { return m.name == model; });
  });
}

// The live, undrained workers with `role` that serve `key`'s model and did not fail it, with
// their loads (for policy::choose_worker); `nodes` gets each one's registry entry.
std::vector<policy::WorkerLoad> candidates(RouterActor* self, std::uint64_t key, std::string_view role,
                                           std::map<std::uint64_t, rpc::RegisteredNode>& nodes) {
  auto& s = self->state;
  const Placed& p = s.placed.at(key);
  std::vector<policy::WorkerLoad> out;
  for (const auto& node : s.registry->nodes()) {
    const auto& models = node.registration.served_models;
    bool serves = std::any_of(models.begin(), models.end(),
                              [&](const core::ServedModel& m) { return m.name == p.job.model; });
    if (!node.can_generate || !serves || !has_role(node, role) || p.failed_nodes.count(node.node_id) != 0) continue;
    if (!holds(s, node, p.job.model)) continue;
    if (s.draining.count(node.registration.node_name) != 0) continue;
    std::int64_t same_model = 0;
    for (const auto& [other_key, other] : s.placed) {
      if (other_key != key && other.node == node.node_id && other.job.model == p.job.model) ++same_model;
    }
    out.push_back({node.node_id, s.in_flight[node.node_id],
                   node.last_heartbeat.running_requests + node.last_heartbeat.waiting_requests, same_model});
    nodes.emplace(node.node_id, node);
  }
  return out;
}

// Tries the candidates in policy order until `submit(node, on_update)` takes the request; then
// moves `key` onto that node. Returns false when none did.
template <typename Submit>
bool start_on(RouterActor* self, std::uint64_t key, std::string_view role, Submit submit) {
  auto& s = self->state;
  Placed& p = s.placed.at(key);
  std::map<std::uint64_t, rpc::RegisteredNode> nodes;
  auto choices = candidates(self, key, role, nodes);
  while (auto chosen = policy::choose_worker(choices)) {
    std::uint64_t attempt = ++p.attempt;
    auto router = caf::actor_cast<caf::actor>(self);
    const rpc::RegisteredNode& node = nodes.at(*chosen);
    auto generation = submit(node, [router, key, attempt](core::GenerationUpdate update) {
      caf::anon_send(router, update_atom::value, key, attempt, std::move(update));
    });
    if (generation.ok()) {
      if (p.node != 0) --s.in_flight[p.node];
      p.node = *chosen;
      p.generation = *generation;
      ++s.in_flight[p.node];
      s.metrics.placements->Add({{"node", core::to_valid_utf8(node.registration.node_name)}}).Increment();
      return true;
    }
    // It left between the snapshot and the call: try the next one.
    std::erase_if(choices, [&](const policy::WorkerLoad& w) { return w.node_id == *chosen; });
  }
  return false;
}

// Starts (or restarts, after the tokens already streamed) `key` on a live worker that prefills
// its model: one already running that model unless it is much busier, else the least loaded
// (policy::choose_worker). A worker with both roles runs the whole generation; a prefill-only
// one hands the KV off after the first token (continue_on_decoder). Returns false when there is
// none.
bool place(RouterActor* self, std::uint64_t key) {
  auto& s = self->state;
  Placed& p = s.placed.at(key);
  if (p.attempt >= kMaxAttempts) return false;
  p.attempt_job = p.job;
  p.attempt_job.prompt.insert(p.attempt_job.prompt.end(), p.streamed.begin(), p.streamed.end());
  const auto streamed = static_cast<std::int32_t>(p.streamed.size());
  p.attempt_job.stop.max_tokens -= streamed;
  p.attempt_job.stop.min_tokens = std::max(0, p.attempt_job.stop.min_tokens - streamed);
  p.attempt_job.resumed_tokens = streamed;
  if (streamed > 0) p.attempt_job.sampling.prompt_logprobs = -1;  // the first batch carried them
  return start_on(self, key, "prefill", [&](const rpc::RegisteredNode& node, auto on_update) {
    auto generation = s.registry->generate(node.node_id, p.attempt_job, std::move(on_update));
    if (generation.ok()) p.stage = has_role(node, "decode") ? Stage::kWhole : Stage::kPrefill;
    return generation;
  });
}

// A prefill-only worker handed `key`'s KV off: the generation goes on on a decode worker, which
// pulls the KV from the prefill worker. Returns false (and drops the KV) when no decode worker
// takes it.
bool continue_on_decoder(RouterActor* self, std::uint64_t key, const core::KvHandoff& handoff) {
  auto& s = self->state;
  Placed& p = s.placed.at(key);
  p.stage = Stage::kDecode;
  p.handoff_bytes = handoff.bytes;
  bool started = start_on(self, key, "decode", [&](const rpc::RegisteredNode& node, auto on_update) {
    return s.registry->decode(node.node_id, p.attempt_job, handoff, std::move(on_update));
  });
  // decode() uses the handle up only when the call goes out.
  if (!started) s.registry->release_handoff(handoff.source_id);
  return started;
}

// Places the models on the host caches of the workers that have a limit
// (policy::assign_host_caches, by the requests in flight or parked per model) and tells each
// worker whose share changed (Worker.hold). Drained workers keep what they have.
void place_models(RouterActor* self) {
  auto& s = self->state;
  const auto nodes = s.registry->nodes();
  // Requests per model, cluster-wide: what waits here, what runs on the workers (their reports
  // count every controller's; this controller's own count is fresher), what waits at proxies.
  std::map<std::string, double> demand;
  std::map<std::string, double> running_here;
  std::map<std::string, double> running_reported;
  for (const auto& [key, p] : s.placed) (p.parked_since ? demand : running_here)[p.job.model] += 1.0;
  for (const auto& node : nodes) {
    auto& into = node.can_generate ? running_reported : demand;  // a proxy reports what waits there
    for (const auto& [model, count] : node.last_heartbeat.model_requests) into[model] += count;
  }
  for (const auto& [model, count] : running_here) running_reported[model] = std::max(running_reported[model], count);
  for (const auto& [model, count] : running_reported) demand[model] += count;
  std::vector<policy::CacheNode> caches;
  std::map<std::string, policy::CacheModel> models;
  for (const auto& node : nodes) {
    if (!node.can_generate || s.draining.count(node.registration.node_name) != 0) continue;
    policy::CacheNode cache{node.node_id, node.registration.host_cache_bytes, {}, {}};
    for (const auto& model : node.registration.served_models) {
      cache.on_disk.insert(model.name);
      models.try_emplace(model.name, policy::CacheModel{model.name, model.weight_bytes, demand[model.name]});
    }
    // What it holds, and what it is loading because it was told to: kept where room allows.
    cache.held.insert(node.last_heartbeat.held_models.begin(), node.last_heartbeat.held_models.end());
    if (auto sent = s.placement.find(node.node_id); sent != s.placement.end()) {
      cache.held.insert(sent->second.begin(), sent->second.end());
    }
    caches.push_back(std::move(cache));
  }
  std::vector<policy::CacheModel> wanted;
  for (auto& [name, model] : models) wanted.push_back(model);
  auto assignment = policy::assign_host_caches(caches, wanted);
  for (const auto& cache : caches) {
    if (cache.cache_bytes == 0) continue;
    const auto& hold = assignment[cache.node_id];
    auto sent = s.placement.find(cache.node_id);
    if (sent != s.placement.end() && sent->second == hold) continue;
    s.registry->hold(cache.node_id, std::vector<std::string>(hold.begin(), hold.end()));
    spdlog::info("cluster: node {} holds [{}] from now on", cache.node_id, fmt::join(hold, ", "));
    s.placement[cache.node_id] = hold;
  }
  std::erase_if(s.placement, [&](const auto& entry) {
    return std::none_of(nodes.begin(), nodes.end(), [&](const auto& node) { return node.node_id == entry.first; });
  });
}

// Places `key` (place), or, when no worker holds its model now but one has it on disk, parks it
// until one does: the placement counts its demand and loads the model somewhere. False when no
// live worker has the model at all.
bool place_or_park(RouterActor* self, std::uint64_t key) {
  auto& s = self->state;
  Placed& p = s.placed.at(key);
  if (place(self, key)) {
    p.parked_since.reset();
    return true;
  }
  if (p.attempt >= kMaxAttempts || !on_some_disk(s, p.job.model)) return false;
  if (!p.parked_since) {
    p.parked_since = std::chrono::steady_clock::now();
    if (p.node != 0) --s.in_flight[p.node];
    p.node = 0;
    p.generation = 0;
    if (s.places_models) place_models(self);
  }
  return true;
}

// Every tick: place the models, start the parked requests whose model a worker now holds, fail
// those that waited too long.
void on_tick(RouterActor* self) {
  auto& s = self->state;
  if (s.places_models) place_models(self);
  std::vector<std::uint64_t> parked;
  std::map<std::string, std::uint32_t> parked_by_model;
  for (const auto& [key, p] : s.placed) {
    if (!p.parked_since) continue;
    parked.push_back(key);
    ++parked_by_model[p.job.model];
  }
  s.parked->publish(std::move(parked_by_model));
  const auto now = std::chrono::steady_clock::now();
  for (std::uint64_t key : parked) {
    Placed& p = s.placed.at(key);
    if (place(self, key)) {
      spdlog::info("cluster: request {} started on node {} after waiting {:.2f} s for model '{}'", p.proxy_id, p.node,
                   std::chrono::duration<double>(now - *p.parked_since).count(), p.job.model);
      p.parked_since.reset();
    } else if (!on_some_disk(s, p.job.model)) {
      fail(self, key, "no live worker serves model '" + p.job.model + "'");
    } else if (now - *p.parked_since > kParkTimeout) {
      fail(self, key, "no worker loaded model '" + p.job.model + "' within " +
                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kParkTimeout).count()) +
                          " s (its workers' host caches may be too small for it)");
    }
  }
  self->delayed_send(self, kPlacementTick, tick_atom::value);
}

bool node_registered(RouterActor* self, std::uint64_t node_id) {
  const auto nodes = self->state.registry->nodes();
  return std::any_of(nodes.begin(), nodes.end(), [&](const auto& n) { return n.node_id == node_id; });
}

void on_update(RouterActor* self, std::uint64_t key, std::uint64_t attempt, core::GenerationUpdate& update) {
  auto& s = self->state;
  auto it = s.placed.find(key);
  if (it == s.placed.end() || it->second.attempt != attempt) {  // cancelled or superseded
    if (update.handoff) s.registry->release_handoff(update.handoff->source_id);
    return;
  }
  Placed& p = it->second;
  if (update.worker_lost) {
    // A decode worker's call also fails when the KV it pulls is lost with its prefill worker:
    // it is excluded only once it is gone itself.
    if (p.stage != Stage::kDecode || !node_registered(self, p.node)) p.failed_nodes.insert(p.node);
    auto& model = p.job.model;
    if (p.job.stop.max_tokens > 0 && static_cast<std::int32_t>(p.streamed.size()) >= p.job.stop.max_tokens) {
      // Every token arrived; only the end was lost (a job scoring its prompt only must run again).
      TokenEvent event;
      event.id = p.proxy_id;
      event.finished = true;
      event.reason = core::FinishReason::kLength;
      self->send(p.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
      forget(self, key);
      return;
    }
    std::uint64_t lost_on = p.node;
    if (!place_or_park(self, key)) {
      spdlog::error("cluster: request {} lost on node {} ({}) and no other worker serves '{}'",
                    p.proxy_id, lost_on, update.error, model);
      fail(self, key, "worker lost (" + update.error + ") and no other worker serves model '" + model + "'");
      return;
    }
    s.metrics.resubmissions->Add(model_labels(model)).Increment();
    if (p.parked_since) {
      spdlog::warn("cluster: request {} lost on node {} after {} token(s) ({}); re-prefilled once a worker loads '{}'",
                   p.proxy_id, lost_on, p.streamed.size(), update.error, model);
    } else {
      spdlog::warn("cluster: request {} lost on node {} after {} token(s) ({}); re-prefilled on node {}",
                   p.proxy_id, lost_on, p.streamed.size(), update.error, p.node);
    }
    return;
  }
  if (update.kv_pull_s >= 0 && p.stage == Stage::kDecode) {
    const prometheus::Labels transport{{"transport", update.kv_shared_memory ? "shared_memory" : "rpc"}};
    s.metrics.handoffs->Add(transport).Increment();
    s.metrics.handoff_bytes->Add(transport).Increment(static_cast<double>(p.handoff_bytes));
    s.metrics.handoff_seconds->Add(transport).Increment(update.kv_pull_s);
  }
  // The queue time of a re-submission or of the decode stage is not the request's: only the
  // first token's counts.
  const double queue_s = p.streamed.empty() ? update.queue_s : -1;
  p.streamed.insert(p.streamed.end(), update.tokens.begin(), update.tokens.end());
  const bool finished = update.finished;
  if (!update.tokens.empty() || finished) {
    TokenEvent event = std::move(update);  // the token event, without the hop's own fields
    event.id = p.proxy_id;
    event.queue_s = queue_s;
    self->send(p.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
  }
  if (finished) return forget(self, key);
  if (update.handoff && !continue_on_decoder(self, key, *update.handoff)) {
    spdlog::error("cluster: request {} prefilled on node {} but no decode worker serves '{}'", p.proxy_id, p.node,
                  p.job.model);
    fail(self, key, "no live decode worker serves model '" + p.job.model + "'");
  }
}

// Drains or undrains the live worker called `name`, then reports every live worker.
void on_admin(RouterActor* self, WorkerAction action, const std::string& name, const WorkerReport& report) {
  auto& s = self->state;
  const auto nodes = s.registry->nodes();
  const bool live = std::any_of(nodes.begin(), nodes.end(),
                                [&](const auto& node) { return node.registration.node_name == name; });
  if (live && action != WorkerAction::kReport) {
    if (action == WorkerAction::kDrain) s.draining.insert(name);
    if (action == WorkerAction::kUndrain) s.draining.erase(name);
    spdlog::info("admin: worker '{}' {}", name,
                 action == WorkerAction::kDrain ? "draining (no new work; in-flight generations finish)"
                                                : "accepting work");
  }
  std::vector<WorkerStatus> out;
  for (const auto& node : nodes) {
    if (!node.can_generate) continue;  // a proxy controller reporting here
    const auto in_flight = s.in_flight.find(node.node_id);
    WorkerStatus status{node.node_id, node.registration.node_name, s.draining.count(node.registration.node_name) != 0,
                        in_flight == s.in_flight.end() ? 0 : in_flight->second, node.last_heartbeat.held_models};
    for (const auto& model : node.registration.served_models) {
      const auto& held = status.models;
      if (std::find(held.begin(), held.end(), model.name) != held.end()) status.held_bytes += model.weight_bytes;
    }
    status.cache_bytes = node.registration.host_cache_bytes;
    out.push_back(std::move(status));
  }
  report(std::move(out));
}

caf::behavior router_actor(RouterActor* self, rpc::ClusterRegistryServer* registry,
                           std::shared_ptr<const ClusterCatalog> catalog, RouterMetrics metrics, bool places_models,
                           std::shared_ptr<ParkedBoard> parked) {
  self->state.registry = registry;
  self->state.places_models = places_models;
  self->state.parked = std::move(parked);
  self->state.catalog = std::move(catalog);
  self->state.metrics = metrics;
  self->send(self, tick_atom::value);
  return {
      [self](tick_atom) { on_tick(self); },
      [self](admit_atom, PrefillJob& job) -> AdmissionReply {
        auto& s = self->state;
        auto proxy = caf::actor_cast<caf::actor>(self->current_sender());
        std::uint64_t key = s.next_key++;
        Placed p;
        p.proxy = proxy;
        p.proxy_id = job.info.id;
        p.job.model = s.catalog->current()->at(job.info.model).name;
        p.job.prompt = std::move(job.prompt);
        p.job.stop = job.stop;
        p.job.sampling = job.sampling;
        std::string model = p.job.model;
        s.placed.emplace(key, std::move(p));
        s.by_proxy[{proxy.address(), job.info.id}] = key;
        if (!place_or_park(self, key)) {
          s.by_proxy.erase({proxy.address(), job.info.id});
          s.placed.erase(key);
          return {false, 1.0, "no live worker serves model '" + model + "'"};
        }
        if (s.placed.at(key).parked_since) {
          spdlog::info("cluster: request {} waits for a worker to load model '{}'", job.info.id, model);
        }
        return {};
      },
      [self](update_atom, std::uint64_t key, std::uint64_t attempt, core::GenerationUpdate& update) {
        on_update(self, key, attempt, update);
      },
      [self](admin_atom, WorkerAction action, const std::string& name, const WorkerReport& report) {
        on_admin(self, action, name, report);
      },
      // From the proxy (twice: it tells "prefill" and "decode", both this router).
      [self](cancel_atom, core::RequestId id) {
        auto& s = self->state;
        auto it = s.by_proxy.find({caf::actor_cast<caf::actor_addr>(self->current_sender()), id});
        if (it == s.by_proxy.end()) return;
        s.registry->cancel(s.placed.at(it->second).generation);
        forget(self, it->second);
      },
  };
}

}  // namespace

core::Result<void> ClusterCatalog::add(const core::NodeRegistration& node) {
  std::lock_guard lock(mutex_);
  auto models = models_;
  for (const auto& model : node.served_models) {
    bool known = std::any_of(models.begin(), models.end(), [&](const auto& m) { return m.name == model.name; });
    if (!known) models.push_back(model);
  }
  if (models.size() == models_.size()) return core::ok();
  auto catalog = ModelCatalog::from_served(models);
  if (!catalog.ok()) return catalog.error().with_context("node '" + node.node_name + "'");
  models_ = std::move(models);
  current_ = *catalog;
  return core::ok();
}

std::shared_ptr<const ModelCatalog> ClusterCatalog::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void ParkedBoard::publish(std::map<std::string, std::uint32_t> by_model) {
  std::lock_guard lock(mutex_);
  by_model_ = std::move(by_model);
}

std::map<std::string, std::uint32_t> ParkedBoard::by_model() const {
  std::lock_guard lock(mutex_);
  return by_model_;
}

ClusterFront::ClusterFront(caf::actor_system& system, rpc::ClusterRegistryServer& registry,
                           std::shared_ptr<const ClusterCatalog> catalog, policy::Slo slo,
                           prometheus::Registry& metrics, bool places_models, std::chrono::milliseconds join_window)
    : system_(system), registry_(registry), catalog_(std::move(catalog)), slo_(slo),
      serving_metrics_(std::make_shared<ServingMetrics>(metrics)),
      join_window_ends_(std::chrono::steady_clock::now() + join_window) {
  RouterMetrics router_metrics;
  router_metrics.resubmissions = &prometheus::BuildCounter()
                                      .Name("aegaeon_cluster_resubmissions_total")
                                      .Help("Requests re-prefilled on another worker after theirs was lost")
                                      .Register(metrics);
  // Per worker: how work spreads, and that a worker which just joined gets its share.
  router_metrics.placements = &prometheus::BuildCounter()
                                   .Name("aegaeon_cluster_placements_total")
                                   .Help("Generations started on a worker (new requests, re-prefills, decodes "
                                         "of handed-off KV), by worker name")
                                   .Register(metrics);
  router_metrics.handoffs = &prometheus::BuildCounter()
                                 .Name("aegaeon_cluster_kv_handoffs_total")
                                 .Help("Prefilled requests whose KV a decode worker took from a prefill-only worker, "
                                       "by transport (shared_memory on one host, rpc through the controller)")
                                 .Register(metrics);
  router_metrics.handoff_bytes = &prometheus::BuildCounter()
                                      .Name("aegaeon_cluster_kv_handoff_bytes_total")
                                      .Help("Bytes of KV decode workers took from prefill-only workers, by transport")
                                      .Register(metrics);
  router_metrics.handoff_seconds = &prometheus::BuildCounter()
                                        .Name("aegaeon_cluster_kv_handoff_seconds_total")
                                        .Help("Seconds decode workers spent taking handed-off KV, by transport "
                                              "(bytes / seconds: the transfer rate)")
                                        .Register(metrics);
  router_ = system.spawn(router_actor, &registry_, catalog_, router_metrics, places_models, parked_);
}

ClusterFront::~ClusterFront() { stop(); }

std::map<std::string, std::uint32_t> ClusterFront::waiting() const { return parked_->by_model(); }

void ClusterFront::admin_workers(WorkerAction action, std::string name, WorkerReport report) {
  caf::anon_send(router_, admin_atom::value, action, std::move(name), std::move(report));
}

void ClusterFront::submit(core::GenerationRequest request, const rpc::http::Responder& responder) {
  caf::actor proxy;
  {
    std::lock_guard lock(mutex_);
    auto catalog = catalog_->current();
    if (catalog->find(request.model) == nullptr && std::chrono::steady_clock::now() < join_window_ends_) {
      core::Error e{core::ErrorCode::kUnavailable,
                    "model '" + request.model + "' is not known yet: this controller has just started and its "
                    "workers are still joining",
                    "model"};
      responder.respond(rpc::http::openai::error_response(e, 1));
      return;
    }
    if (catalog != proxy_catalog_) {
      proxies_.push_back(spawn_proxy(system_, catalog, slo_, serving_metrics_));
      wire_proxy(proxies_.back(), router_, router_);
      proxy_catalog_ = std::move(catalog);
    }
    proxy = proxies_.back();
  }
  submit_generation(proxy, std::move(request), responder);
}

std::vector<ModelStatus> ClusterFront::models() const {
  auto catalog = catalog_->current();
  std::set<std::string> available;
  for (const auto& node : registry_.nodes()) {
    if (!node.can_generate || !has_role(node, "prefill")) continue;  // requests start on prefill
    for (const auto& model : node.registration.served_models) available.insert(model.name);
  }
  std::vector<ModelStatus> out;
  for (const auto& entry : catalog->entries()) {
    if (available.count(entry.name) != 0) out.push_back({entry.name, "available", entry.max_context_tokens});
  }
  return out;
}

void ClusterFront::stop() {
  std::lock_guard lock(mutex_);
  for (const auto& proxy : proxies_) caf::anon_send_exit(proxy, caf::exit_reason::user_shutdown);
  proxies_.clear();
  if (router_) caf::anon_send_exit(router_, caf::exit_reason::user_shutdown);
  router_ = caf::actor{};
}

}  // namespace aegaeon::actors
