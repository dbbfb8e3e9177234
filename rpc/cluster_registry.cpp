#include "rpc/cluster_registry.hpp"

#include <capnp/rpc-twoparty.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <utility>

#include "rpc/kj_context.hpp"
#include "rpc/kj_runtime.hpp"
#include "rpc/cluster_wire.hpp"
#include "rpc/shared_kv.hpp"
#include "rpc/tls_stream.hpp"

namespace aegaeon::rpc {

const char* to_string(LeaveReason reason) {
  switch (reason) {
    case LeaveReason::kConnectionLost: return "connection_lost";
    case LeaveReason::kHeartbeatTimeout: return "heartbeat_timeout";
  }
  return "unknown";
}

namespace {

using core::ErrorCode;
using Clock = std::chrono::steady_clock;

// KV handoff chunking: 1 MiB per read keeps each RPC message far below capnp's traversal limit
// and lets token batches of other generations interleave on the same connections.
constexpr uint64_t kKvChunkBytes = 1 << 20;
constexpr uint64_t kMaxKvChunkBytes = 4 * kKvChunkBytes;  // the most a source serves per read
constexpr uint64_t kKvPullLanes = 4;

// Messages the server fails with; the client maps them back onto error codes.
constexpr const char* kBadToken = "cluster token rejected";
constexpr const char* kBadVersion = "protocol version mismatch";

core::Error from_exception(const kj::Exception& e) {
  std::string description = e.getDescription().cStr();
  if (description.find(kBadToken) != std::string::npos) {
    return core::error(ErrorCode::kUnauthenticated, description);
  }
  if (description.find(kBadVersion) != std::string::npos) {
    return core::error(ErrorCode::kInvalidArgument, description);
  }
  return core::error(ErrorCode::kUnavailable, description);
}

// Token comparison whose time does not depend on where the first difference is.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Runs an RPC built on the kj thread and blocks the caller until it finishes or times out.
template <typename T, typename MakePromise>
core::Result<T> call_blocking(KjRuntime& runtime, std::chrono::milliseconds timeout,
                              MakePromise make_promise) {
  auto result = std::make_shared<std::promise<core::Result<T>>>();
  auto future = result->get_future();
  bool scheduled = runtime.execute_sync([&](KjContext& ctx) {
    auto call = make_promise(ctx).then(
        [result](T value) { result->set_value(std::move(value)); },
        [result](kj::Exception&& e) { result->set_value(from_exception(e)); });
    auto expired = ctx.timer.afterDelay(timeout.count() * kj::MILLISECONDS).then([result, timeout] {
      result->set_value(core::error(ErrorCode::kDeadlineExceeded,
                                    "no answer within " + std::to_string(timeout.count()) + " ms"));
    });
    ctx.tasks.add(call.exclusiveJoin(kj::mv(expired)));
  });
  if (!scheduled) return core::error(ErrorCode::kUnavailable, "kj runtime is not running");
  return future.get();
}

}  // namespace

uint32_t cluster_protocol_version() { return schema::PROTOCOL_VERSION; }

// ---------------------------------------------------------------------------------------------
// Server

namespace {

// Where a remote generation's updates go. Shared by the registry's bookkeeping and the TokenSink
// the worker calls; kj thread only. Closed after the last update, or when cancelled.
struct Route {
  ClusterRegistryServer::UpdateHandler on_update;
  bool open = true;

  void deliver(core::GenerationUpdate update) {
    if (!open) return;
    if (update.finished || update.worker_lost || update.handoff) open = false;
    on_update(std::move(update));
  }
  void lost(const std::string& why) {
    core::GenerationUpdate update;
    update.worker_lost = true;
    update.error = why;
    deliver(std::move(update));
  }
};

// Keeps a handed-off KV source until a decode worker takes it; returns its handle.
using KeepSource = std::function<uint64_t(schema::KvSource::Client)>;

class TokenSinkService final : public schema::TokenSink::Server {
 public:
  TokenSinkService(std::shared_ptr<Route> route, KeepSource keep) : route_(std::move(route)), keep_(std::move(keep)) {}

 protected:
  kj::Promise<void> push(PushContext context) override {
    core::GenerationUpdate update;
    batch_from_wire(context.getParams().getBatch(), update);
    route_->deliver(std::move(update));
    return kj::READY_NOW;
  }

  kj::Promise<void> done(DoneContext context) override {
    auto params = context.getParams();
    core::GenerationUpdate update;
    batch_from_wire(params.getBatch(), update);
    update.reason = reason_from_wire(params.getReason());
    update.error = wire_text(params.getError());
    if (params.hasHandoff() && update.reason == core::FinishReason::kNone && route_->open) {
      auto handoff = params.getHandoff();
      update.handoff = core::KvHandoff{handoff.getKvTokens(), handoff.getLastToken(), handoff.getBytes(), {},
                                       keep_(handoff.getSource()),
                                       {wire_text(handoff.getHostKey()), wire_text(handoff.getSharedPath()),
                                        wire_text(handoff.getSharedName())}};
    } else {
      update.finished = true;
    }
    route_->deliver(std::move(update));
    return kj::READY_NOW;
  }

 private:
  std::shared_ptr<Route> route_;
  KeepSource keep_;
};

}  // namespace

struct ClusterRegistryServer::Impl {
  KjRuntime& runtime;
  Options options;
  uint16_t port = 0;
  mutable std::mutex mutex;  // guards nodes and next_id (read by nodes() from other threads)
  std::map<uint64_t, RegisteredNode> nodes;
  uint64_t next_id = 1;

  // kj-thread objects. One RPC system per connection, so that a broken connection tells which
  // nodes it carried.
  struct Connection {
    kj::Own<kj::AsyncIoStream> stream;
    capnp::TwoPartyVatNetwork network;
    kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
    explicit Connection(kj::Own<kj::AsyncIoStream> s)
        : stream(kj::mv(s)), network(*stream, capnp::rpc::twoparty::Side::SERVER) {}
  };
  struct Worker {
    uint64_t connection = 0;
    kj::Maybe<schema::Worker::Client> client;
  };
  struct Generation {
    uint64_t node_id = 0;
    std::shared_ptr<Route> route;
    kj::Own<kj::PromiseFulfiller<void>> cancel;  // fulfilling it drops the RPC call
  };
  std::map<uint64_t, kj::Own<Connection>> connections;
  uint64_t next_connection = 1;
  std::map<uint64_t, Worker> workers;  // by node id
  std::map<uint64_t, Generation> generations;
  uint64_t next_generation = 1;
  std::map<uint64_t, schema::KvSource::Client> handoffs;  // KV sources no decode took yet
  uint64_t next_handoff = 1;
  kj::Own<kj::ConnectionReceiver> listener;
  kj::Own<kj::TaskSet> tasks;

  Impl(KjRuntime& rt, Options opts) : runtime(rt), options(std::move(opts)) {}

  kj::Promise<void> accept_loop();
  // Forgets a node and reports its generations lost (kj thread).
  void drop_node(uint64_t node_id, LeaveReason reason, const std::string& why);
  // A peer's connection closed: the nodes it registered leave.
  void disconnected(uint64_t connection_id);
  kj::Promise<void> reap_silent_nodes(kj::Timer& timer);
  // Sends the call `make_request` builds (with the generation's sink) to node `node_id`'s
  // Worker and tracks it as a generation (kj thread).
  template <typename MakeRequest>
  core::Result<uint64_t> submit(uint64_t node_id, UpdateHandler on_update, MakeRequest make_request);
};

namespace {

class RegistryService final : public schema::Registry::Server {
 public:
  RegistryService(ClusterRegistryServer::Impl& owner, uint64_t connection)
      : owner_(owner), connection_(connection) {}

 protected:
  kj::Promise<void> register_(RegisterContext context) override {
    auto params = context.getParams();
    if (!same_secret(wire_text(params.getClusterToken()), owner_.options.cluster_token)) {
      spdlog::warn("cluster: refused node '{}': {}", wire_text(params.getInfo().getNodeName()),
                   kBadToken);
      KJ_FAIL_REQUIRE(kBadToken);
    }
    auto node = node_from_wire(params.getInfo());
    if (node.protocol_version != schema::PROTOCOL_VERSION) {
      spdlog::warn("cluster: refused node '{}': protocol version {} (this controller speaks {})",
                   node.node_name, node.protocol_version, schema::PROTOCOL_VERSION);
      KJ_FAIL_REQUIRE(kBadVersion, node.protocol_version, schema::PROTOCOL_VERSION);
    }
    RegisteredNode registered;
    registered.can_generate = params.hasWorker();
    {
      std::lock_guard lock(owner_.mutex);
      registered.node_id = owner_.next_id++;
      registered.registration = std::move(node);
      registered.last_heartbeat.node_id = registered.node_id;
      registered.last_heartbeat.held_models = registered.registration.held_models;
      registered.last_seen = Clock::now();
      // Kept without the tokenizer texts: nodes() snapshots are taken per request.
      auto& kept = owner_.nodes[registered.node_id] = registered;
      for (auto& model : kept.registration.served_models) {
        model.tokenizer_json.clear();
        model.tokenizer_config_json.clear();
      }
    }
    auto& worker = owner_.workers[registered.node_id];
    worker.connection = connection_;
    if (registered.can_generate) worker.client = params.getWorker();
    spdlog::info("cluster: node '{}' joined as {} ({} model(s))", registered.registration.node_name,
                 registered.node_id, registered.registration.served_models.size());
    if (owner_.options.on_register) owner_.options.on_register(registered);
    auto results = context.getResults();
    results.setNodeId(registered.node_id);
    results.setHeartbeatIntervalMs(owner_.options.heartbeat_interval_ms);
    return kj::READY_NOW;
  }

  kj::Promise<void> heartbeat(HeartbeatContext context) override {
    auto beat = context.getParams().getBeat();
    core::HeartbeatReport report = beat_from_wire(beat);
    bool known = false;
    {
      std::lock_guard lock(owner_.mutex);
      auto it = owner_.nodes.find(report.node_id);
      if (it != owner_.nodes.end()) {
        it->second.last_heartbeat = report;
        it->second.last_seen = Clock::now();
        known = true;
      }
    }
    if (known && owner_.options.on_heartbeat) owner_.options.on_heartbeat(report);
    context.getResults().setKnown(known);
    return kj::READY_NOW;
  }

 private:
  ClusterRegistryServer::Impl& owner_;
  uint64_t connection_;
};

class LogRpcErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& e) override {
    spdlog::warn("cluster rpc: {}", e.getDescription().cStr());
  }
};
LogRpcErrors log_rpc_errors;

}  // namespace

kj::Promise<void> ClusterRegistryServer::Impl::accept_loop() {
  return listener->accept().then([this](kj::Own<kj::AsyncIoStream> stream) {
    uint64_t id = next_connection++;
    auto connection = kj::heap<Connection>(kj::mv(stream));
    connection->rpc = kj::heap(capnp::makeRpcServer(
        connection->network, schema::Registry::Client(kj::heap<RegistryService>(*this, id))));
    tasks->add(connection->network.onDisconnect().then([this, id] { disconnected(id); }));
    connections[id] = kj::mv(connection);
    return accept_loop();
  });
}

void ClusterRegistryServer::Impl::disconnected(uint64_t connection_id) {
  std::vector<uint64_t> carried;
  for (const auto& [node_id, worker] : workers) {
    if (worker.connection == connection_id) carried.push_back(node_id);
  }
  for (uint64_t node_id : carried) drop_node(node_id, LeaveReason::kConnectionLost, "connection lost");
  // Not destroyed here: this runs inside the connection's own promise.
  tasks->add(kj::evalLater([this, connection_id] { connections.erase(connection_id); }));
}

void ClusterRegistryServer::Impl::drop_node(uint64_t node_id, LeaveReason reason, const std::string& why) {
  {
    std::lock_guard lock(mutex);
    if (nodes.erase(node_id) == 0) return;
  }
  workers.erase(node_id);
  spdlog::warn("cluster: node {} left: {}", node_id, why);
  for (auto& [id, generation] : generations) {
    if (generation.node_id != node_id) continue;
    generation.route->lost("node " + std::to_string(node_id) + " " + why);
    generation.cancel->fulfill();
  }
  if (options.on_leave) options.on_leave(node_id, reason, why);
}

kj::Promise<void> ClusterRegistryServer::Impl::reap_silent_nodes(kj::Timer& timer) {
  return timer.afterDelay(options.heartbeat_interval_ms * kj::MILLISECONDS).then([this, &timer] {
    auto deadline = Clock::now() - std::chrono::milliseconds(options.heartbeat_timeout_ms);
    std::vector<uint64_t> silent;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, node] : nodes) {
        if (node.last_seen < deadline) silent.push_back(id);
      }
    }
    for (uint64_t id : silent) {
      drop_node(id, LeaveReason::kHeartbeatTimeout, "sent no heartbeat for " + std::to_string(options.heartbeat_timeout_ms) + " ms");
    }
    return reap_silent_nodes(timer);
  });
}

ClusterRegistryServer::ClusterRegistryServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {
// Destroys the server's kj objects (on the kj thread): generations, then connections.
void release_server(ClusterRegistryServer::Impl* s) {
  s->tasks = nullptr;
  s->handoffs.clear();
  s->generations.clear();
  s->workers.clear();
  s->connections.clear();
  s->listener = nullptr;
}
}  // namespace

core::Result<std::unique_ptr<ClusterRegistryServer>> ClusterRegistryServer::start(
    KjRuntime& runtime, Options options) {
  auto impl = std::make_unique<Impl>(runtime, std::move(options));
  Impl* s = impl.get();
  std::string address = s->options.host + ":" + std::to_string(s->options.port);
  auto port = call_blocking<uint16_t>(runtime, std::chrono::seconds(10), [s](KjContext& ctx) {
    s->tasks = kj::heap<kj::TaskSet>(log_rpc_errors);
    return ctx.network.parseAddress(s->options.host, s->options.port)
        .then([s, &timer = ctx.timer](kj::Own<kj::NetworkAddress> address) {
          s->listener = address->listen();
          if (s->options.tls) {
            s->listener = listen_tls(kj::mv(s->listener), s->options.tls, timer,
                                     "cluster " + s->options.host + ":" + std::to_string(s->listener->getPort()),
                                     s->options.on_tls_refused);
          }
          s->tasks->add(s->accept_loop());
          s->tasks->add(s->reap_silent_nodes(timer));
          return static_cast<uint16_t>(s->listener->getPort());
        });
  });
  if (!port.ok()) {
    runtime.execute_sync([s](KjContext&) { release_server(s); });
    return core::error(ErrorCode::kUnavailable, "cannot listen on " + address + ": " +
                                                    port.error().message);
  }
  impl->port = *port;
  spdlog::info("cluster: registry listening on {}:{}{}", impl->options.host, impl->port,
               impl->options.tls ? " (mutual TLS)" : "");
  return std::unique_ptr<ClusterRegistryServer>(new ClusterRegistryServer(std::move(impl)));
}

ClusterRegistryServer::~ClusterRegistryServer() {
  Impl* s = impl_.get();
  impl_->runtime.execute_sync([s](KjContext&) { release_server(s); });
}

uint16_t ClusterRegistryServer::port() const { return impl_->port; }

std::vector<RegisteredNode> ClusterRegistryServer::nodes() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<RegisteredNode> out;
  for (const auto& [_, node] : impl_->nodes) out.push_back(node);
  return out;
}

template <typename MakeRequest>
core::Result<uint64_t> ClusterRegistryServer::Impl::submit(uint64_t node_id, UpdateHandler on_update,
                                                         MakeRequest make_request) {
  auto worker = workers.find(node_id);
  if (worker == workers.end()) {
    return core::error(ErrorCode::kNotFound, "node " + std::to_string(node_id) + " is not registered");
  }
  KJ_IF_MAYBE(client, worker->second.client) {
    uint64_t id = next_generation++;
    auto route = std::make_shared<Route>();
    route->on_update = std::move(on_update);
    auto sink = kj::heap<TokenSinkService>(route, [this](schema::KvSource::Client source) {
      uint64_t handle = next_handoff++;
      handoffs.emplace(handle, kj::mv(source));
      return handle;
    });
    auto cancel = kj::newPromiseAndFulfiller<void>();
    // A call that returns before `done` (or fails) means the worker is gone mid-generation.
    auto call = make_request(*client, schema::TokenSink::Client(kj::mv(sink))).then(
        [route](auto&&) { route->lost("the worker ended the generation without finishing it"); },
        [route](kj::Exception&& e) { route->lost(e.getDescription().cStr()); });
    tasks->add(call.exclusiveJoin(kj::mv(cancel.promise)).then([this, id] { generations.erase(id); }));
    generations[id] = {node_id, route, kj::mv(cancel.fulfiller)};
    return id;
  }
  return core::error(ErrorCode::kNotFound, "node " + std::to_string(node_id) + " does not run generations");
}

core::Result<uint64_t> ClusterRegistryServer::generate(uint64_t node_id,
                                                       const core::GenerationJob& job,
                                                       UpdateHandler on_update) {
  Impl* s = impl_.get();
  core::Result<uint64_t> result = core::error(ErrorCode::kUnavailable, "kj runtime is not running");
  s->runtime.execute_sync([&](KjContext&) {
    result = s->submit(node_id, std::move(on_update), [&](schema::Worker::Client& worker, schema::TokenSink::Client sink) {
      auto request = worker.generateRequest();
      job_to_wire(job, request.initJob());
      request.setSink(kj::mv(sink));
      return request.send();
    });
  });
  return result;
}

core::Result<uint64_t> ClusterRegistryServer::decode(uint64_t node_id, const core::GenerationJob& job,
                                                     const core::KvHandoff& handoff, UpdateHandler on_update) {
  Impl* s = impl_.get();
  core::Result<uint64_t> result = core::error(ErrorCode::kUnavailable, "kj runtime is not running");
  s->runtime.execute_sync([&](KjContext&) {
    auto source = s->handoffs.find(handoff.source_id);
    if (source == s->handoffs.end()) {
      result = core::error(ErrorCode::kNotFound, "handoff " + std::to_string(handoff.source_id) + " is gone");
      return;
    }
    schema::KvSource::Client client = source->second;  // another reference to the same capability
    result = s->submit(node_id, std::move(on_update), [&](schema::Worker::Client& worker, schema::TokenSink::Client sink) {
      auto request = worker.decodeRequest();
      job_to_wire(job, request.initJob());
      auto wire = request.initHandoff();
      wire.setKvTokens(handoff.kv_tokens);
      wire.setLastToken(handoff.last_token);
      wire.setBytes(handoff.bytes);
      wire.setSource(kj::mv(client));
      wire.setHostKey(handoff.shared.host_key);
      wire.setSharedPath(handoff.shared.path);
      wire.setSharedName(handoff.shared.name);
      request.setSink(kj::mv(sink));
      return request.send();
    });
    // Sent: the decode worker's reference is the one that keeps the KV now.
    if (result.ok()) s->handoffs.erase(handoff.source_id);
  });
  return result;
}

void ClusterRegistryServer::hold(uint64_t node_id, const std::vector<std::string>& models) {
  Impl* s = impl_.get();
  s->runtime.execute_sync([&](KjContext&) {
    auto worker = s->workers.find(node_id);
    if (worker == s->workers.end()) return;
    KJ_IF_MAYBE(client, worker->second.client) {
      auto request = client->holdRequest();
      texts_to_wire(models, request.initModels(static_cast<unsigned>(models.size())));
      // A failure means the connection is going: the node leaves through disconnected().
      s->tasks->add(request.send().ignoreResult());
    }
  });
}

void ClusterRegistryServer::release_handoff(uint64_t source_id) {
  Impl* s = impl_.get();
  s->runtime.execute_sync([s, source_id](KjContext&) { s->handoffs.erase(source_id); });
}

void ClusterRegistryServer::cancel(uint64_t generation_id) {
  Impl* s = impl_.get();
  s->runtime.execute_sync([s, generation_id](KjContext&) {
    auto it = s->generations.find(generation_id);
    if (it == s->generations.end()) return;
    it->second.route->open = false;
    it->second.cancel->fulfill();
  });
}

// ---------------------------------------------------------------------------------------------
// Worker side of a generation

// A handed-off KV blob, served in chunks to the decode worker that adopts it, and published in a
// memory file for one on this host. Lives (and holds the blob in host memory) while a controller
// or decode worker holds the capability.
class KvSourceService final : public schema::KvSource::Server {
 public:
  explicit KvSourceService(core::HostBytes blob) {
    auto shared = SharedKvBlob::create(blob.span());
    if (shared.ok()) {
      shared_ = std::move(*shared);  // the memory file is the only copy from now on
    } else {
      spdlog::warn("kv handoff: no shared memory, served over RPC only: {}", shared.error().message);
      blob_ = std::move(blob);
    }
  }

  // The memory file for a decode worker on this host, or null.
  [[nodiscard]] const SharedKvBlob* shared() const { return shared_.get(); }

 protected:
  kj::Promise<void> read(ReadContext context) override {
    auto params = context.getParams();
    const std::span<const std::byte> bytes = shared_ ? shared_->bytes() : blob_.span();
    const uint64_t size = bytes.size();
    const uint64_t offset = std::min<uint64_t>(params.getOffset(), size);
    const uint64_t length = std::min<uint64_t>({params.getLength(), size - offset, kMaxKvChunkBytes});
    context.getResults().setChunk(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(bytes.data()) + offset, length));
    return kj::READY_NOW;
  }

 private:
  std::unique_ptr<SharedKvBlob> shared_;  // sealed: never written once handed off
  core::HostBytes blob_;                  // without shared memory
};

// One generation the controller submitted, on the worker (kj thread only). It sends the
// updates in order, one flow-controlled call at a time, and completes the `generate` call after
// `done` was delivered. Destroyed when that call completes or is cancelled.
class WorkerGeneration {
 public:
  WorkerGeneration(uint64_t id, schema::TokenSink::Client sink,
                   kj::Own<kj::PromiseFulfiller<void>> completion,
                   std::shared_ptr<const WorkerHandlers> handlers,
                   std::shared_ptr<GenerationStream::Link> link);
  ~WorkerGeneration();

  bool send(core::GenerationUpdate update);
  /// Reports, on the next update, how long the KV of an adopted generation took to arrive.
  void report_kv_pull(double seconds, bool shared_memory) {
    kv_pull_s_ = seconds;
    kv_shared_memory_ = shared_memory;
  }

 private:
  uint64_t id_;
  schema::TokenSink::Client sink_;
  kj::Own<kj::PromiseFulfiller<void>> completion_;
  std::shared_ptr<const WorkerHandlers> handlers_;
  std::shared_ptr<GenerationStream::Link> link_;
  kj::Promise<void> tail_ = kj::READY_NOW;  // the last queued call
  bool finished_ = false;  // `done` queued: the runtime is done with it
  bool failed_ = false;    // a call failed: the controller is gone
  double kv_pull_s_ = -1;  // not reported yet
  bool kv_shared_memory_ = false;
};

struct GenerationStream::Link {
  KjRuntime& runtime;
  WorkerGeneration* generation = nullptr;  // kj thread only; null once it ended
};

WorkerGeneration::WorkerGeneration(uint64_t id, schema::TokenSink::Client sink,
                                   kj::Own<kj::PromiseFulfiller<void>> completion,
                                   std::shared_ptr<const WorkerHandlers> handlers,
                                   std::shared_ptr<GenerationStream::Link> link)
    : id_(id), sink_(kj::mv(sink)), completion_(kj::mv(completion)),
      handlers_(std::move(handlers)), link_(std::move(link)) {
  link_->generation = this;
}

WorkerGeneration::~WorkerGeneration() {
  link_->generation = nullptr;
  if (!finished_) handlers_->cancel(id_);
}

bool WorkerGeneration::send(core::GenerationUpdate update) {
  if (finished_ || failed_) return false;
  finished_ = update.finished || update.handoff.has_value();
  if (kv_pull_s_ >= 0) {
    update.kv_pull_s = std::exchange(kv_pull_s_, -1);
    update.kv_shared_memory = kv_shared_memory_;
  }
  tail_ = tail_.then([this, update = std::move(update)]() -> kj::Promise<void> {
    if (!update.finished && !update.handoff) {
      auto request = sink_.pushRequest();
      batch_to_wire(update, request.initBatch());
      return request.send();  // resolves when flow control has room for the next batch
    }
    auto request = sink_.doneRequest();
    batch_to_wire(update, request.initBatch());
    request.setReason(reason_to_wire(update.reason));
    request.setError(update.error);
    if (update.handoff) {
      auto handoff = request.initHandoff();
      handoff.setKvTokens(update.handoff->kv_tokens);
      handoff.setLastToken(update.handoff->last_token);
      handoff.setBytes(update.handoff->blob.size());
      auto source = kj::heap<KvSourceService>(update.handoff->blob);
      if (const SharedKvBlob* shared = source->shared()) {
        handoff.setHostKey(shared_memory_host_key());
        handoff.setSharedPath(shared->path());
        handoff.setSharedName(shared->name());
      }
      handoff.setSource(kj::mv(source));
    }
    return request.send().then([this](auto&&) { completion_->fulfill(); });
  }).eagerlyEvaluate([this](kj::Exception&& e) {
    failed_ = true;
    completion_->reject(kj::mv(e));
  });
  return true;
}

GenerationStream::GenerationStream(std::shared_ptr<Link> link) : link_(std::move(link)) {}

bool GenerationStream::send(core::GenerationUpdate update) const {
  bool sent = false;
  auto link = link_;
  link->runtime.execute_sync([&](KjContext&) {
    if (link->generation != nullptr) sent = link->generation->send(std::move(update));
  });
  return sent;
}

namespace {

// Generation ids are unique in the process, across reconnections.
std::atomic<uint64_t> next_generation_id{1};

// Pulls a handed-off KV blob, `kKvPullLanes` chunk reads in flight so the round trips through
// the controller overlap (lane i reads chunks i, i + lanes, ...).
kj::Promise<void> pull_lane(schema::KvSource::Client source, std::shared_ptr<std::vector<std::byte>> blob,
                            uint64_t offset) {
  if (offset >= blob->size()) return kj::READY_NOW;
  const uint64_t length = std::min<uint64_t>(kKvChunkBytes, blob->size() - offset);
  auto request = source.readRequest();
  request.setOffset(offset);
  request.setLength(static_cast<uint32_t>(length));
  return request.send().then([source, blob, offset, length](capnp::Response<schema::KvSource::ReadResults> response) mutable {
    auto chunk = response.getChunk();
    KJ_REQUIRE(chunk.size() == length, "kv handoff: short chunk from the prefill worker", offset, chunk.size(), length);
    std::memcpy(blob->data() + offset, chunk.begin(), length);
    return pull_lane(kj::mv(source), kj::mv(blob), offset + kKvPullLanes * kKvChunkBytes);
  });
}

kj::Promise<core::HostBytes> pull_kv(schema::KvSource::Client source, uint64_t bytes) {
  auto blob = std::make_shared<std::vector<std::byte>>(bytes);
  auto lanes = kj::heapArrayBuilder<kj::Promise<void>>(kKvPullLanes);
  for (uint64_t lane = 0; lane < kKvPullLanes; ++lane) lanes.add(pull_lane(source, blob, lane * kKvChunkBytes));
  return kj::joinPromises(lanes.finish()).then([blob] { return core::HostBytes(std::span<const std::byte>(*blob), blob); });
}

class WorkerService final : public schema::Worker::Server {
 public:
  WorkerService(KjRuntime& runtime, std::shared_ptr<const WorkerHandlers> handlers)
      : runtime_(runtime), handlers_(std::move(handlers)) {}

 protected:
  kj::Promise<void> generate(GenerateContext context) override {
    context.allowCancellation();  // the controller dropping the call cancels the generation
    auto params = context.getParams();
    auto job = job_from_wire(params.getJob());
    uint64_t id = next_generation_id++;
    auto completion = kj::newPromiseAndFulfiller<void>();
    auto link = std::make_shared<GenerationStream::Link>(GenerationStream::Link{runtime_, nullptr});
    auto generation = kj::heap<WorkerGeneration>(id, params.getSink(), kj::mv(completion.fulfiller),
                                                 handlers_, link);
    context.releaseParams();
    handlers_->start(id, std::move(job), GenerationStream(link));
    return completion.promise.attach(kj::mv(generation));
  }

  kj::Promise<void> hold(HoldContext context) override {
    KJ_REQUIRE(handlers_->hold != nullptr, "this worker takes no placement");
    handlers_->hold(wire_texts(context.getParams().getModels()));
    return kj::READY_NOW;
  }

  kj::Promise<void> decode(DecodeContext context) override {
    context.allowCancellation();
    auto params = context.getParams();
    KJ_REQUIRE(handlers_->accepts != nullptr && handlers_->adopt != nullptr,
               "this worker decodes nothing another worker prefilled (--role prefill)");
    auto job = job_from_wire(params.getJob());
    auto wire = params.getHandoff();
    core::KvHandoff handoff{wire.getKvTokens(), wire.getLastToken(), wire.getBytes(), {}, 0};
    if (auto accepted = handlers_->accepts(job, handoff); !accepted.ok()) {
      KJ_FAIL_REQUIRE("kv handoff refused", accepted.error().message);
    }
    uint64_t id = next_generation_id++;
    auto completion = kj::newPromiseAndFulfiller<void>();
    auto link = std::make_shared<GenerationStream::Link>(GenerationStream::Link{runtime_, nullptr});
    auto generation = kj::heap<WorkerGeneration>(id, params.getSink(), kj::mv(completion.fulfiller),
                                                 handlers_, link);
    WorkerGeneration* adopted = generation.get();
    const auto pull_start = Clock::now();
    // On the prefill worker's host the blob is its memory file, mapped in place; elsewhere (or
    // if that fails) it comes in chunks through the controller.
    bool shared_memory = false;
    kj::Promise<core::HostBytes> pulled = nullptr;
    if (handlers_->kv_shared_memory && wire.getSharedPath().size() > 0 &&
        wire_text(wire.getHostKey()) == shared_memory_host_key()) {
      auto mapped = map_shared_kv(wire.getSharedPath().cStr(), wire.getSharedName().cStr(), handoff.bytes);
      if (mapped.ok()) {
        shared_memory = true;
        pulled = std::move(*mapped);
      } else {
        spdlog::warn("kv handoff: shared memory unreadable, pulling over RPC: {}", mapped.error().message);
      }
    }
    if (!shared_memory) pulled = pull_kv(wire.getSource(), handoff.bytes);
    context.releaseParams();
    // Cancelling the call while the KV is still coming drops the pull and the generation.
    return pulled
        .then([this, id, job = std::move(job), handoff, link, adopted, pull_start,
               shared_memory](core::HostBytes blob) mutable {
          adopted->report_kv_pull(std::chrono::duration<double>(Clock::now() - pull_start).count(), shared_memory);
          handoff.blob = std::move(blob);
          handlers_->adopt(id, std::move(job), std::move(handoff), GenerationStream(link));
        })
        .then([promise = kj::mv(completion.promise)]() mutable { return kj::mv(promise); })
        .attach(kj::mv(generation));
  }

 private:
  KjRuntime& runtime_;
  std::shared_ptr<const WorkerHandlers> handlers_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Client

struct ClusterClient::Impl {
  KjRuntime& runtime;
  std::chrono::milliseconds timeout;
  // kj-thread objects.
  kj::Own<kj::AsyncIoStream> connection;
  kj::Own<capnp::TwoPartyClient> rpc;
  kj::Own<schema::Registry::Client> registry;

  Impl(KjRuntime& rt, std::chrono::milliseconds t) : runtime(rt), timeout(t) {}
};

ClusterClient::ClusterClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

core::Result<std::unique_ptr<ClusterClient>> ClusterClient::connect(
    KjRuntime& runtime, const std::string& host, uint16_t port, std::shared_ptr<const TlsContext> tls,
    std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>(runtime, timeout);
  Impl* c = impl.get();
  auto connected = call_blocking<bool>(runtime, timeout, [c, host, port, tls](KjContext& ctx) {
    return ctx.network.parseAddress(host, port)
        .then([](kj::Own<kj::NetworkAddress> address) { return address->connect(); })
        .then([tls, &timer = ctx.timer, host, port](
                  kj::Own<kj::AsyncIoStream> stream) -> kj::Promise<kj::Own<kj::AsyncIoStream>> {
          if (!tls) return kj::mv(stream);
          return connect_tls(*tls, kj::mv(stream), timer, host, port);
        })
        .then([c](kj::Own<kj::AsyncIoStream> stream) {
          c->connection = kj::mv(stream);
          c->rpc = kj::heap<capnp::TwoPartyClient>(*c->connection);
          c->registry = kj::heap<schema::Registry::Client>(
              c->rpc->bootstrap().castAs<schema::Registry>());
          return true;
        });
  });
  if (!connected.ok()) {
    ClusterClient discard(std::move(impl));  // destroys kj objects on the loop
    return core::error(ErrorCode::kUnavailable, "cannot connect to controller at " + host + ":" +
                                                    std::to_string(port) + ": " +
                                                    connected.error().message);
  }
  return std::unique_ptr<ClusterClient>(new ClusterClient(std::move(impl)));
}

ClusterClient::~ClusterClient() {
  if (!impl_) return;
  Impl* c = impl_.get();
  c->runtime.execute_sync([c](KjContext&) {
    c->registry = nullptr;
    c->rpc = nullptr;
    c->connection = nullptr;
  });
}

core::Result<core::RegistrationReply> ClusterClient::register_node(
    const core::NodeRegistration& node, const std::string& cluster_token,
    std::shared_ptr<const WorkerHandlers> handlers) {
  Impl* c = impl_.get();
  return call_blocking<core::RegistrationReply>(c->runtime, c->timeout, [&](KjContext&) {
    auto request = c->registry->registerRequest();
    node_to_wire(node, request.initInfo());
    request.setClusterToken(cluster_token);
    if (handlers) request.setWorker(kj::heap<WorkerService>(c->runtime, std::move(handlers)));
    return request.send().then([](capnp::Response<schema::Registry::RegisterResults> response) {
      return core::RegistrationReply{response.getNodeId(), response.getHeartbeatIntervalMs()};
    });
  });
}

core::Result<bool> ClusterClient::heartbeat(const core::HeartbeatReport& beat) {
  Impl* c = impl_.get();
  return call_blocking<bool>(c->runtime, c->timeout, [&](KjContext&) {
    auto request = c->registry->heartbeatRequest();
    beat_to_wire(beat, request.initBeat());
    return request.send().then([](capnp::Response<schema::Registry::HeartbeatResults> response) {
      return response.getKnown();
    });
  });
}

}  // namespace aegaeon::rpc
