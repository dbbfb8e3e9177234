// ServingNode's admin unload and load in one process, so that ThreadSanitizer sees every thread
// taking part (scripts/test runs this suite under TSan): the proxy, prefill, decode and
// gpu_worker actors, the loader thread, and HTTP clients generating with a model that stays
// while another one is unloaded and loaded again and again.
#include "actors/serving_node.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "actors/actor_runtime.hpp"
#include "actors/cache_keeper.hpp"
#include "actors/status_actor.hpp"
#include "actors/worker_relay.hpp"
#include "core/metrics.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "text/tokenizer_synthesizer.hpp"
#include "rpc/http/http_server.hpp"
#include "rpc/http/openai_api.hpp"
#include "rpc/kj_runtime.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon::actors {
namespace {

using json = nlohmann::json;

// A small Llama-shaped model folder with its tokenizer, weights from `seed`.
void write_model(const std::filesystem::path& dir, std::uint64_t seed) {
  const int vocab = text::min_synth_vocab_size(text::TokenizerLayout::kLlama3) + 64;
  auto tokenizer = text::synth_tokenizer(text::TokenizerLayout::kLlama3, vocab);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  model::SynthSpec spec;
  spec.config = model::synth_config(model::Architecture::kLlama, 64, 2, vocab);
  spec.config.bos_token_id = tokenizer->bos_id;
  spec.config.eos_token_ids = tokenizer->eos_ids;
  spec.seed = seed;
  ASSERT_TRUE(model::write_synthetic_model(dir, spec).ok());
  ASSERT_TRUE(text::write_synth_tokenizer(dir, *tokenizer).ok());
}

// Runs an admin unload or load and waits for its answer.
core::Result<std::vector<ModelStatus>> wait_for(const std::function<void(AdminDone)>& action) {
  std::promise<core::Result<std::vector<ModelStatus>>> answered;
  auto answer = answered.get_future();
  action([&answered](core::Result<std::vector<ModelStatus>> result) { answered.set_value(std::move(result)); });
  return answer.get();
}

std::string state_of(const std::vector<ModelStatus>& models, const std::string& name) {
  for (const auto& model : models) {
    if (model.name == name) return model.state;
  }
  return "missing";
}

TEST(ServingNodeAdmin, AModelUnloadsAndLoadsWhileAnotherGenerates) {
  const auto dir = std::filesystem::temp_directory_path() / ("aegaeon-node-unload-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  write_model(dir / "stays", 1);
  write_model(dir / "comes-and-goes", 2);

  ActorRuntime actors(2);
  prometheus::Registry registry;
  ServingOptions options;
  options.models = {{"stays", dir / "stays"}, {"comes-and-goes", dir / "comes-and-goes"}};
  options.device.kv_bytes = std::uint64_t{4} << 20;
  options.device.host_kv_blocks = 64;
  options.admission.enabled = false;
  auto node = ServingNode::start(actors.system(), options, registry);
  ASSERT_TRUE(node.ok()) << node.error().message;

  auto kj = rpc::KjRuntime::start();
  ASSERT_TRUE(kj.ok());
  rpc::http::HttpRouter router;
  router.add("POST", "/v1/completions", [&node](const rpc::http::HttpRequest& request, const rpc::http::Responder& responder) {
    auto parsed = rpc::http::openai::parse_generation_request(request.body, core::GenerationRequest::Api::kCompletion);
    if (!parsed.ok()) return responder.respond(rpc::http::openai::error_response(parsed.error()));
    (*node)->submit(std::move(*parsed), responder);
  });
  auto server = rpc::http::HttpServer::start(**kj, {}, std::move(router));
  ASSERT_TRUE(server.ok()) << server.error().message;
  const uint16_t port = (*server)->port();
  auto complete = [port](const std::string& model) {
    return testing::http_request(port, "POST", "/v1/completions",
                                 json{{"model", model}, {"prompt", "Hello"}, {"max_tokens", 6}, {"temperature", 0}}.dump());
  };
  const auto first = complete("stays");
  ASSERT_EQ(first.status, 200) << first.body;

  // One client keeps generating with "stays" while the other model cycles.
  std::atomic<bool> cycling{true};
  std::atomic<int> served{0};
  std::thread client([&] {
    for (int i = 0; i < 200 && cycling.load(); ++i) {
      const auto response = complete("stays");
      EXPECT_EQ(response.status, 200) << response.body;
      EXPECT_EQ(json::parse(response.body)["choices"][0]["text"], json::parse(first.body)["choices"][0]["text"]);
      ++served;
    }
  });
  auto& serving = **node;
  for (int cycle = 0; cycle < 10; ++cycle) {
    EXPECT_EQ(complete("comes-and-goes").status, 200) << "cycle " << cycle;
    auto unloaded = wait_for([&](AdminDone done) { serving.unload_model("comes-and-goes", std::move(done)); });
    ASSERT_TRUE(unloaded.ok()) << unloaded.error().message;
    EXPECT_EQ(state_of(*unloaded, "comes-and-goes"), "unloaded");
    EXPECT_EQ(complete("comes-and-goes").status, 404);
    EXPECT_EQ(serving.models().size(), 1U) << "only the loaded model is listed";
    auto again = wait_for([&](AdminDone done) { serving.unload_model("comes-and-goes", std::move(done)); });
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, core::ErrorCode::kFailedPrecondition);
    auto loaded = wait_for([&](AdminDone done) { serving.load_model("comes-and-goes", std::move(done)); });
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_EQ(state_of(*loaded, "comes-and-goes"), "cached");
  }
  EXPECT_EQ(complete("comes-and-goes").status, 200);
  cycling = false;
  client.join();
  EXPECT_GT(served.load(), 0);
  // Both at once: one unload wins, the other is told the model is on its way out already.
  std::promise<core::Result<std::vector<ModelStatus>>> one, two;
  serving.unload_model("comes-and-goes", [&](auto result) { one.set_value(std::move(result)); });
  serving.unload_model("comes-and-goes", [&](auto result) { two.set_value(std::move(result)); });
  EXPECT_NE(one.get_future().get().ok(), two.get_future().get().ok());
  server->reset();
  serving.stop();
  std::filesystem::remove_all(dir);
}

// A cluster worker's host cache (worker process wiring: a relay as the front, models starting
// unloaded): the keeper loads what it is told within its limit, and unloads what it is no longer
// told to hold before loading more. Under TSan: the keeper's thread, the loader threads and the
// actors.
TEST(CacheKeeper, HoldsWhatThePlacementAsksWithinItsLimit) {
  const auto dir = std::filesystem::temp_directory_path() / ("aegaeon-cache-keeper-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (const char* name : {"a", "b", "c"}) write_model(dir / name, 1);

  ActorRuntime actors(2);
  prometheus::Registry registry;
  ServingOptions options;
  options.models = {{"a", dir / "a"}, {"b", dir / "b"}, {"c", dir / "c"}};
  options.device.kv_bytes = std::uint64_t{4} << 20;
  options.device.host_kv_blocks = 64;
  options.admission.enabled = false;
  options.start_unloaded = true;
  auto relay = spawn_worker_relay(actors.system(), std::make_shared<RelayLoad>());
  options.front = relay;
  auto node = ServingNode::start(actors.system(), options, registry);
  ASSERT_TRUE(node.ok()) << node.error().message;
  ServingNode& serving = **node;
  EXPECT_TRUE(serving.models().empty()) << "nothing is held before the placement asks";

  const std::uint64_t model_bytes = serving.weight_bytes(0);
  auto held = [&] {
    std::set<std::string> names;
    for (const auto& model : serving.models()) names.insert(model.name);
    return names;
  };
  // Waits until the node holds `want`, checking the limit at every look.
  auto wait_until_held = [&](const std::set<std::string>& want) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::set<std::string> now = held();
    while (now != want && std::chrono::steady_clock::now() < deadline) {
      EXPECT_LE(now.size(), 2U) << "more than the limit held";
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      now = held();
    }
    return now;
  };
  {
    CacheKeeper keeper(serving, 2 * model_bytes);
    keeper.want({"a", "b", "c"});  // room for two: the first two in name order
    EXPECT_EQ(wait_until_held({"a", "b"}), (std::set<std::string>{"a", "b"}));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a pass or two later, still two
    EXPECT_EQ(held(), (std::set<std::string>{"a", "b"}));
    keeper.want({"c", "nonexistent"});
    EXPECT_EQ(wait_until_held({"c"}), (std::set<std::string>{"c"}));
    keeper.want({"a", "c"});
    EXPECT_EQ(wait_until_held({"a", "c"}), (std::set<std::string>{"a", "c"}));
  }
  serving.stop();
  stop_actor(relay);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace aegaeon::actors
