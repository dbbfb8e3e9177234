// The embedded default under load, over real HTTP: four demo models of different sizes share one
// decode device whose arena is given two weight slots (serve.weight_slots=2; by default it holds
// all four), so concurrent clients force token-level switches. Switching must never change results (compared
// with a server that never switches); disconnected clients must free their KV; streaming must
// not change text, which is also `aegaeon generate`'s; logprobs come with their top alternatives.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>
#include <thread>

#include "tests/integration/serve_process.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::kDemoModels;
using testing::ServeProcess;
using testing::metric_sum;
using testing::text_of;

// One server for the suite (starting it loads four models). Admission control is off: these
// tests are about results and resources under switching, not about capacity, and a shared CI
// machine may be slow enough for the SLO check to refuse some of the 20 clients.
class Switching : public testing::SharedServeSuite<Switching> {
 public:
  static std::vector<std::string> server_args() {
    return {"--set", "serve.admission=false", "--set", "serve.weight_slots=2"};
  }

 protected:
  // Asks `model` for 2000 tokens, hangs up once the request holds KV on the decode device, and
  // expects the server to cancel it and free every KV block.
  static void expect_hang_up_cancels(const std::string& model, bool stream) {
    const std::string cancelled = R"(finished_reason="cancelled",model_name=")" + model + '"';
    const double cancelled_before = metric_sum(metrics(), "aegaeon_request_success_total", cancelled);
    {
      testing::HttpConnection connection(server().port());
      connection.send_request("POST", "/v1/completions",
                              json{{"model", model}, {"prompt", "Never ending"}, {"max_tokens", 2000},
                                   {"temperature", 0}, {"stream", stream}}
                                  .dump());
      if (stream) {
        ASSERT_EQ(connection.read_head().status, 200);
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(connection.read_event().has_value());
      }
      ASSERT_TRUE(eventually([](const std::string& m) {
        return metric_sum(m, "aegaeon_kv_cache_usage_perc", R"(device="decode-0")") > 0;
      })) << "the request never reached decode";
    }  // hang up mid-answer
    EXPECT_TRUE(eventually([&](const std::string& m) {
      return metric_sum(m, "aegaeon_request_success_total", cancelled) == cancelled_before + 1 &&
             metric_sum(m, "aegaeon_kv_cache_usage_perc") == 0;
    })) << metrics();
  }
};

TEST_F(Switching, StartupLogComparesTheArenaWithTheModels) {
  const auto log = server().process().output();
  for (const auto& model : kDemoModels) EXPECT_NE(log.find(model + " "), std::string::npos) << log;
  EXPECT_NE(log.find("device arena"), std::string::npos) << log;
  EXPECT_NE(log.find("a device holds 2 of the 4 models at a time"), std::string::npos) << log;
}

// The twenty clients' requests: five per model, every fifth one sampled with its own seed (the
// seed fixes the sampled text, so switching must not change it either).
std::vector<json> twenty_jobs() {
  std::vector<json> jobs;
  for (size_t i = 0; i < 20; ++i) {
    json job = {{"model", kDemoModels[i % kDemoModels.size()]},
                {"prompt", "Client " + std::to_string(i) + " asks:"},
                {"max_tokens", 8},
                {"temperature", 0}};
    if (i % 5 == 4) job.update({{"temperature", 0.9}, {"top_p", 0.95}, {"seed", 1000 + i}});
    jobs.push_back(std::move(job));
  }
  return jobs;
}

// Sends every job at once, one client thread each; returns the texts in job order.
std::vector<std::string> complete_concurrently(uint16_t port, const std::vector<json>& jobs) {
  std::vector<std::string> texts(jobs.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < jobs.size(); ++i) {
    clients.emplace_back([&, i] {
      auto response = testing::post_json(port, "/v1/completions", jobs[i]);
      EXPECT_EQ(response.status, 200) << response.body;
      if (response.status == 200) texts[i] = text_of(json::parse(response.body));
    });
  }
  for (auto& client : clients) client.join();
  return texts;
}

double switches_total(uint16_t port, const std::string& label = {}) {
  return metric_sum(testing::http_request(port, "GET", "/metrics").body, "aegaeon_model_switches_total", label);
}

TEST_F(Switching, TwentyConcurrentClientsGetTheOutputsOfARunWithoutSwitching) {
  const std::vector<json> jobs = twenty_jobs();
  // Reference: the same jobs on a server that never switches. The static policy pins each model
  // to a prefill and a decode device of its own, so a device loads its model on first use (a
  // switch from an empty device) and keeps it.
  std::vector<std::string> reference;
  {
    ServeProcess pinned({"--policy", "static", "--set", "serve.prefill_devices=4", "--set",
                         "serve.decode_devices=4", "--set", "serve.admission=false"});
    ASSERT_NE(pinned.port(), 0) << pinned.process().output();
    for (const auto& model : kDemoModels) {
      auto warm_up = testing::post_json(pinned.port(), "/v1/completions",
                                        {{"model", model}, {"prompt", "Load"}, {"max_tokens", 4}});
      ASSERT_EQ(warm_up.status, 200) << warm_up.body;
    }
    const double loads = switches_total(pinned.port());
    EXPECT_EQ(loads, 2.0 * static_cast<double>(kDemoModels.size())) << "one load per device";
    reference = complete_concurrently(pinned.port(), jobs);
    EXPECT_EQ(switches_total(pinned.port()) - loads, 0) << "the reference run must not switch";
    pinned.stop();
  }

  const std::string ttft_count = "aegaeon_time_to_first_token_seconds_count";
  const double first_tokens_before = metric_sum(metrics(), ttft_count, R"(model_name="demo-l")");
  const double switches_before = switches_total(server().port(), R"(device="decode-0")");
  const std::vector<std::string> switched = complete_concurrently(server().port(), jobs);

  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(switched[i], reference[i]) << jobs[i].dump();
    EXPECT_FALSE(reference[i].empty()) << jobs[i].dump();
  }
  EXPECT_NE(reference[0], reference[1]) << "different models should give different text";
  EXPECT_GT(switches_total(server().port(), R"(device="decode-0")") - switches_before, 0)
      << "four models on one decode device must switch";
  EXPECT_EQ(metric_sum(metrics(), ttft_count, R"(model_name="demo-l")") - first_tokens_before, 5)
      << "the 5 requests of demo-l";
}

// The default arena holds every demo model: once each has been copied in, the same twenty
// clients make the decode device interleave four models (KV of four geometries side by side)
// without copying weights again, and get the texts of the two-slot server that switches.
TEST_F(Switching, TheDefaultHoldsEveryModelAndInterleavesWithoutCopies) {
  const std::vector<json> jobs = twenty_jobs();
  const std::vector<std::string> switched = complete_concurrently(server().port(), jobs);
  ServeProcess resident({"--set", "serve.admission=false"});
  ASSERT_NE(resident.port(), 0) << resident.process().output();
  EXPECT_NE(resident.process().output().find("a device holds all 4 models at once"), std::string::npos)
      << resident.process().output();
  for (const auto& model : kDemoModels) {
    auto warm_up = testing::post_json(resident.port(), "/v1/completions",
                                      {{"model", model}, {"prompt", "Load"}, {"max_tokens", 4}});
    ASSERT_EQ(warm_up.status, 200) << warm_up.body;
  }
  const double loads = switches_total(resident.port());
  EXPECT_EQ(loads, 2.0 * static_cast<double>(kDemoModels.size())) << "one copy per model and device";
  EXPECT_EQ(complete_concurrently(resident.port(), jobs), switched);
  EXPECT_EQ(switches_total(resident.port()) - loads, 0) << "resident models are never copied again";
  resident.stop();
}

TEST_F(Switching, StreamedTextEqualsCompleteText) {
  for (const std::string& model : std::vector<std::string>{"demo-xs", "demo-l"}) {
    json completion = {{"model", model}, {"prompt", "Streams and"}, {"max_tokens", 12}, {"temperature", 0}};
    auto whole = post("/v1/completions", completion);
    ASSERT_EQ(whole.status, 200) << whole.body;
    EXPECT_EQ(streamed_text("/v1/completions", completion), text_of(json::parse(whole.body))) << model;

    json chat = {{"model", model}, {"messages", {{{"role", "user"}, {"content", "Say something"}}}},
                 {"max_tokens", 12}, {"temperature", 0}};
    auto reply = post("/v1/chat/completions", chat);
    ASSERT_EQ(reply.status, 200) << reply.body;
    EXPECT_EQ(streamed_text("/v1/chat/completions", chat), text_of(json::parse(reply.body))) << model;
  }
}

TEST_F(Switching, StreamedTextEqualsAegaeonGenerate) {
  // `aegaeon generate` runs the same engine alone on the model's folder: one sequence, no
  // server, no batching, no switch. The server's stream must carry exactly its text, for a raw
  // prompt and for the chat template.
  const std::string prompt = "Tell me about the sea";
  for (const std::string& model : std::vector<std::string>{"demo-s", "demo-l"}) {
    for (const bool chat : {false, true}) {
      std::vector<std::string> argv = {AEGAEON_BINARY, "generate", "--model", testing::demo_model_dir(model),
                                       "--prompt", prompt, "--max-tokens", "16", "--threads", "1", "--quiet"};
      if (chat) argv.emplace_back("--chat");
      const auto [code, output] = testing::run_command(argv, {}, 60s);
      ASSERT_EQ(code, 0) << output;
      // --quiet prints the text and one newline, nothing else.
      ASSERT_FALSE(output.empty());
      ASSERT_EQ(output.back(), '\n') << output;
      const std::string generated = output.substr(0, output.size() - 1);
      EXPECT_FALSE(generated.empty()) << model;

      json body = {{"model", model}, {"max_tokens", 16}, {"temperature", 0}};
      if (chat) {
        body["messages"] = {{{"role", "user"}, {"content", prompt}}};
      } else {
        body["prompt"] = prompt;
      }
      EXPECT_EQ(streamed_text(chat ? "/v1/chat/completions" : "/v1/completions", body), generated)
          << model << (chat ? " (chat)" : "");
    }
  }
}

TEST_F(Switching, StreamingClientThatHangsUpFreesItsKv) { expect_hang_up_cancels("demo-l", /*stream=*/true); }

TEST_F(Switching, WaitingClientThatHangsUpIsCancelledToo) {
  // Without streaming nothing is written until the end, so the server must notice the hang-up
  // on its own; otherwise this request would run its 2000 tokens.
  expect_hang_up_cancels("demo-m", /*stream=*/false);
}

TEST_F(Switching, ChatLogprobsCarryTopAlternatives) {
  auto response = post("/v1/chat/completions",
                       {{"model", "demo-s"}, {"messages", {{{"role", "user"}, {"content", "Rank"}}}},
                        {"max_tokens", 6}, {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 4}});
  ASSERT_EQ(response.status, 200) << response.body;
  const auto content = json::parse(response.body)["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 6u);
  for (const auto& entry : content) {
    const auto& top = entry["top_logprobs"];
    ASSERT_EQ(top.size(), 4u) << entry;
    double mass = 0;
    for (size_t k = 0; k < top.size(); ++k) {
      mass += std::exp(top[k]["logprob"].get<double>());
      if (k > 0) {
        EXPECT_LE(top[k]["logprob"].get<double>(), top[k - 1]["logprob"].get<double>());
      }
      EXPECT_TRUE(top[k]["bytes"].is_array());
    }
    EXPECT_LE(mass, 1.0 + 1e-5);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(entry["token"], top[0]["token"]);
    EXPECT_FLOAT_EQ(entry["logprob"].get<float>(), top[0]["logprob"].get<float>());
  }
}

TEST_F(Switching, CompletionLogprobsCarryTopAlternatives) {
  auto response = post("/v1/completions", {{"model", "demo-xs"}, {"prompt", "Rank"}, {"max_tokens", 6},
                                            {"temperature", 0}, {"logprobs", 3}});
  ASSERT_EQ(response.status, 200) << response.body;
  const auto logprobs = json::parse(response.body)["choices"][0]["logprobs"];
  ASSERT_EQ(logprobs["top_logprobs"].size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const auto& top = logprobs["top_logprobs"][i];
    ASSERT_TRUE(top.is_object()) << top;
    EXPECT_EQ(top.size(), 3u) << top;
    double mass = 0;
    double best = -INFINITY;
    for (const auto& [token, logprob] : top.items()) {
      mass += std::exp(logprob.get<double>());
      best = std::max(best, logprob.get<double>());
    }
    EXPECT_LE(mass, 1.0 + 1e-5);
    EXPECT_FLOAT_EQ(static_cast<float>(best), logprobs["token_logprobs"][i].get<float>());
    EXPECT_TRUE(top.contains(logprobs["tokens"][i].get<std::string>())) << top;
  }
}

}  // namespace
}  // namespace aegaeon
