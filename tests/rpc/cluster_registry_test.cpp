// Cluster membership over real Cap'n Proto RPC on loopback: a round trip, a wrong token, a
// wrong version, heartbeats for unknown nodes, and an address nobody listens on.
#include "rpc/cluster_registry.hpp"

#include <gtest/gtest.h>

#include "rpc/kj_runtime.hpp"

namespace aegaeon::rpc {
namespace {

class ClusterRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server_runtime = KjRuntime::start();
    auto client_runtime = KjRuntime::start();  // a second loop: the client is another "process"
    ASSERT_TRUE(server_runtime.ok() && client_runtime.ok());
    server_runtime_ = std::move(*server_runtime);
    client_runtime_ = std::move(*client_runtime);
    ClusterRegistryServer::Options options;
    options.cluster_token = "s3cret";
    options.heartbeat_interval_ms = 250;
    options.on_register = [this](const RegisteredNode& node) { registered_names_.push_back(node.registration.node_name); };
    auto server = ClusterRegistryServer::start(*server_runtime_, options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    client_runtime_.reset();
    server_runtime_.reset();
  }

  std::unique_ptr<ClusterClient> connect() {
    auto client = ClusterClient::connect(*client_runtime_, "127.0.0.1", server_->port());
    EXPECT_TRUE(client.ok()) << client.error().message;
    return client.ok() ? std::move(*client) : nullptr;
  }

  static core::NodeRegistration worker(const std::string& name) {
    core::NodeRegistration node;
    node.node_name = name;
    node.protocol_version = cluster_protocol_version();
    node.devices = {{"cpu", 0, 1ull << 30}, {"cuda", 1, 80ull << 30}};
    node.host_cache_bytes = 64ull << 30;
    node.models_on_disk = {"qwen2.5-7b", "llama-2-13b"};
    node.roles = {"decode"};
    return node;
  }

  std::unique_ptr<KjRuntime> server_runtime_;
  std::unique_ptr<KjRuntime> client_runtime_;
  std::unique_ptr<ClusterRegistryServer> server_;
  std::vector<std::string> registered_names_;  // written on the server's kj thread
};

TEST_F(ClusterRegistryTest, RegistersAndHeartbeats) {
  auto client = connect();
  ASSERT_TRUE(client);
  auto reply = client->register_node(worker("w1"), "s3cret");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->node_id, 1u);
  EXPECT_EQ(reply->heartbeat_interval_ms, 250u);

  auto second = client->register_node(worker("w2"), "s3cret");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->node_id, 2u);

  auto known = client->heartbeat({reply->node_id, 7, 3, 1, 0.5f});
  ASSERT_TRUE(known.ok()) << known.error().message;
  EXPECT_TRUE(*known);
  auto unknown = client->heartbeat({99, 1, 0, 0, 0});
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(*unknown);

  auto nodes = server_->nodes();
  ASSERT_EQ(nodes.size(), 2u);
  const auto& w1 = nodes[0];
  EXPECT_EQ(w1.registration.node_name, "w1");
  ASSERT_EQ(w1.registration.devices.size(), 2u);
  EXPECT_EQ(w1.registration.devices[1].kind, "cuda");
  EXPECT_EQ(w1.registration.devices[1].arena_bytes, 80ull << 30);
  EXPECT_EQ(w1.registration.models_on_disk, (std::vector<std::string>{"qwen2.5-7b", "llama-2-13b"}));
  EXPECT_EQ(w1.last_heartbeat.sequence, 7u);
  EXPECT_EQ(w1.last_heartbeat.running_requests, 3u);
  EXPECT_FLOAT_EQ(w1.last_heartbeat.kv_usage, 0.5f);
  EXPECT_EQ(registered_names_, (std::vector<std::string>{"w1", "w2"}));
}

TEST_F(ClusterRegistryTest, RefusesWrongTokenAndWrongVersion) {
  auto client = connect();
  ASSERT_TRUE(client);
  auto bad_token = client->register_node(worker("intruder"), "guess");
  ASSERT_FALSE(bad_token.ok());
  EXPECT_EQ(bad_token.error().code, core::ErrorCode::kUnauthenticated) << bad_token.error().message;

  auto old = worker("old");
  old.protocol_version = cluster_protocol_version() + 1;
  auto bad_version = client->register_node(old, "s3cret");
  ASSERT_FALSE(bad_version.ok());
  EXPECT_EQ(bad_version.error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_version.error().message.find("protocol version mismatch"), std::string::npos);

  EXPECT_TRUE(server_->nodes().empty());
  // The refused peer did not harm the server: a good peer still joins.
  EXPECT_TRUE(client->register_node(worker("good"), "s3cret").ok());
}

TEST_F(ClusterRegistryTest, ConnectToClosedPortFailsClearly) {
  uint16_t port = server_->port();
  server_.reset();
  auto client = ClusterClient::connect(*client_runtime_, "127.0.0.1", port, nullptr,
                                       std::chrono::milliseconds(2000));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code, core::ErrorCode::kUnavailable);
  EXPECT_NE(client.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos);
}

}  // namespace
}  // namespace aegaeon::rpc
