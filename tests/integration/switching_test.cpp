// The embedded default under load, over real HTTP: four demo models of different sizes share one
// decode device whose arena holds one model's weights at a time, so concurrent clients force
// token-level switches. Switching must never change results; disconnected clients must free
// their KV; streaming must not change text; logprobs come with their top alternatives.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <cmath>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/serve_process.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::ServeProcess;

const std::vector<std::string> kDemoModels = {"demo-xs", "demo-s", "demo-m", "demo-l"};

// Sum of every sample of `family` whose labels contain `label` (e.g. R"(device="decode-0")").
double metric_sum(const std::string& metrics, const std::string& family, const std::string& label = {}) {
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$)");
  double sum = 0;
  std::istringstream lines(metrics);
  std::string line;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, kSample) && m[1] == family &&
        m[2].str().find(label) != std::string::npos) {
      sum += std::stod(m[3]);
    }
  }
  return sum;
}

// One server for the suite (starting it loads four models). Admission control is off: these
// tests are about results and resources under switching, not about capacity, and a shared CI
// machine may be slow enough for the SLO check to refuse some of the 20 clients.
class Switching : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServeProcess({"--set", "serve.admission=false"}); }
  static void TearDownTestSuite() {
    server_->process().signal(SIGTERM);
    server_->process().wait(10s);
    delete server_;
  }
  void SetUp() override { ASSERT_NE(server_->port(), 0) << server_->process().output(); }

  static testing::ClientResponse post(const std::string& path, const json& body) {
    // A generous wait: twenty clients share two cores with model switches in between, and
    // sanitizer builds run every step several times slower.
    testing::HttpConnection connection(server_->port());
    connection.send_request("POST", path, body.dump(), {{"Content-Type", "application/json"}});
    auto response = connection.read_head(std::chrono::seconds(60));
    connection.read_body(response, std::chrono::seconds(60));
    return response;
  }
  static std::string metrics() {
    return testing::http_request(server_->port(), "GET", "/metrics").body;
  }
  // Polls /metrics (an external process: there is nothing to wait on) until `done` holds,
  // for at most `deadline`.
  static bool eventually(const std::function<bool(const std::string&)>& done,
                         std::chrono::milliseconds deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      if (done(metrics())) return true;
      std::this_thread::sleep_for(50ms);
    }
    return done(metrics());
  }
  // Text of a non-streamed answer (completion or chat).
  static std::string text_of(const json& body) {
    const auto& choice = body["choices"][0];
    return choice.contains("message") ? choice["message"]["content"] : choice["text"];
  }
  // Concatenated text of a streamed answer, read to [DONE].
  static std::string streamed_text(const std::string& path, json body) {
    body["stream"] = true;
    testing::HttpConnection connection(server_->port());
    connection.send_request("POST", path, body.dump());
    EXPECT_EQ(connection.read_head().status, 200);
    std::string text;
    std::optional<std::string> event;
    while ((event = connection.read_event()) && *event != "[DONE]") {
      const json chunk = json::parse(*event);
      const auto& choice = chunk["choices"][0];
      if (choice.contains("delta")) text += choice["delta"].value("content", "");
      if (choice.contains("text")) text += choice["text"].get<std::string>();
    }
    EXPECT_EQ(event, "[DONE]");
    return text;
  }

  static ServeProcess* server_;
};
ServeProcess* Switching::server_ = nullptr;

TEST_F(Switching, StartupLogComparesTheArenaWithTheModels) {
  const auto log = server_->process().output();
  for (const auto& model : kDemoModels) EXPECT_NE(log.find(model + " "), std::string::npos) << log;
  EXPECT_NE(log.find("device arena"), std::string::npos) << log;
  EXPECT_NE(log.find("a device holds 2 of the 4 models at a time"), std::string::npos) << log;
}

TEST_F(Switching, TwentyConcurrentClientsGetTheOutputsOfSequentialRuns) {
  // Reference: each request alone, one model after the other, so no request ever shares a
  // batch or sees a switch while it runs. The concurrent run then batches and switches models
  // between tokens; at temperature 0 every text must be the same.
  struct Job {
    std::string model, prompt;
  };
  std::vector<Job> jobs;
  for (int i = 0; i < 20; ++i) {
    jobs.push_back({kDemoModels[static_cast<size_t>(i) % kDemoModels.size()],
                    "Client " + std::to_string(i) + " asks:"});
  }
  auto complete = [](const Job& job) -> std::string {
    auto response = post("/v1/completions", {{"model", job.model}, {"prompt", job.prompt},
                                             {"max_tokens", 8}, {"temperature", 0}});
    EXPECT_EQ(response.status, 200) << response.body;
    return response.status == 200 ? text_of(json::parse(response.body)) : "";
  };
  const std::string ttft_count = "aegaeon_time_to_first_token_seconds_count";
  const double first_tokens_before = metric_sum(metrics(), ttft_count, R"(model_name="demo-l")");
  std::vector<std::string> reference(jobs.size());
  for (const auto& model : kDemoModels) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].model == model) reference[i] = complete(jobs[i]);
    }
  }
  const double switches_before = metric_sum(metrics(), "aegaeon_model_switches_total", R"(device="decode-0")");

  std::vector<std::string> concurrent(jobs.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < jobs.size(); ++i) {
    clients.emplace_back([&, i] { concurrent[i] = complete(jobs[i]); });
  }
  for (auto& client : clients) client.join();

  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(concurrent[i], reference[i]) << jobs[i].model << " / " << jobs[i].prompt;
  }
  EXPECT_NE(reference[0], reference[1]) << "different models should give different text";
  const double switches = metric_sum(metrics(), "aegaeon_model_switches_total", R"(device="decode-0")") - switches_before;
  EXPECT_GT(switches, 0) << "four models on one decode device must switch";
  EXPECT_EQ(metric_sum(metrics(), ttft_count, R"(model_name="demo-l")") - first_tokens_before, 10)
      << "5 reference + 5 concurrent requests of demo-l";
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

TEST_F(Switching, StreamingClientThatHangsUpFreesItsKv) {
  const std::string cancelled = R"(finished_reason="cancelled",model_name="demo-l")";
  const double cancelled_before = metric_sum(metrics(), "aegaeon_request_success_total", cancelled);
  {
    testing::HttpConnection connection(server_->port());
    connection.send_request("POST", "/v1/completions",
                            json{{"model", "demo-l"}, {"prompt", "Never ending"}, {"max_tokens", 2000},
                                 {"temperature", 0}, {"stream", true}}
                                .dump());
    ASSERT_EQ(connection.read_head().status, 200);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(connection.read_event().has_value());
    // Decoding: the request holds KV blocks on the decode device.
    EXPECT_GT(metric_sum(metrics(), "aegaeon_kv_cache_usage_perc", R"(device="decode-0")"), 0);
  }  // hang up mid-stream
  EXPECT_TRUE(eventually([&](const std::string& m) {
    return metric_sum(m, "aegaeon_request_success_total", cancelled) == cancelled_before + 1 &&
           metric_sum(m, "aegaeon_kv_cache_usage_perc") == 0;
  })) << metrics();
}

TEST_F(Switching, WaitingClientThatHangsUpIsCancelledToo) {
  // Without streaming nothing is written until the end, so the server must notice the hang-up
  // on its own; otherwise this request would run its 2000 tokens.
  const std::string cancelled = R"(finished_reason="cancelled",model_name="demo-m")";
  const double cancelled_before = metric_sum(metrics(), "aegaeon_request_success_total", cancelled);
  {
    testing::HttpConnection connection(server_->port());
    connection.send_request("POST", "/v1/completions",
                            json{{"model", "demo-m"}, {"prompt", "Patience"}, {"max_tokens", 2000},
                                 {"temperature", 0}}
                                .dump());
    ASSERT_TRUE(eventually([](const std::string& m) {
      return metric_sum(m, "aegaeon_kv_cache_usage_perc", R"(device="decode-0")") > 0;
    })) << "the request never reached decode";
  }  // hang up while the answer is being computed
  EXPECT_TRUE(eventually([&](const std::string& m) {
    return metric_sum(m, "aegaeon_request_success_total", cancelled) == cancelled_before + 1 &&
           metric_sum(m, "aegaeon_kv_cache_usage_perc") == 0;
  })) << metrics();
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
