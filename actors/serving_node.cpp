#include "actors/serving_node.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "actors/decode.hpp"
#include "actors/gpu_worker.hpp"
#include "actors/model_catalog.hpp"
#include "actors/prefill.hpp"
#include "actors/proxy.hpp"
#include "actors/serving_atoms.hpp"
#include "actors/serving_metrics.hpp"
#include "core/metrics.hpp"

namespace aegaeon::actors {
namespace {

// Tells the operator how the device arena compares with the models: a weights region holds one
// model, so serving more models than a device has weight regions means switching between them.
void log_memory_plan(const worker::ArenaLayout& arena, const worker::HostModelCache& models) {
  auto mib = [](std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); };
  std::string sizes;
  std::uint64_t total = 0;
  for (core::ModelId m = 0; m < models.size(); ++m) {
    const auto& info = models.info(m);
    sizes += fmt::format("{}{} {:.1f} MiB", m == 0 ? "" : ", ", info.name, mib(info.weight_bytes));
    total += info.weight_bytes;
  }
  spdlog::info("models: {} ({:.1f} MiB of weights in all)", sizes, mib(total));
  spdlog::info("device arena {:.1f} MiB each: {} weight slots of {:.1f} + KV {:.1f} + scratch {:.1f} MiB",
               mib(arena.total_bytes()), arena.weight_slots, mib(arena.weight_slot_bytes), mib(arena.kv_bytes),
               mib(arena.scratch_bytes));
  const auto slots = static_cast<std::int32_t>(arena.weight_slots);
  if (models.size() > slots) {
    spdlog::info("a device holds {} of the {} models at a time: the others are switched in between tokens", slots,
                 models.size());
  } else {
    spdlog::info("a device holds all {} models at once: switching among them copies nothing", models.size());
  }
}

// Where a model stands between the admin API's unload and load.
enum class LoadState { kLoaded, kUnloading, kUnloaded, kLoading };

const char* to_string(LoadState state) {
  switch (state) {
    case LoadState::kLoaded: return "loaded";
    case LoadState::kUnloading: return "unloading";
    case LoadState::kUnloaded: return "unloaded";
    case LoadState::kLoading: return "loading";
  }
  return "?";
}

// What the admin API changes while serving: the models pinned to devices of their own, per role
// (the actors get copies), and whether each model is loaded.
struct AdminBoard {
  std::mutex mutex;
  policy::ModelPins prefill;
  policy::ModelPins decode;
  std::vector<LoadState> load;

  // Records that model `index` is now `state`.
  void set_load(size_t index, LoadState state) {
    std::lock_guard lock(mutex);
    load[index] = state;
  }
};

// Each model, whether a device holds its weights now, its pins and load state, and what the
// front door reports of it (`activity`: empty, or one per model in catalog order).
std::vector<ModelStatus> model_statuses(const ModelCatalog& catalog, const ResidencyBoard& residency,
                                        AdminBoard& board, const std::vector<FrontActivity>& activity = {}) {
  std::vector<ModelStatus> out;
  std::lock_guard lock(board.mutex);
  for (const auto& entry : catalog.entries()) {
    const auto index = static_cast<size_t>(entry.id);
    bool resident = false;
    for (const auto& slot : residency.device_model) resident |= slot.load() == entry.id;
    const LoadState load = board.load.at(index);
    ModelStatus status{entry.name, load != LoadState::kLoaded ? to_string(load) : resident ? "resident" : "cached",
                       entry.max_context_tokens};
    status.pinned_prefill_device = board.prefill.instance_of(entry.id);
    status.pinned_decode_device = board.decode.instance_of(entry.id);
    if (index < activity.size()) {
      status.draining = activity[index].draining;
      status.running = activity[index].running;
      status.waiting = activity[index].waiting;
    }
    out.push_back(std::move(status));
  }
  return out;
}

// What the devices [first, first + count) of `residency` hold now.
std::vector<std::optional<core::ModelId>> residents(const ResidencyBoard& residency, size_t first, size_t count) {
  std::vector<std::optional<core::ModelId>> out;
  for (size_t d = first; d < first + count && d < residency.device_model.size(); ++d) {
    const auto model = residency.device_model[d].load();
    out.push_back(model >= 0 ? std::optional<core::ModelId>(model) : std::nullopt);
  }
  return out;
}

}  // namespace

struct ServingNode::Impl {
  std::shared_ptr<worker::HostModelCache> models;
  std::shared_ptr<const ModelCatalog> catalog;
  std::shared_ptr<ResidencyBoard> residency;
  std::shared_ptr<AdminBoard> board = std::make_shared<AdminBoard>();
  std::shared_ptr<ServingMetrics> metrics;
  policy::ServingPolicy policy = policy::ServingPolicy::kAegaeon;
  int prefill_devices = 0;
  caf::actor proxy;
  caf::actor prefill;
  caf::actor decode;
  std::vector<GpuWorkerActor> workers;
  // One thread per model reads its files on an admin load (a model has one load at a time);
  // joined before the next load of the model and at stop.
  std::mutex loaders_mutex;
  std::vector<std::thread> loaders;
  bool stopped = false;

  // The catalog entry of `model`, or the admin API's error for it.
  core::Result<const CatalogEntry*> admin_entry(std::string_view model) const {
    const CatalogEntry* entry = catalog->find(model);
    if (entry == nullptr) {
      return core::Error{core::ErrorCode::kNotFound, "model '" + std::string(model) + "' is not served here", "model"};
    }
    return entry;
  }

  // Starts an unload (kLoaded → kUnloading) or a load (kUnloaded → kLoading) of `model`: its id,
  // or the admin API's error (not served, a worker process, in another state, pinned).
  core::Result<core::ModelId> begin_load_change(const std::string& model, LoadState from, LoadState to) const {
    auto entry = admin_entry(model);
    if (!entry.ok()) return entry.error();
    const core::ModelId id = (*entry)->id;
    std::lock_guard lock(board->mutex);
    const LoadState now = board->load[static_cast<size_t>(id)];
    if (now != from) {
      return core::error(core::ErrorCode::kFailedPrecondition,
                         "model '" + model + "' is " + to_string(now) +
                             (from == LoadState::kLoaded ? " already" : " (only an unloaded model can be loaded)"));
    }
    // Only a loaded model can be pinned (set_pinned), and it stays loaded until unpinned.
    if (board->prefill.instance_of(id) || board->decode.instance_of(id)) {
      return core::error(core::ErrorCode::kFailedPrecondition,
                         "model '" + model + "' is pinned: unpin it first (POST /admin/models/" + model + "/unpin)");
    }
    board->load[static_cast<size_t>(id)] = to;
    return id;
  }
};

ServingNode::ServingNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServingNode::~ServingNode() { stop(); }

core::Result<std::unique_ptr<ServingNode>> ServingNode::start(caf::actor_system& system,
                                                              ServingOptions options,
                                                              prometheus::Registry& registry) {
  if (options.models.empty()) return core::error(core::ErrorCode::kInvalidArgument, "no models to serve");
  const bool prefill = runs_prefill(options.role);
  const bool decode = runs_decode(options.role);
  const auto model_count = static_cast<std::int32_t>(options.models.size());
  // A role this node does not run has its devices on other nodes: only its own are checked.
  AEGAEON_TRY(policy::check_devices(options.policy, model_count,
                                    prefill ? options.prefill_devices : model_count,
                                    decode ? options.decode_devices : model_count));
  if (!prefill) options.prefill_devices = 0;
  if (!decode) options.decode_devices = 0;
  auto impl = std::make_unique<Impl>();
  spdlog::info("loading {} model(s) into the host model cache", options.models.size());
  const bool read_weights = !options.start_unloaded;
  auto cache = worker::HostModelCache::load(
      options.models,
      [read_weights](int index, int count, std::string_view name) {
        spdlog::info("  [{}/{}] {} {}", index + 1, count, name, read_weights ? "cached" : "checked (loaded when placed here)");
      },
      read_weights);
  if (!cache.ok()) return cache.error();
  impl->models = *cache;
  auto catalog = ModelCatalog::load(options.models, *impl->models);
  if (!catalog.ok()) return catalog.error();
  impl->catalog = *catalog;

  auto metrics = std::make_shared<ServingMetrics>(registry);
  impl->metrics = metrics;
  for (core::ModelId m = 0; m < impl->models->size(); ++m) {
    const auto& info = impl->models->info(m);
    metrics->host_weights_bytes.Add(model_labels(info.name)).Set(read_weights ? static_cast<double>(info.weight_bytes) : 0.0);
  }
  impl->policy = options.policy;
  impl->prefill_devices = options.prefill_devices;
  impl->board->load.assign(static_cast<size_t>(model_count), read_weights ? LoadState::kLoaded : LoadState::kUnloaded);
  impl->board->prefill = policy::initial_pins(options.policy, model_count, options.prefill_devices);
  impl->board->decode = policy::initial_pins(options.policy, model_count, options.decode_devices);
  int devices = options.prefill_devices + options.decode_devices;
  impl->residency = std::make_shared<ResidencyBoard>(static_cast<size_t>(devices));
  std::vector<GpuWorkerActor> prefill_workers;
  std::vector<GpuWorkerActor> decode_workers;
  std::vector<std::int64_t> kv_capacity(static_cast<size_t>(impl->models->size()), 0);
  worker::ArenaLayout decode_arena;
  for (int d = 0; d < devices; ++d) {
    bool is_prefill = d < options.prefill_devices;
    worker::DeviceWorkerOptions device_options = options.device;
    device_options.device = worker::device_for(options.device.device, d);
    auto device = worker::DeviceWorker::create(device_options, impl->models);
    if (!device.ok()) return device.error().with_context("device " + std::to_string(d));
    if (d == 0) log_memory_plan((*device)->arena_layout(), *impl->models);
    std::string name = (is_prefill ? "prefill-" : "decode-") +
                       std::to_string(is_prefill ? d : d - options.prefill_devices);
    if (!is_prefill) {
      decode_arena = (*device)->arena_layout();
      for (core::ModelId m = 0; m < impl->models->size(); ++m) {
        kv_capacity[static_cast<size_t>(m)] = (*device)->kv_capacity_tokens(m);
      }
    }
    auto actor = spawn_gpu_worker(system, std::move(*device), name, metrics, impl->residency,
                                  static_cast<size_t>(d));
    (is_prefill ? prefill_workers : decode_workers).push_back(actor);
    impl->workers.push_back(actor);
  }
  impl->proxy = options.front ? options.front
                              : spawn_proxy(system, impl->catalog, options.slo, metrics, options.max_prompt_tokens);
  if (decode) {
    DecodeSetup decode_setup;
    decode_setup.workers = decode_workers;
    decode_setup.models = impl->models;
    decode_setup.config.round.tbt_slo_s = options.slo.tbt_s;
    if (options.policy == policy::ServingPolicy::kAegaeon) {
      decode_setup.config = policy::elastic_decode_config(decode_setup.config, static_cast<double>(decode_arena.kv_bytes),
                                                          static_cast<std::int32_t>(decode_arena.weight_slots), options.slo.ttft_s);
    }
    decode_setup.kv_capacity_tokens = kv_capacity;
    decode_setup.policy = options.policy;
    decode_setup.pins = impl->board->decode;
    impl->decode = spawn_decode(system, std::move(decode_setup), impl->proxy, metrics);
  }
  if (prefill) {
    PrefillSetup prefill_setup;
    prefill_setup.workers = prefill_workers;
    prefill_setup.models = impl->models;
    prefill_setup.slo = options.slo;
    prefill_setup.admission = options.admission;
    prefill_setup.policy = options.policy;
    prefill_setup.pins = impl->board->prefill;
    // Without a decode role here, handoffs go to the front, which ships them to another node.
    impl->prefill = spawn_prefill(system, std::move(prefill_setup), decode ? impl->decode : impl->proxy,
                                  impl->proxy, metrics);
  }
  if (prefill && decode) caf::anon_send(impl->decode, wire_atom::value, impl->prefill);
  if (options.front) caf::anon_send(options.front, catalog_atom::value, impl->catalog);
  wire_proxy(impl->proxy, impl->prefill, impl->decode);
  if (!read_weights) {
    for (const auto& entry : impl->catalog->entries()) {
      send_front_action(impl->proxy, FrontAction::kUnload, entry.name, [](std::vector<FrontActivity>) {});
    }
  }
  spdlog::info("serving {} model(s) on {} prefill + {} decode device(s), policy {}", impl->models->size(),
               options.prefill_devices, options.decode_devices, policy::to_string(options.policy));
  return std::unique_ptr<ServingNode>(new ServingNode(std::move(impl)));
}

void ServingNode::submit(core::GenerationRequest request, const rpc::http::Responder& responder) const {
  submit_generation(impl_->proxy, std::move(request), responder);
}

void ServingNode::admin(AdminAction action, std::string model,
                        std::function<void(std::vector<ModelStatus>)> done) const {
  static constexpr FrontAction kFront[] = {FrontAction::kReport, FrontAction::kDrain, FrontAction::kUndrain};
  // The report runs on the proxy's thread, possibly after the node is gone: it holds what it reads.
  send_front_action(impl_->proxy, kFront[static_cast<int>(action)], std::move(model),
                    [catalog = impl_->catalog, residency = impl_->residency, board = impl_->board,
                     done = std::move(done)](std::vector<FrontActivity> activity) {
                      done(model_statuses(*catalog, *residency, *board, activity));
                    });
}

std::vector<ModelStatus> ServingNode::models() const {
  auto all = model_statuses(*impl_->catalog, *impl_->residency, *impl_->board);
  std::erase_if(all, [](const ModelStatus& m) { return m.state != "resident" && m.state != "cached"; });
  return all;
}

void ServingNode::unload_model(std::string model, AdminDone done) const {
  auto started = impl_->begin_load_change(model, LoadState::kLoaded, LoadState::kUnloading);
  if (!started.ok()) return done(started.error());
  const core::ModelId id = *started;
  const auto index = static_cast<size_t>(id);
  auto board = impl_->board;
  // 1. The front door refuses its new requests, unless some are in flight (checked in the same
  // step). 2. The cache refuses new copies of its weights. 3. Every device forgets them (a copy
  // in flight finishes first). 4. The host memory goes.
  std::vector<caf::actor> roles;
  for (const auto& role : {impl_->prefill, impl_->decode}) {
    if (role) roles.push_back(role);
  }
  send_front_action(
      impl_->proxy, FrontAction::kUnload, model,
      [id, index, model, roles, board, cache = impl_->models, catalog = impl_->catalog,
       residency = impl_->residency, metrics = impl_->metrics, done = std::move(done)](std::vector<FrontActivity> activity) {
        const FrontActivity& front = activity.at(index);
        if (!front.unloaded) {
          board->set_load(index, LoadState::kLoaded);
          return done(core::error(core::ErrorCode::kFailedPrecondition,
                                  "model '" + model + "' has " + std::to_string(front.running) + " running and " +
                                      std::to_string(front.waiting) + " waiting request(s): drain it first (POST /admin/models/" +
                                      model + "/drain) and unload it once requests_running and requests_waiting are 0"));
        }
        cache->begin_unload(id);
        auto pending = std::make_shared<std::atomic<size_t>>(roles.size());
        DevicesForgot forgotten = [=] {
          if (pending->fetch_sub(1) != 1) return;
          cache->free_weights(id);
          metrics->host_weights_bytes.Add(model_labels(model)).Set(0);
          board->set_load(index, LoadState::kUnloaded);
          spdlog::info("host cache: model {} unloaded ({:.1f} MiB of host memory freed)", model,
                       static_cast<double>(cache->info(id).weight_bytes) / (1024.0 * 1024.0));
          done(model_statuses(*catalog, *residency, *board, activity));
        };
        for (const auto& role : roles) caf::anon_send(role, unload_atom::value, id, forgotten);
      });
}

void ServingNode::load_model(std::string model, AdminDone done) const {
  auto started = impl_->begin_load_change(model, LoadState::kUnloaded, LoadState::kLoading);
  if (!started.ok()) return done(started.error());
  const core::ModelId id = *started;
  const auto index = static_cast<size_t>(id);
  auto board = impl_->board;
  std::lock_guard lock(impl_->loaders_mutex);
  if (impl_->loaders.size() < static_cast<size_t>(impl_->models->size())) impl_->loaders.resize(static_cast<size_t>(impl_->models->size()));
  std::thread& loader = impl_->loaders[index];
  if (loader.joinable()) loader.join();  // the model's previous load, finished
  // Reading a model's files can take seconds: not on the kj thread nor an actor's.
  loader = std::thread([id, index, model, board, proxy = impl_->proxy, cache = impl_->models, catalog = impl_->catalog,
                        residency = impl_->residency, metrics = impl_->metrics, done = std::move(done)] {
    spdlog::info("host cache: loading model {} from disk", model);
    const auto start = std::chrono::steady_clock::now();
    if (auto loaded = cache->load_weights(id); !loaded.ok()) {
      board->set_load(index, LoadState::kUnloaded);
      spdlog::warn("host cache: loading model {} failed: {}", model, loaded.error().message);
      // Whatever the loader found (a missing file, a bad one, another shape), the request was
      // fine and the model is known: the folder's state conflicts with it.
      return done(core::error(core::ErrorCode::kFailedPrecondition, loaded.error().message + " (the model stays unloaded)"));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics->host_weights_bytes.Add(model_labels(model)).Set(static_cast<double>(cache->info(id).weight_bytes));
    send_front_action(proxy, FrontAction::kLoad, model,
                      [index, model, seconds, board, cache, id, catalog, residency, done](std::vector<FrontActivity> activity) {
                        board->set_load(index, LoadState::kLoaded);
                        spdlog::info("host cache: model {} loaded ({:.1f} MiB in {:.2f} s)", model,
                                     static_cast<double>(cache->info(id).weight_bytes) / (1024.0 * 1024.0), seconds);
                        done(model_statuses(*catalog, *residency, *board, activity));
                      });
  });
}

core::Result<void> ServingNode::set_pinned(std::string_view model, bool pinned) const {
  const CatalogEntry* entry = impl_->catalog->find(model);
  if (entry == nullptr) {
    return core::Error{core::ErrorCode::kNotFound, "model '" + std::string(model) + "' is not served here", "model"};
  }
  if (impl_->policy == policy::ServingPolicy::kStatic) {
    return core::error(core::ErrorCode::kFailedPrecondition,
                       "serve.policy=static gives every model devices of its own already; pins apply to "
                       "the other policies");
  }
  auto& board = *impl_->board;
  std::lock_guard lock(board.mutex);
  if (const LoadState load = board.load.at(static_cast<size_t>(entry->id)); pinned && load != LoadState::kLoaded) {
    return core::error(core::ErrorCode::kFailedPrecondition,
                       "model '" + std::string(model) + "' is " + to_string(load) + ": load it before pinning it");
  }
  if (pinned) {
    const bool was_pinned = board.prefill.instance_of(entry->id).has_value();
    const auto prefill_count = static_cast<size_t>(board.prefill.instances());
    const auto decode_count = static_cast<size_t>(board.decode.instances());
    auto on_prefill = board.prefill.pin(entry->id, residents(*impl_->residency, 0, prefill_count));
    if (!on_prefill.ok()) {
      return core::error(core::ErrorCode::kFailedPrecondition,
                         "cannot pin '" + std::string(model) + "': prefill devices: " + on_prefill.error().message +
                             " (serve.prefill_devices)");
    }
    auto on_decode = board.decode.pin(
        entry->id, residents(*impl_->residency, static_cast<size_t>(impl_->prefill_devices), decode_count));
    if (!on_decode.ok()) {
      if (!was_pinned) board.prefill.unpin(entry->id);
      return core::error(core::ErrorCode::kFailedPrecondition,
                         "cannot pin '" + std::string(model) + "': decode devices: " + on_decode.error().message +
                             " (serve.decode_devices)");
    }
    spdlog::info("admin: model {} pinned to prefill-{} and decode-{}", model, *on_prefill, *on_decode);
  } else {
    const bool had_prefill_pin = board.prefill.unpin(entry->id);
    const bool had_decode_pin = board.decode.unpin(entry->id);
    if (had_prefill_pin || had_decode_pin) spdlog::info("admin: model {} unpinned", model);
  }
  // Sent under the lock, so the actors see the tables in the order they were made.
  if (impl_->prefill) caf::anon_send(impl_->prefill, pin_atom::value, board.prefill);
  if (impl_->decode) caf::anon_send(impl_->decode, pin_atom::value, board.decode);
  return core::ok();
}

const ModelCatalog& ServingNode::catalog() const { return *impl_->catalog; }

std::uint64_t ServingNode::kv_bytes_per_token(core::ModelId model) const {
  return impl_->models->info(model).kv_bytes_per_token;
}

std::uint64_t ServingNode::weight_bytes(core::ModelId model) const {
  return impl_->models->info(model).weight_bytes;
}

void ServingNode::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  {
    std::lock_guard lock(impl_->loaders_mutex);
    for (auto& loader : impl_->loaders) {
      if (loader.joinable()) loader.join();
    }
  }
  for (const auto& actor : {impl_->proxy, impl_->prefill, impl_->decode}) {
    if (actor) caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }
  for (const auto& worker : impl_->workers) caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  // Drop our handles: a detached actor's thread ends only when no handle refers to it.
  impl_->workers.clear();
  impl_->proxy = caf::actor{};
  impl_->prefill = caf::actor{};
  impl_->decode = caf::actor{};
}

}  // namespace aegaeon::actors
