// Targets "cluster_message" (one Cap'n Proto message from an untrusted peer, read as the
// cluster schema) and "cluster_rpc" (a byte stream to the real ClusterRegistryServer).
#include "tests/fuzz/cluster_fuzz.hpp"

#include <capnp/message.h>
#include <capnp/rpc.capnp.h>
#include <capnp/serialize.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstring>
#include <memory>

#include "core/cluster_types.hpp"
#include "rpc/cluster_registry.hpp"
#include "rpc/cluster_wire.hpp"
#include "rpc/kj_runtime.hpp"
#include "schema/cluster.capnp.h"
#include "tests/fuzz/fuzz_targets.hpp"
#include "tests/fuzz/loopback_exchange.hpp"

namespace aegaeon::fuzz {
namespace {

namespace schema = rpc::schema;
constexpr auto kDeadline = std::chrono::milliseconds(5000);
constexpr int kHealthCheckEvery = 16;

std::atomic<std::uint64_t> registrations{0};

std::string flat(capnp::MessageBuilder& builder) {
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asPtr().asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::string bootstrap_message(std::uint32_t question) {
  capnp::MallocMessageBuilder builder;
  builder.initRoot<capnp::rpc::Message>().initBootstrap().setQuestionId(question);
  return flat(builder);
}

std::string finish_message(std::uint32_t question) {
  capnp::MallocMessageBuilder builder;
  builder.initRoot<capnp::rpc::Message>().initFinish().setQuestionId(question);
  return flat(builder);
}

void fill_node(schema::NodeInfo::Builder info) {
  info.setNodeName("fuzz-node");
  info.setProtocolVersion(rpc::cluster_protocol_version());
  auto devices = info.initDevices(2);
  devices[0].setKind("cpu");
  devices[0].setArenaBytes(1 << 30);
  devices[1].setKind("cuda");
  devices[1].setIndex(1);
  devices[1].setArenaBytes(80ull << 30);
  info.setHostCacheBytes(64ull << 30);
  auto models = info.initModelsOnDisk(2);
  models.set(0, "qwen2-0.5b");
  models.set(1, "llama3-8b");
  auto roles = info.initRoles(2);
  roles.set(0, "prefill");
  roles.set(1, "decode");
}

// A call on the bootstrap capability (promised answer `bootstrap`) of Registry method `method`.
capnp::rpc::Call::Builder init_call(capnp::MallocMessageBuilder& builder, std::uint32_t question,
                                    std::uint32_t bootstrap, std::uint16_t method) {
  auto call = builder.initRoot<capnp::rpc::Message>().initCall();
  call.setQuestionId(question);
  call.initTarget().initPromisedAnswer().setQuestionId(bootstrap);
  call.setInterfaceId(capnp::typeId<schema::Registry>());
  call.setMethodId(method);
  return call;
}

std::string register_call(std::uint32_t question, const char* token) {
  capnp::MallocMessageBuilder builder;
  auto params = init_call(builder, question, 0, 0)
                    .initParams()
                    .getContent()
                    .initAs<schema::Registry::RegisterParams>();
  fill_node(params.initInfo());
  params.setClusterToken(token);
  return flat(builder);
}

std::string heartbeat_call(std::uint32_t question, std::uint64_t node_id) {
  capnp::MallocMessageBuilder builder;
  auto beat = init_call(builder, question, 0, 1)
                  .initParams()
                  .getContent()
                  .initAs<schema::Registry::HeartbeatParams>()
                  .initBeat();
  beat.setNodeId(node_id);
  beat.setSequence(7);
  beat.setRunningRequests(3);
  beat.setWaitingRequests(2);
  beat.setKvUsage(0.5f);
  return flat(builder);
}

// One registry per process; the server is destroyed before the runtime.
struct ClusterFixture {
  std::unique_ptr<rpc::KjRuntime> runtime;
  std::unique_ptr<rpc::ClusterRegistryServer> server;
  std::string health_probe;

  ClusterFixture() {
    spdlog::set_level(spdlog::level::off);
    auto rt = rpc::KjRuntime::start();
    if (!rt.ok()) fuzz_fail("KjRuntime::start: " + rt.error().message);
    runtime = std::move(*rt);
    rpc::ClusterRegistryServer::Options options;
    options.cluster_token = kFuzzClusterToken;
    options.on_register = [](const rpc::RegisteredNode&) { ++registrations; };
    auto started = rpc::ClusterRegistryServer::start(*runtime, options);
    if (!started.ok()) fuzz_fail("ClusterRegistryServer::start: " + started.error().message);
    server = std::move(*started);
    health_probe = cluster_rpc_seeds().front();
  }

  // A valid registration must still succeed after any input.
  void check_health() const {
    const auto before = registrations.load();
    auto reply = loopback_exchange(server->port(),
                                   reinterpret_cast<const std::uint8_t*>(health_probe.data()),
                                   health_probe.size(), kDeadline);
    if (!reply.closed || registrations.load() != before + 1) {
      fuzz_fail("the cluster registry stopped accepting registrations after an input");
    }
  }
};

}  // namespace

std::vector<std::string> cluster_rpc_seeds() {
  return {
      bootstrap_message(0) + register_call(1, kFuzzClusterToken) + finish_message(1) +
          finish_message(0),
      bootstrap_message(0) + register_call(1, kFuzzClusterToken) + heartbeat_call(2, 1) +
          heartbeat_call(3, 999) + finish_message(1) + finish_message(2) + finish_message(3),
      bootstrap_message(0) + register_call(1, "wrong-token") + finish_message(1),
      bootstrap_message(0) + heartbeat_call(1, 1),
  };
}

std::vector<std::string> cluster_message_seeds() {
  std::vector<std::string> seeds;
  {
    capnp::MallocMessageBuilder builder;
    fill_node(builder.initRoot<schema::NodeInfo>());
    seeds.push_back(flat(builder));
  }
  {
    capnp::MallocMessageBuilder builder;
    auto beat = builder.initRoot<schema::Heartbeat>();
    beat.setNodeId(42);
    beat.setSequence(1);
    beat.setKvUsage(0.25f);
    seeds.push_back(flat(builder));
  }
  seeds.push_back(bootstrap_message(0));
  seeds.push_back(register_call(1, kFuzzClusterToken));
  seeds.push_back(heartbeat_call(2, 1));
  {
    // Tokens with their logprobs and each step's alternatives (a job asked for top_logprobs).
    capnp::MallocMessageBuilder builder;
    core::GenerationUpdate update;
    update.tokens = {5, 9};
    update.logprobs = {-0.1f, -0.7f};
    update.top_logprobs = {{{5, -0.1f}, {6, -2.5f}}, {{9, -0.7f}, {2, -1.1f}}};
    rpc::batch_to_wire(update, builder.initRoot<schema::TokenBatch>());
    seeds.push_back(flat(builder));
  }
  return seeds;
}

std::uint64_t cluster_rpc_registrations() { return registrations.load(); }

int fuzz_cluster_message(const std::uint8_t* data, std::size_t size) {
  // Messages arrive word-aligned from the transport; a trailing partial word is never read.
  auto words = kj::heapArray<capnp::word>(size / sizeof(capnp::word));
  if (words.size() > 0) std::memcpy(words.begin(), data, words.size() * sizeof(capnp::word));
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 1 << 16;  // bounds the work one message can cause
  options.nestingLimit = 16;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    (void)rpc::node_from_wire(reader.getRoot<schema::NodeInfo>());
    (void)rpc::beat_from_wire(reader.getRoot<schema::Heartbeat>());
    core::GenerationUpdate batch;
    rpc::batch_from_wire(reader.getRoot<schema::TokenBatch>(), batch);
    // What the RPC layer does first with every incoming message, then the registry's reads.
    auto message = reader.getRoot<capnp::rpc::Message>();
    if (message.isCall()) {
      auto content = message.getCall().getParams().getContent();
      (void)rpc::wire_text(content.getAs<schema::Registry::RegisterParams>().getClusterToken());
      (void)rpc::node_from_wire(content.getAs<schema::Registry::RegisterParams>().getInfo());
      (void)rpc::beat_from_wire(content.getAs<schema::Registry::HeartbeatParams>().getBeat());
      // A worker's end of a generation, as the controller reads it, and a handoff to adopt, as
      // a decode worker reads it before pulling any KV.
      auto done = content.getAs<schema::TokenSink::DoneParams>();
      core::GenerationUpdate update;
      rpc::batch_from_wire(done.getBatch(), update);
      (void)rpc::wire_text(done.getError());
      (void)done.getHandoff().getBytes();
      auto decode = content.getAs<schema::Worker::DecodeParams>();
      (void)rpc::job_from_wire(decode.getJob());
      (void)decode.getHandoff().getKvTokens();
    }
  } catch (const kj::Exception&) {
    // Malformed messages are rejected by exceptions at this (process) boundary: fine.
  }
  return 0;
}

int fuzz_cluster_rpc(const std::uint8_t* data, std::size_t size) {
  static const ClusterFixture fixture;
  static std::atomic<int> inputs{0};
  auto reply = loopback_exchange(fixture.server->port(), data, size, kDeadline);
  if (!reply.closed) fuzz_fail("the cluster registry neither answered nor closed within 5 s");
  if (inputs++ % kHealthCheckEvery == 0) fixture.check_health();
  return 0;
}

}  // namespace aegaeon::fuzz
