// A real `aegaeon serve` child process on an ephemeral port, for the integration suites, and
// what those suites ask of it over real HTTP: JSON posts, streamed text, /metrics samples.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/metrics_scrape.hpp"

namespace aegaeon::testing {

/// The embedded default's models, smallest first (cmd/demo_models.cpp).
inline const std::vector<std::string> kDemoModels = {"demo-xs", "demo-s", "demo-m", "demo-l"};

/// Where `aegaeon serve` synthesized demo model `name` for the test servers (the folder layout
/// of cmd/demo_models.cpp under serve.data_dir), for commands that take a model folder.
inline std::string demo_model_dir(const std::string& name) {
  return std::string(AEGAEON_TEST_DATA_DIR) + "/demo-models-v3/" + name;
}

/// Starts `aegaeon serve --port 0` (plus `extra` arguments) and waits for its address.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> extra = {}) {
    // The demo models are synthesized once per build tree and shared by every test process.
    std::vector<std::string> argv = {AEGAEON_BINARY, "serve", "--port", "0", "--set",
                                     "serve.data_dir=" AEGAEON_TEST_DATA_DIR};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<ChildProcess>(argv);
    auto match = process_->wait_for_line(std::regex(R"(serving on https?://[0-9.]+:([0-9]+))"), std::chrono::seconds(60));
    if (match) port_ = static_cast<uint16_t>(std::stoi((*match)[1]));
  }
  [[nodiscard]] uint16_t port() const { return port_; }
  ChildProcess& process() { return *process_; }
  /// Graceful shutdown (SIGTERM, then up to 10 s to drain); the destructor SIGKILLs a laggard.
  void stop() {
    process_->signal(SIGTERM);
    process_->wait(std::chrono::seconds(10));
  }

 private:
  std::unique_ptr<ChildProcess> process_;
  uint16_t port_ = 0;
};

// A generous wait for one answer: twenty clients share two cores with model switches in
// between, and sanitizer builds run every step several times slower.
inline constexpr std::chrono::seconds kAnswerTimeout{60};

/// POSTs `body` as JSON and reads the whole answer.
inline ClientResponse post_json(uint16_t port, const std::string& path, const nlohmann::json& body) {
  HttpConnection connection(port);
  connection.send_request("POST", path, body.dump(), {{"Content-Type", "application/json"}});
  auto response = connection.read_head(kAnswerTimeout);
  connection.read_body(response, kAnswerTimeout);
  return response;
}

/// Text of a non-streamed answer (completion or chat).
inline std::string text_of(const nlohmann::json& body) {
  const auto& choice = body["choices"][0];
  return choice.contains("message") ? choice["message"]["content"] : choice["text"];
}

/// Concatenated text of the streamed answer to `body` (completion or chat), read to [DONE].
inline std::string streamed_text(uint16_t port, const std::string& path, nlohmann::json body) {
  body["stream"] = true;
  HttpConnection connection(port);
  connection.send_request("POST", path, body.dump());
  EXPECT_EQ(connection.read_head(kAnswerTimeout).status, 200);
  std::string text;
  std::optional<std::string> event;
  while ((event = connection.read_event(kAnswerTimeout)) && *event != "[DONE]") {
    const nlohmann::json chunk = nlohmann::json::parse(*event);
    const auto& choice = chunk["choices"][0];
    if (choice.contains("delta")) text += choice["delta"].value("content", "");
    if (choice.contains("text")) text += choice["text"].get<std::string>();
  }
  EXPECT_EQ(event, "[DONE]");
  return text;
}

/// Sum of every sample of `family` in a /metrics text whose labels contain `label`
/// (e.g. R"(device="decode-0")").
inline double metric_sum(const std::string& metrics, const std::string& family, const std::string& label = {}) {
  return MetricsSnapshot::parse(metrics).sum(family, label);
}

/// A suite sharing one server, started once (it loads four models) with `Suite::server_args()`
/// and stopped gracefully after the last test: `class Foo : public SharedServeSuite<Foo>`.
template <typename Suite>
class SharedServeSuite : public ::testing::Test {
 public:
  static void SetUpTestSuite() { server_ = std::make_unique<ServeProcess>(Suite::server_args()); }
  static void TearDownTestSuite() {
    server_->stop();
    server_.reset();
  }

 protected:
  void SetUp() override { ASSERT_NE(server_->port(), 0) << server_->process().output(); }

  static ServeProcess& server() { return *server_; }
  static ClientResponse post(const std::string& path, const nlohmann::json& body) {
    return post_json(server_->port(), path, body);
  }
  static std::string streamed_text(const std::string& path, const nlohmann::json& body) {
    return testing::streamed_text(server_->port(), path, body);
  }
  static std::string metrics() { return http_request(server_->port(), "GET", "/metrics").body; }
  // Polls /metrics (an external process: there is nothing to wait on) until `done` holds,
  // for at most `deadline`.
  static bool eventually(const std::function<bool(const std::string&)>& done,
                         std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      if (done(metrics())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return done(metrics());
  }

 private:
  inline static std::unique_ptr<ServeProcess> server_;
};

}  // namespace aegaeon::testing
