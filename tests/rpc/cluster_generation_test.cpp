// Remote generations over real Cap'n Proto RPC on loopback (two kj loops, as two processes
// would have): tokens stream in order and end once; cancelling reaches the worker; a worker
// whose connection breaks mid-generation is reported lost (so the controller can re-submit).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "rpc/cluster_registry.hpp"
#include "rpc/kj_runtime.hpp"

namespace aegaeon::rpc {
namespace {

using namespace std::chrono_literals;

// Collects what the controller side receives (written on the server's kj thread).
class Updates {
 public:
  void add(core::GenerationUpdate update) {
    std::lock_guard lock(mutex_);
    updates_.push_back(std::move(update));
    changed_.notify_all();
  }
  // Waits until the last update ends the generation.
  std::vector<core::GenerationUpdate> wait_end() {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 5s, [this] {
      return !updates_.empty() && (updates_.back().finished || updates_.back().worker_lost);
    });
    return updates_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<core::GenerationUpdate> updates_;
};

class ClusterGenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server_runtime = KjRuntime::start();
    auto client_runtime = KjRuntime::start();
    ASSERT_TRUE(server_runtime.ok() && client_runtime.ok());
    server_runtime_ = std::move(*server_runtime);
    client_runtime_ = std::move(*client_runtime);
    ClusterRegistryServer::Options options;
    options.cluster_token = "s3cret";
    auto server = ClusterRegistryServer::start(*server_runtime_, options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    client_runtime_.reset();
    server_runtime_.reset();
  }

  // Joins as a worker whose generations `start` runs; returns the node id.
  uint64_t join(WorkerHandlers handlers) {
    auto client = ClusterClient::connect(*client_runtime_, "127.0.0.1", server_->port());
    EXPECT_TRUE(client.ok());
    client_ = std::move(*client);
    core::NodeRegistration node;
    node.node_name = "w";
    node.protocol_version = cluster_protocol_version();
    node.served_models = {{"m", 64, "{}", ""}};
    auto reply = client_->register_node(node, "s3cret", std::make_shared<WorkerHandlers>(std::move(handlers)));
    EXPECT_TRUE(reply.ok()) << reply.error().message;
    return reply.ok() ? reply->node_id : 0;
  }

  std::unique_ptr<KjRuntime> server_runtime_;
  std::unique_ptr<KjRuntime> client_runtime_;
  std::unique_ptr<ClusterRegistryServer> server_;
  std::unique_ptr<ClusterClient> client_;
};

TEST_F(ClusterGenerationTest, StreamsTokensInOrderThenTheEnd) {
  core::GenerationJob received;
  uint64_t node = join({[&](uint64_t, core::GenerationJob job, GenerationStream stream) {
                          received = job;
                          // Sent from the worker's kj thread here; actors send from their own.
                          for (std::int32_t t = 0; t < 50; ++t) {
                            core::GenerationUpdate update;
                            update.tokens = {t};
                            update.logprobs = {-0.5f};
                            ASSERT_TRUE(stream.send(update));
                          }
                          core::GenerationUpdate last;
                          last.tokens = {50};
                          last.logprobs = {-1.0f};
                          last.finished = true;
                          last.reason = core::FinishReason::kLength;
                          EXPECT_TRUE(stream.send(last));
                          EXPECT_FALSE(stream.send(last)) << "nothing goes after the end";
                        },
                        [](uint64_t) { ADD_FAILURE() << "a finished generation is not cancelled"; }});
  ASSERT_NE(node, 0u);
  core::GenerationJob job;
  job.model = "m";
  job.prompt = {1, 2, 3};
  job.max_output_tokens = 51;
  job.temperature = 0;
  job.seed = 42;
  Updates updates;
  auto id = server_->generate(node, job, [&](core::GenerationUpdate u) { updates.add(std::move(u)); });
  ASSERT_TRUE(id.ok()) << id.error().message;
  auto got = updates.wait_end();
  std::vector<std::int32_t> tokens;
  for (const auto& u : got) tokens.insert(tokens.end(), u.tokens.begin(), u.tokens.end());
  ASSERT_EQ(tokens.size(), 51u);
  for (std::int32_t t = 0; t <= 50; ++t) EXPECT_EQ(tokens[static_cast<size_t>(t)], t);
  EXPECT_TRUE(got.back().finished);
  EXPECT_EQ(got.back().reason, core::FinishReason::kLength);
  EXPECT_FALSE(got.back().worker_lost);
  EXPECT_EQ(received.prompt, job.prompt);
  EXPECT_EQ(received.seed, 42u);
  EXPECT_EQ(received.max_output_tokens, 51);
}

TEST_F(ClusterGenerationTest, CancelReachesTheWorker) {
  std::mutex mutex;
  std::condition_variable cancelled_cv;
  std::optional<uint64_t> started;
  std::optional<uint64_t> cancelled;
  std::optional<GenerationStream> kept;
  uint64_t node = join({[&](uint64_t id, core::GenerationJob, GenerationStream stream) {
                          std::lock_guard lock(mutex);
                          started = id;
                          kept = stream;
                        },
                        [&](uint64_t id) {
                          std::lock_guard lock(mutex);
                          cancelled = id;
                          cancelled_cv.notify_all();
                        }});
  Updates updates;
  auto id = server_->generate(node, {"m", {1}, 4}, [&](core::GenerationUpdate u) { updates.add(std::move(u)); });
  ASSERT_TRUE(id.ok());
  // Wait until the worker has it, then cancel.
  for (int i = 0; i < 500; ++i) {
    std::lock_guard lock(mutex);
    if (started) break;
    std::this_thread::sleep_for(2ms);
  }
  server_->cancel(*id);
  std::unique_lock lock(mutex);
  ASSERT_TRUE(cancelled_cv.wait_for(lock, 5s, [&] { return cancelled.has_value(); }));
  EXPECT_EQ(cancelled, started);
  lock.unlock();
  EXPECT_FALSE(kept->send({})) << "a cancelled generation takes no more tokens";
}

TEST_F(ClusterGenerationTest, ABrokenConnectionReportsTheGenerationLost) {
  std::atomic<bool> started{false};
  uint64_t node = join({[&](uint64_t, core::GenerationJob, GenerationStream stream) {
                          core::GenerationUpdate update;
                          update.tokens = {7};
                          update.logprobs = {0};
                          stream.send(update);
                          started = true;
                        },
                        [](uint64_t) {}});
  Updates updates;
  auto id = server_->generate(node, {"m", {1}, 4}, [&](core::GenerationUpdate u) { updates.add(std::move(u)); });
  ASSERT_TRUE(id.ok());
  for (int i = 0; i < 500 && !started; ++i) std::this_thread::sleep_for(2ms);
  client_.reset();  // the worker's connection goes away mid-generation
  auto got = updates.wait_end();
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().tokens, std::vector<std::int32_t>{7});
  EXPECT_TRUE(got.back().worker_lost);
  // The node is gone too: nothing more is routed to it.
  for (int i = 0; i < 500 && !server_->nodes().empty(); ++i) std::this_thread::sleep_for(2ms);
  EXPECT_TRUE(server_->nodes().empty());
  EXPECT_FALSE(server_->generate(node, {"m", {1}, 4}, [](core::GenerationUpdate) {}).ok());
}

}  // namespace
}  // namespace aegaeon::rpc
