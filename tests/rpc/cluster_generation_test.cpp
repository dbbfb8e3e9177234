// Remote generations over real Cap'n Proto RPC on loopback (two kj loops, as two processes
// would have): tokens stream in order and end once; cancelling reaches the worker; a worker
// whose connection breaks mid-generation is reported lost (so the controller can re-submit); a
// prefill worker's KV handoff reaches a decode worker byte for byte, in chunks, and is lost
// cleanly with its prefill worker.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
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
      return !updates_.empty() &&
             (updates_.back().finished || updates_.back().worker_lost || updates_.back().handoff);
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
    clients_.clear();
    client_.reset();
    server_.reset();
    client_runtime_.reset();
    server_runtime_.reset();
  }

  // Joins as a worker whose generations `start` runs; returns the node id. The last worker
  // joined is `client_`; earlier ones stay connected in `clients_`.
  uint64_t join(WorkerHandlers handlers) {
    auto client = ClusterClient::connect(*client_runtime_, "127.0.0.1", server_->port());
    EXPECT_TRUE(client.ok());
    if (client_) clients_.push_back(std::move(client_));
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
  std::vector<std::unique_ptr<ClusterClient>> clients_;
};

// A KV blob whose every byte depends on its position, so a chunk out of place shows.
core::HostBytes pattern_blob(std::size_t bytes) {
  std::vector<std::byte> blob(bytes);
  for (std::size_t i = 0; i < bytes; ++i) blob[i] = static_cast<std::byte>((i * 131 + i / 4096) & 0xff);
  return core::HostBytes(std::move(blob));
}

// A prefill-only worker: the first token, then the KV handoff of `blob`.
WorkerHandlers prefill_worker(core::HostBytes blob) {
  return {[blob](uint64_t, core::GenerationJob job, GenerationStream stream) {
            core::GenerationUpdate first;
            first.tokens = {5};
            first.logprobs = {-0.25f};
            first.queue_s = 0.5;
            EXPECT_TRUE(stream.send(first));
            core::GenerationUpdate handoff;
            handoff.handoff = core::KvHandoff{static_cast<std::int32_t>(job.prompt.size()), 5, blob.size(), blob, 0};
            EXPECT_TRUE(stream.send(handoff));
            EXPECT_FALSE(stream.send(first)) << "nothing goes after the handoff";
          },
          [](uint64_t) {}};
}

// A decode-only worker that accepts handoffs of at most 8 MiB and gives each to `adopt`.
WorkerHandlers decode_worker(std::function<void(uint64_t, core::GenerationJob, core::KvHandoff, GenerationStream)> adopt) {
  WorkerHandlers decode;
  decode.start = [](uint64_t, core::GenerationJob, GenerationStream) { ADD_FAILURE() << "decode-only"; };
  decode.cancel = [](uint64_t) {};
  decode.accepts = [](const core::GenerationJob&, const core::KvHandoff& h) -> core::Result<void> {
    if (h.bytes > (8u << 20)) return core::error(core::ErrorCode::kInvalidArgument, "too many KV bytes");
    return core::ok();
  };
  decode.adopt = std::move(adopt);
  return decode;
}

// Both ways a decode worker takes the KV: from the prefill worker's memory file (same host, the
// default), or pulled in chunks through the controller (--kv-transport rpc, or another host).
TEST_F(ClusterGenerationTest, AHandedOffKvReachesTheDecodeWorkerByteForByte) {
  for (const bool shared_memory : {true, false}) {
  SCOPED_TRACE(shared_memory ? "shared memory" : "rpc");
  // Three whole 1 MiB chunks and a partial one: every lane of the pull and the short tail.
  const auto blob = pattern_blob(3 * (1u << 20) + 12345);
  uint64_t prefill = join(prefill_worker(blob));
  std::mutex mutex;
  std::optional<core::KvHandoff> adopted;
  core::GenerationJob adopted_job;
  auto decode = decode_worker([&](uint64_t, core::GenerationJob job, core::KvHandoff handoff, GenerationStream stream) {
    {
      std::lock_guard lock(mutex);
      adopted = handoff;
      adopted_job = job;
    }
    core::GenerationUpdate last;
    last.tokens = {6};
    last.logprobs = {-0.5f};
    last.finished = true;
    last.reason = core::FinishReason::kLength;
    EXPECT_TRUE(stream.send(last));
  });
  decode.kv_shared_memory = shared_memory;
  uint64_t decoder = join(std::move(decode));

  core::GenerationJob job{"m", {1, 2, 3}, {.max_tokens = 2}};
  Updates prefilled;
  ASSERT_TRUE(server_->generate(prefill, job, [&](core::GenerationUpdate u) { prefilled.add(std::move(u)); }).ok());
  auto got = prefilled.wait_end();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].tokens, std::vector<std::int32_t>{5});
  ASSERT_TRUE(got[1].handoff.has_value());
  EXPECT_FALSE(got[1].finished);
  const core::KvHandoff handoff = *got[1].handoff;
  EXPECT_EQ(handoff.kv_tokens, 3);
  EXPECT_EQ(handoff.last_token, 5);
  EXPECT_EQ(handoff.bytes, blob.size());
  EXPECT_TRUE(handoff.blob.empty()) << "the controller never holds the bytes";

  // A node that is not there takes nothing: the handle stays for the next choice.
  EXPECT_FALSE(server_->decode(decoder + 100, job, handoff, [](core::GenerationUpdate) {}).ok());
  Updates decoded;
  ASSERT_TRUE(server_->decode(decoder, job, handoff, [&](core::GenerationUpdate u) { decoded.add(std::move(u)); }).ok());
  auto end = decoded.wait_end();
  ASSERT_EQ(end.size(), 1u);
  EXPECT_TRUE(end[0].finished);
  EXPECT_EQ(end[0].tokens, std::vector<std::int32_t>{6});
  EXPECT_GE(end[0].kv_pull_s, 0.0) << "the decode's first update says how long the KV took";
  EXPECT_EQ(end[0].kv_shared_memory, shared_memory) << "and how it came";
  std::lock_guard lock(mutex);
  ASSERT_TRUE(adopted.has_value());
  ASSERT_FALSE(adopted->blob.empty());
  EXPECT_NE(adopted->blob.data(), blob.data()) << "another process would have its own copy or mapping";
  EXPECT_TRUE(adopted->blob == blob) << "the pulled KV differs from the handed-off one";
  EXPECT_EQ(adopted->kv_tokens, 3);
  EXPECT_EQ(adopted_job.prompt, job.prompt);
  // The handle is used up: a second decode of it finds nothing.
  EXPECT_FALSE(server_->decode(decoder, job, handoff, [](core::GenerationUpdate) {}).ok());
  }
}

TEST_F(ClusterGenerationTest, AHandoffIsRefusedBeforeAByteMovesOrLostWithItsPrefillWorker) {
  const auto blob = pattern_blob(16u << 20);  // more than the decode worker accepts
  uint64_t prefill = join(prefill_worker(blob));
  std::atomic<int> adopted{0};
  uint64_t decoder = join(decode_worker([&](uint64_t, core::GenerationJob, core::KvHandoff, GenerationStream) { ++adopted; }));
  core::GenerationJob job{"m", {1, 2}, {.max_tokens = 4}};

  // Refused: the decode call fails with the worker's reason; nothing was adopted.
  Updates first;
  ASSERT_TRUE(server_->generate(prefill, job, [&](core::GenerationUpdate u) { first.add(std::move(u)); }).ok());
  auto handed = first.wait_end();
  ASSERT_TRUE(!handed.empty() && handed.back().handoff);
  Updates refused;
  ASSERT_TRUE(server_->decode(decoder, job, *handed.back().handoff, [&](core::GenerationUpdate u) {
                        refused.add(std::move(u));
                      }).ok());
  auto end = refused.wait_end();
  ASSERT_FALSE(end.empty());
  EXPECT_TRUE(end.back().worker_lost);
  EXPECT_NE(end.back().error.find("too many KV bytes"), std::string::npos) << end.back().error;

  // Lost: the prefill worker goes away before the decode worker pulls; the decode reports the
  // generation lost (the controller re-prefills it) and adopts nothing.
  Updates second;
  ASSERT_TRUE(server_->generate(prefill, job, [&](core::GenerationUpdate u) { second.add(std::move(u)); }).ok());
  handed = second.wait_end();
  ASSERT_TRUE(!handed.empty() && handed.back().handoff);
  auto small = *handed.back().handoff;
  small.bytes = 1u << 20;  // within what the decode worker accepts; the source is gone anyway
  clients_.clear();        // the prefill worker's connection
  for (int i = 0; i < 500 && server_->nodes().size() > 1; ++i) std::this_thread::sleep_for(2ms);
  Updates lost;
  ASSERT_TRUE(server_->decode(decoder, job, small, [&](core::GenerationUpdate u) { lost.add(std::move(u)); }).ok());
  end = lost.wait_end();
  ASSERT_FALSE(end.empty());
  EXPECT_TRUE(end.back().worker_lost);
  EXPECT_EQ(adopted.load(), 0);
}

TEST_F(ClusterGenerationTest, StreamsTokensInOrderThenTheEnd) {
  core::GenerationJob received;
  uint64_t node = join({[&](uint64_t, core::GenerationJob job, GenerationStream stream) {
                          received = job;
                          // Sent from the worker's kj thread here; actors send from their own.
                          for (std::int32_t t = 0; t < 50; ++t) {
                            core::GenerationUpdate update;
                            if (t == 0) {  // the first batch carries the prompt's scores
                              update.prompt_logprobs = {-2.0f, -3.0f};
                              update.prompt_top_logprobs = {{{4, -0.25f}}, {{5, -0.75f}, {6, -1.0f}}};
                            }
                            update.tokens = {t};
                            update.logprobs = {-0.5f};
                            update.top_logprobs = {{{t, -0.5f}, {t + 100, -1.5f}}};
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
  job.stop = {.max_tokens = 51, .min_tokens = 3, .stop_token_ids = {2, 7}};
  // Every sampling field crosses the wire, none at its default.
  job.sampling = {.temperature = 0.7f, .top_p = 0.9f, .top_k = 40, .min_p = 0.05f, .presence_penalty = 0.5f,
                  .frequency_penalty = -0.25f, .repetition_penalty = 1.1f, .seed = 42, .top_logprobs = 2,
                  .prompt_logprobs = 1, .logit_bias = {{5, -100.0f}, {9, 2.5f}}, .structured = {R"({"type": "object"})", "<a>", "</a>"}};
  job.resumed_tokens = 1;
  Updates updates;
  auto id = server_->generate(node, job, [&](core::GenerationUpdate u) { updates.add(std::move(u)); });
  ASSERT_TRUE(id.ok()) << id.error().message;
  auto got = updates.wait_end();
  std::vector<std::int32_t> tokens;
  std::vector<std::vector<core::TokenLogprob>> alternatives;
  for (const auto& u : got) {
    tokens.insert(tokens.end(), u.tokens.begin(), u.tokens.end());
    alternatives.insert(alternatives.end(), u.top_logprobs.begin(), u.top_logprobs.end());
  }
  ASSERT_EQ(tokens.size(), 51u);
  for (std::int32_t t = 0; t <= 50; ++t) EXPECT_EQ(tokens[static_cast<size_t>(t)], t);
  EXPECT_EQ(got.front().prompt_logprobs, (std::vector<float>{-2.0f, -3.0f}));
  ASSERT_EQ(got.front().prompt_top_logprobs.size(), 2u);
  ASSERT_EQ(got.front().prompt_top_logprobs[1].size(), 2u);
  EXPECT_EQ(got.front().prompt_top_logprobs[1][1].token, 6);
  EXPECT_FLOAT_EQ(got.front().prompt_top_logprobs[1][1].logprob, -1.0f);
  EXPECT_TRUE(got.back().prompt_logprobs.empty());
  // Each token's alternatives arrive with it; the last batch asked for none.
  ASSERT_EQ(alternatives.size(), 50u);
  for (std::int32_t t = 0; t < 50; ++t) {
    const auto& step = alternatives[static_cast<size_t>(t)];
    ASSERT_EQ(step.size(), 2u);
    EXPECT_EQ(step[0].token, t);
    EXPECT_EQ(step[1].token, t + 100);
    EXPECT_FLOAT_EQ(step[1].logprob, -1.5f);
  }
  EXPECT_TRUE(received.sampling == job.sampling);
  EXPECT_EQ(received.resumed_tokens, 1);
  EXPECT_TRUE(got.back().finished);
  EXPECT_EQ(got.back().reason, core::FinishReason::kLength);
  EXPECT_FALSE(got.back().worker_lost);
  EXPECT_EQ(received.prompt, job.prompt);
  EXPECT_TRUE(received.stop == job.stop);
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
  auto id = server_->generate(node, {"m", {1}, {.max_tokens = 4}}, [&](core::GenerationUpdate u) { updates.add(std::move(u)); });
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
  auto id = server_->generate(node, {"m", {1}, {.max_tokens = 4}}, [&](core::GenerationUpdate u) { updates.add(std::move(u)); });
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
  EXPECT_FALSE(server_->generate(node, {"m", {1}, {.max_tokens = 4}}, [](core::GenerationUpdate) {}).ok());
}

}  // namespace
}  // namespace aegaeon::rpc
