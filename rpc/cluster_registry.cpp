#include "rpc/cluster_registry.hpp"

#include <capnp/rpc-twoparty.h>
#include <spdlog/spdlog.h>

#include <future>
#include <map>
#include <mutex>

#include "rpc/kj_context.hpp"
#include "rpc/kj_runtime.hpp"
#include "rpc/cluster_wire.hpp"

namespace aegaeon::rpc {
namespace {

using core::ErrorCode;
using Clock = std::chrono::steady_clock;

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

struct ClusterRegistryServer::Impl {
  KjRuntime& runtime;
  Options options;
  uint16_t port = 0;
  mutable std::mutex mutex;  // guards nodes and next_id (read by nodes() from other threads)
  std::map<uint64_t, RegisteredNode> nodes;
  uint64_t next_id = 1;
  // kj-thread objects.
  kj::Own<capnp::TwoPartyServer> server;
  kj::Own<kj::ConnectionReceiver> listener;
  kj::Own<kj::TaskSet> tasks;

  Impl(KjRuntime& rt, Options opts) : runtime(rt), options(std::move(opts)) {}
};

namespace {

class RegistryService final : public schema::Registry::Server {
 public:
  explicit RegistryService(ClusterRegistryServer::Impl& owner) : owner_(owner) {}

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
    {
      std::lock_guard lock(owner_.mutex);
      registered.node_id = owner_.next_id++;
      registered.registration = std::move(node);
      registered.last_heartbeat.node_id = registered.node_id;
      registered.last_seen = Clock::now();
      owner_.nodes[registered.node_id] = registered;
    }
    spdlog::info("cluster: node '{}' joined as {}", registered.registration.node_name,
                 registered.node_id);
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
};

class LogRpcErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& e) override {
    spdlog::warn("cluster rpc: {}", e.getDescription().cStr());
  }
};
LogRpcErrors log_rpc_errors;

}  // namespace

ClusterRegistryServer::ClusterRegistryServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

core::Result<std::unique_ptr<ClusterRegistryServer>> ClusterRegistryServer::start(
    KjRuntime& runtime, Options options) {
  auto impl = std::make_unique<Impl>(runtime, std::move(options));
  Impl* s = impl.get();
  std::string address = s->options.host + ":" + std::to_string(s->options.port);
  auto port = call_blocking<uint16_t>(runtime, std::chrono::seconds(10), [s](KjContext& ctx) {
    s->server = kj::heap<capnp::TwoPartyServer>(kj::heap<RegistryService>(*s));
    s->tasks = kj::heap<kj::TaskSet>(log_rpc_errors);
    return ctx.network.parseAddress(s->options.host, s->options.port)
        .then([s](kj::Own<kj::NetworkAddress> address) {
          s->listener = address->listen();
          s->tasks->add(s->server->listen(*s->listener));
          return static_cast<uint16_t>(s->listener->getPort());
        });
  });
  if (!port.ok()) {
    runtime.execute_sync([s](KjContext&) {
      s->tasks = nullptr;
      s->listener = nullptr;
      s->server = nullptr;
    });
    return core::error(ErrorCode::kUnavailable, "cannot listen on " + address + ": " +
                                                    port.error().message);
  }
  impl->port = *port;
  spdlog::info("cluster: registry listening on {}:{}", impl->options.host, impl->port);
  return std::unique_ptr<ClusterRegistryServer>(new ClusterRegistryServer(std::move(impl)));
}

ClusterRegistryServer::~ClusterRegistryServer() {
  Impl* s = impl_.get();
  impl_->runtime.execute_sync([s](KjContext&) {
    s->tasks = nullptr;
    s->listener = nullptr;
    s->server = nullptr;
  });
}

uint16_t ClusterRegistryServer::port() const { return impl_->port; }

std::vector<RegisteredNode> ClusterRegistryServer::nodes() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<RegisteredNode> out;
  for (const auto& [_, node] : impl_->nodes) out.push_back(node);
  return out;
}

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
    KjRuntime& runtime, const std::string& host, uint16_t port,
    std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>(runtime, timeout);
  Impl* c = impl.get();
  auto connected = call_blocking<bool>(runtime, timeout, [c, host, port](KjContext& ctx) {
    return ctx.network.parseAddress(host, port)
        .then([](kj::Own<kj::NetworkAddress> address) { return address->connect(); })
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
    const core::NodeRegistration& node, const std::string& cluster_token) {
  Impl* c = impl_.get();
  return call_blocking<core::RegistrationReply>(c->runtime, c->timeout, [&](KjContext&) {
    auto request = c->registry->registerRequest();
    node_to_wire(node, request.initInfo());
    request.setClusterToken(cluster_token);
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
