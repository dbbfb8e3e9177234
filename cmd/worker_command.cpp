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

// Keeps the worker registered: joins, sends heartbeats, and re-joins with exponential backoff
// (100 ms doubling up to `backoff_max`, 5 s by default) whenever the controller is unreachable or
// forgot the node. A refusal (wrong token or version) is final: the process stops with that
// message. Constructed on the thread that waits for SIGINT/SIGTERM (sigwait).
class Membership {
 public:
  /// `held` tells which models the worker holds now (sent at each join and heartbeat).
  Membership(rpc::KjRuntime& kj, HostPort controller, core::NodeRegistration node, std::string token,
             std::shared_ptr<const rpc::WorkerHandlers> handlers,
             std::shared_ptr<std::atomic<std::uint32_t>> in_flight, std::function<std::vector<std::string>()> held,
             std::chrono::milliseconds backoff_max)
      : kj_(kj), controller_(std::move(controller)), node_(std::move(node)), token_(std::move(token)),
        handlers_(std::move(handlers)), in_flight_(std::move(in_flight)), held_(std::move(held)),
        backoff_max_(backoff_max), waiter_(pthread_self()), thread_([this] { run(); }) {}

  ~Membership() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  /// Set when the controller refused this worker.
  [[nodiscard]] std::optional<std::string> refusal() const {
    std::lock_guard lock(mutex_);
    return refusal_;
  }

 private:
  // Waits up to `delay`; false when stopping.
  bool sleep(std::chrono::milliseconds delay) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, delay, [this] { return stopping_; });
  }

  // Waits for the next heartbeat: `interval`, or less when the models held differ from `sent`
  // (the controller routes by them: a model just loaded gets its requests at once). False when
  // stopping.
  bool sleep_until_beat(std::chrono::milliseconds interval, const std::vector<std::string>& sent) {
    constexpr auto kHeldCheck = std::chrono::milliseconds(50);
    const auto due = std::chrono::steady_clock::now() + interval;
    while (std::chrono::steady_clock::now() < due) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - std::chrono::steady_clock::now());
      if (!sleep(std::min(left, std::chrono::milliseconds(kHeldCheck)))) return false;
      if (held_() != sent) return true;
    }
    return true;
  }

  void run() {
    const std::chrono::milliseconds first_backoff = std::min(std::chrono::milliseconds(100), backoff_max_);
    std::chrono::milliseconds backoff = first_backoff;
    std::string address = controller_.host + ":" + std::to_string(controller_.port);
    while (true) {
      auto client = rpc::ClusterClient::connect(kj_, controller_.host, controller_.port);
      node_.held_models = held_();
      auto reply = client.ok() ? (*client)->register_node(node_, token_, handlers_)
                               : core::Result<core::RegistrationReply>(client.error());
      if (!reply.ok()) {
        auto code = reply.error().code;
        if (code == core::ErrorCode::kUnauthenticated || code == core::ErrorCode::kInvalidArgument) {
          spdlog::error("worker: controller at {} refused this worker: {}", address, reply.error().message);
          {
            std::lock_guard lock(mutex_);
            refusal_ = reply.error().message;
          }
          // To the waiting thread itself: a signal to the process may go to a thread that does not
          // block SIGTERM (OpenBLAS starts its pool before main), whose default action kills
          // the process with no message. A thread-directed one stays pending until sigwait.
          pthread_kill(waiter_, SIGTERM);
          return;
        }
        spdlog::warn("worker: cannot join controller at {} ({}); retrying in {} ms", address,
                     reply.error().message, backoff.count());
        if (!sleep(backoff)) return;
        backoff = std::min(backoff * 2, backoff_max_);
        continue;
      }
      backoff = first_backoff;
      spdlog::info("worker '{}' joined controller at {} as node {}", node_.node_name, address, reply->node_id);
      core::HeartbeatReport beat{reply->node_id, 0, 0, 0, 0};
      beat.held_models = node_.held_models;
      while (sleep_until_beat(std::chrono::milliseconds(reply->heartbeat_interval_ms), beat.held_models)) {
        ++beat.sequence;
        beat.running_requests = in_flight_->load();
        beat.held_models = held_();
        auto known = (*client)->heartbeat(beat);
        if (!known.ok() || !*known) {
          spdlog::warn("worker: lost controller at {} ({}); re-joining", address,
                       known.ok() ? "it no longer knows this node" : known.error().message);
          break;
        }
      }
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
  }

  rpc::KjRuntime& kj_;
  HostPort controller_;
  core::NodeRegistration node_;
  std::string token_;
  std::shared_ptr<const rpc::WorkerHandlers> handlers_;
  std::shared_ptr<std::atomic<std::uint32_t>> in_flight_;
  std::function<std::vector<std::string>()> held_;
  std::chrono::milliseconds backoff_max_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<std::string> refusal_;
  pthread_t waiter_;    // the thread in sigwait, told of a refusal
  std::thread thread_;  // last: starts once everything above is set
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
  HostPort controller = parse_host_port(options.join, "--join");
  if (!options.device.empty()) {
    if (auto applied = core::apply_override(config, "serve.device=" + options.device); !applied.ok()) {
      throw CommandError("--device " + applied.error().message, 2);
    }
  }
  if (options.cluster_token.empty()) throw CommandError("--cluster-token is required", 2);
  if (options.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    options.name = std::string(host) + "-" + std::to_string(getpid());
  }

  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGINT);
  sigaddset(&shutdown_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  core::Registry registry;
  actors::ServingOptions serving = serving_options(config.serve);
  serving.role = options.role == "prefill" ? actors::NodeRole::kPrefill
                 : options.role == "decode" ? actors::NodeRole::kDecode
                                            : actors::NodeRole::kBoth;
  auto actor_runtime = std::make_unique<actors::ActorRuntime>();
  auto in_flight = std::make_shared<std::atomic<std::uint32_t>>(0);
  auto relay = actors::spawn_worker_relay(actor_runtime->system(), in_flight);
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
  auto held = [&node] {
    std::vector<std::string> names;
    for (const auto& model : node->models()) names.push_back(model.name);
    return names;
  };
  auto membership = std::make_unique<Membership>(
      *kj_runtime, controller, describe_node(options, serving, *node, host_cache_bytes), options.cluster_token,
      handlers, in_flight, held, std::chrono::milliseconds(options.rejoin_backoff_max_ms));

  int received = 0;
  sigwait(&shutdown_signals, &received);
  auto refusal = membership->refusal();
  if (!refusal) spdlog::info("received {}: stopping the worker", received == SIGINT ? "SIGINT" : "SIGTERM");

  // The relay sends into kj objects: stop every actor before the kj runtime goes.
  membership.reset();
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
  sub->add_option("--join", options->join, "The controller's cluster address, HOST:PORT")->required();
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
