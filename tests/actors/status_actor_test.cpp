// The CAF<->kj bridge under load: 100 concurrent HTTP clients, each request handed from the kj
// thread to a CAF actor (anon_send) and answered from the actor's thread (Responder).
#include "actors/status_actor.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <thread>

#include "actors/actor_runtime.hpp"
#include "rpc/http/http_server.hpp"
#include "rpc/kj_runtime.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon::actors {
namespace {

TEST(StatusActorBridge, HundredConcurrentRequestsAllAnsweredExactlyOnce) {
  constexpr int kClients = 100;
  ActorRuntime actors(2);
  auto status = spawn_status_actor(actors.system(), {"test-version", "node-a"});
  auto kj = rpc::KjRuntime::start();
  ASSERT_TRUE(kj.ok());
  rpc::http::HttpRouter router;
  router.add("GET", "/health", [status](const rpc::http::HttpRequest&,
                                        const rpc::http::Responder& responder) {
    request_health(status, responder);
  });
  auto server = rpc::http::HttpServer::start(**kj, {}, std::move(router));
  ASSERT_TRUE(server.ok()) << server.error().message;
  uint16_t port = (*server)->port();

  std::vector<int> statuses(kClients);
  std::vector<uint64_t> sequence(kClients);
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      try {
        auto response = testing::http_request(port, "GET", "/health");
        statuses[i] = response.status;
        auto body = nlohmann::json::parse(response.body);
        sequence[i] = body.at("health_checks").get<uint64_t>();
        if (body.at("node") != "node-a") failures[i] = "wrong node: " + response.body;
      } catch (const std::exception& e) {
        failures[i] = e.what();
      }
    });
  }
  for (auto& client : clients) client.join();

  std::set<uint64_t> seen(sequence.begin(), sequence.end());
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(failures[i], "") << "client " << i;
    EXPECT_EQ(statuses[i], 200) << "client " << i;
  }
  // The actor handled each request exactly once, one at a time: sequence numbers 1..100.
  EXPECT_EQ(seen.size(), static_cast<size_t>(kClients));
  EXPECT_EQ(*seen.begin(), 1u);
  EXPECT_EQ(*seen.rbegin(), static_cast<uint64_t>(kClients));

  (*server)->shutdown();
  server->reset();
  kj->reset();  // kj before the actor system (DESIGN.md rule 4)
  stop_actor(status);
}

TEST(StatusActorBridge, StoppedActorNeverLeavesAClientHanging) {
  ActorRuntime actors(1);
  auto status = spawn_status_actor(actors.system(), {"v", "n"});
  stop_actor(status);
  auto kj = rpc::KjRuntime::start();
  ASSERT_TRUE(kj.ok());
  rpc::http::HttpRouter router;
  router.add("GET", "/health", [status](const rpc::http::HttpRequest&,
                                        const rpc::http::Responder& responder) {
    request_health(status, responder);
  });
  auto server = rpc::http::HttpServer::start(**kj, {}, std::move(router));
  ASSERT_TRUE(server.ok());
  // The message to a dead actor is dropped with its Responder: the client gets a 500, not a hang.
  auto response = testing::http_request((*server)->port(), "GET", "/health");
  EXPECT_EQ(response.status, 500);
}

}  // namespace
}  // namespace aegaeon::actors
