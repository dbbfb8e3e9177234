// `aegaeon worker`: a serving runtime (prefill, decode and gpu_worker actors over the CPU
// backend) that joins a controller, advertises its models, and runs the generations the
// controller submits, streaming their tokens back. It re-joins with backoff when the controller
// goes away.
#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <csignal>
#include <mutex>
#include <thread>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include "actors/actor_runtime.hpp"
#include "actors/cache_keeper.hpp"
#include "actors/model_catalog.hpp"
#include "actors/serving_node.hpp"
#include "actors/status_actor.hpp"
#include "actors/worker_relay.hpp"
#include "cmd/cluster_flags.hpp"
#include "cmd/commands.hpp"
#include "cmd/membership.hpp"
#include "cmd/process_signals.hpp"
#include "cmd/tls_config.hpp"
#include "cmd/serve_config.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "gpu/backend/cuda/cuda_backend.hpp"
#include "rpc/cluster_registry.hpp"
#include "rpc/kj_runtime.hpp"

namespace aegaeon::cmd {
namespace {

struct WorkerOptions {
  ServeOptions serve;
  std::string join;
  std::string name;
  std::string role = "both";
  std::string device;  // empty: serve.device
  std::string cluster_token;
  uint32_t rejoin_backoff_max_ms = 5000;
  std::string kv_transport = "auto";
};


// What this worker tells the controller when it joins.
core::NodeRegistration describe_node(const WorkerOptions& options, const actors::ServingOptions& serving,
                                     const actors::ServingNode& node, std::uint64_t host_cache_bytes) {
  core::NodeRegistration info;
  info.node_name = options.name;
  info.protocol_version = rpc::cluster_protocol_version();
  const bool prefill = actors::runs_prefill(serving.role);
  const bool decode = actors::runs_decode(serving.role);
  int devices = (prefill ? serving.prefill_devices : 0) + (decode ? serving.decode_devices : 0);
  for (int d = 0; d < devices; ++d) {
    const std::string device = worker::device_for(serving.device.device, d);
    if (device == "cpu") {
      info.devices.push_back({"cpu", static_cast<uint32_t>(d), serving.device.arena_bytes});
    } else {  // serving_options checked the name
      const int gpu = backend::cuda::parse_cuda_device(device).value();
      info.devices.push_back({"cuda", static_cast<uint32_t>(gpu), serving.device.arena_bytes});
    }
  }
  info.host_cache_bytes = host_cache_bytes;
  if (prefill) info.roles.push_back("prefill");
  if (decode) info.roles.push_back("decode");
  for (const auto& spec : serving.models) {
    const auto* entry = node.catalog().find(spec.name);
    auto model = actors::describe_model(spec, entry->max_context_tokens);
    if (!model.ok()) throw CommandError(model.error().message);
    model->weight_bytes = node.weight_bytes(entry->id);
    info.models_on_disk.push_back(spec.name);
    info.served_models.push_back(std::move(*model));
  }
  return info;
}

void run_worker(WorkerOptions options) {
  // KV blobs moving between workers are tens of MiB each. glibc serves blocks that large with a
  // fresh mmap and unmaps them on free, so every handoff paid a page fault per 4 KiB again
  // (bench/cluster: the pull ran at the speed of first-touching new pages, 188 MiB/s; 287 with
  // this). Blocks up to 32 MiB (glibc's largest threshold) now come from the heap, and freed
  // memory stays there for the next one. Larger blobs still fault in: a pool of receive buffers
  // is the fix for those.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  core::Config config = load_serve_config(options.serve);
  if (auto logging = core::init_logging(config.log); !logging.ok()) {
    throw CommandError(logging.error().message, 2);
  }
  std::vector<HostPort> controllers = parse_host_ports(options.join, "--join");
  if (!options.device.empty()) {
    if (auto applied = core::apply_override(config, "serve.device=" + options.device); !applied.ok()) {
      throw CommandError("--device " + applied.error().message, 2);
    }
  }
  if (options.cluster_token.empty()) throw CommandError("--cluster-token is required", 2);
  if (options.name.empty()) options.name = default_node_name();

  // Certificates load before anything starts: a bad file is a start-up error naming its key.
  const auto tls = cluster_tls(config.cluster, rpc::TlsContext::Side::kClient);
  const ProcessSignals signals;  // before any thread starts

  prometheus::Registry registry;
  actors::ServingOptions serving = serving_options(config.serve);
  serving.role = options.role == "prefill" ? actors::NodeRole::kPrefill
                 : options.role == "decode" ? actors::NodeRole::kDecode
                                            : actors::NodeRole::kBoth;
  auto actor_runtime = std::make_unique<actors::ActorRuntime>();
  auto load = std::make_shared<actors::RelayLoad>();
  auto relay = actors::spawn_worker_relay(actor_runtime->system(), load);
  serving.front = relay;
  // With a host cache limit the models load as the controller places them here.
  const std::uint64_t host_cache_bytes = config.serve.host_cache_bytes;
  serving.start_unloaded = host_cache_bytes != 0;
  auto started = actors::ServingNode::start(actor_runtime->system(), serving, registry);
  if (!started.ok()) {
    // The actor system waits for every actor when it goes: the relay must stop first.
    actors::stop_actor(relay);
    throw CommandError(started.error().message);
  }
  std::unique_ptr<actors::ServingNode> node = std::move(*started);

  auto kj = rpc::KjRuntime::start();
  if (!kj.ok()) throw CommandError(kj.error().message);
  std::unique_ptr<rpc::KjRuntime> kj_runtime = std::move(*kj);

  auto handlers = std::make_shared<rpc::WorkerHandlers>();
  handlers->start = [relay, &node](uint64_t id, core::GenerationJob job, rpc::GenerationStream stream) {
    actors::start_remote_generation(relay, node->catalog(), id, std::move(job), std::move(stream));
  };
  handlers->cancel = [relay](uint64_t id) { actors::cancel_remote_generation(relay, id); };
  handlers->kv_shared_memory = options.kv_transport == "auto";
  std::unique_ptr<actors::CacheKeeper> keeper;
  if (host_cache_bytes != 0) {
    keeper = std::make_unique<actors::CacheKeeper>(*node, host_cache_bytes);
    handlers->hold = [keeper = keeper.get()](std::vector<std::string> models) { keeper->want(std::move(models)); };
  }
  if (serving.role != actors::NodeRole::kPrefill) {
    handlers->accepts = [&node](const core::GenerationJob& job, const core::KvHandoff& handoff) -> core::Result<void> {
      const auto* model = node->catalog().find(job.model);
      return actors::check_handoff(node->catalog(), job, handoff, model ? node->kv_bytes_per_token(model->id) : 0);
    };
    handlers->adopt = [relay, &node](uint64_t id, core::GenerationJob job, core::KvHandoff handoff,
                                     rpc::GenerationStream stream) {
      actors::adopt_remote_generation(relay, node->catalog(), id, std::move(job), std::move(handoff),
                                      std::move(stream));
    };
  }
  // The load report of every heartbeat: generations in flight by model (from every controller)
  // and the models held — without those on their way out, so no controller sends them more.
  auto report = [&node, &keeper, load] {
    core::HeartbeatReport beat;
    beat.model_requests = load->by_model();
    beat.running_requests = load->total();
    if (keeper) {
      beat.held_models = keeper->held();
    } else {
      for (const auto& model : node->models()) beat.held_models.push_back(model.name);
    }
    return beat;
  };
  const core::NodeRegistration description = describe_node(options, serving, *node, host_cache_bytes);
  std::vector<std::unique_ptr<Membership>> memberships;
  for (const HostPort& controller : controllers) {
    memberships.push_back(std::make_unique<Membership>(*kj_runtime, controller, tls, description, options.cluster_token,
                                                       handlers, report,
                                                       std::chrono::milliseconds(options.rejoin_backoff_max_ms)));
  }

  const int received = signals.wait_for_stop({tls});
  std::optional<std::string> refusal;
  for (const auto& membership : memberships) {
    if (!refusal) refusal = membership->refusal();
  }
  if (!refusal) spdlog::info("received {}: stopping the worker", received == SIGINT ? "SIGINT" : "SIGTERM");

  // The relay sends into kj objects: stop every actor before the kj runtime goes.
  memberships.clear();
  keeper.reset();
  node->stop();
  actors::stop_actor(relay);
  actor_runtime->system().await_all_actors_done();
  kj_runtime.reset();
  node.reset();
  actor_runtime.reset();
  if (refusal) throw CommandError("the controller refused this worker: " + *refusal, 2);
  spdlog::info("worker stopped cleanly");
}

}  // namespace

void add_worker_command(CLI::App& app) {
  auto options = std::make_shared<WorkerOptions>();
  auto* sub = app.add_subcommand(
      "worker",
      "Run a serving runtime that joins a controller (aegaeon controller) and serves the requests\n"
      "it routes here. Models and devices come from the same configuration as `aegaeon serve`.\n"
      "Re-joins with backoff when the controller restarts; stops on SIGINT/SIGTERM.");
  sub->add_option("--join", options->join,
                  "The controllers' cluster addresses, HOST:PORT[,HOST:PORT...]: it joins every one\n"
                  "(several controllers share the workers; one of them places models)")
      ->required();
  sub->add_option("--cluster-token", options->cluster_token,
                  "Shared secret of the cluster (or AEGAEON_CLUSTER_TOKEN)")
      ->envname("AEGAEON_CLUSTER_TOKEN");
  sub->add_option("--name", options->name, "Node name in the controller's logs (default HOST-PID)");
  sub->add_option("--rejoin-backoff-max-ms", options->rejoin_backoff_max_ms,
                  "Longest wait between two attempts to (re-)join the controller (default 5000;\n"
                  "the first wait is 100 ms, doubling)")
      ->check(CLI::Range(1u, 600000u));
  sub->add_option("--role", options->role,
                  "both (default): prefill and decode here; prefill: stop after the first token and\n"
                  "hand the KV to a decode worker; decode: continue what prefill workers handed off\n"
                  "(serve.prefill_devices / serve.decode_devices apply to the roles run here)")
      ->check(CLI::IsMember({"both", "prefill", "decode"}));
  sub->add_option("--kv-transport", options->kv_transport,
                  "How a decode worker takes the KV a prefill worker handed off: auto (default): read it\n"
                  "from the prefill worker's shared memory when both run on this host, else pull it in\n"
                  "chunks through the controller; rpc: always pull it")
      ->check(CLI::IsMember({"auto", "rpc"}));
  sub->add_option("--device", options->device,
                  "cpu, cuda (devices spread over the GPUs) or cuda:N; overrides serve.device");
  add_config_options(*sub, options->serve);
  sub->callback([options] { run_worker(*options); });
}

}  // namespace aegaeon::cmd
