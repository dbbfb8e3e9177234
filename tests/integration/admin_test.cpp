// The admin API of a real `aegaeon serve` (admin.* keys): its own port and key, GET
// /admin/models, drain (new requests get 503 + Retry-After while an in-flight stream finishes)
// and undrain; and the request limits serve.max_prompt_tokens and serve.max_tokens_limit.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include "tests/integration/serve_process.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::ServeProcess;

constexpr const char* kAdminKey = "adm-test-key";

// One server for the suite (starting it loads the four demo models), admin port picked by the OS.
class AdminApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess({"--set", "admin.enabled=true", "--set", "admin.port=0", "--set",
                                std::string("admin.api_key=") + kAdminKey, "--set",
                                "serve.max_prompt_tokens=16", "--set", "serve.max_tokens_limit=1000"});
    auto match = server_->process().wait_for_line(std::regex(R"(admin API on http://[0-9.]+:([0-9]+))"), 60s);
    if (match) admin_port_ = static_cast<uint16_t>(std::stoi((*match)[1]));
  }
  static void TearDownTestSuite() {
    server_->process().signal(SIGTERM);
    server_->process().wait(10s);
    delete server_;
  }
  void SetUp() override {
    ASSERT_NE(server_->port(), 0) << server_->process().output();
    ASSERT_NE(admin_port_, 0) << server_->process().output();
  }

  static testing::ClientResponse admin(const std::string& method, const std::string& path,
                                       const std::string& key = kAdminKey) {
    return testing::http_request(admin_port_, method, path, method == "POST" ? "{}" : "",
                                 {{"Authorization", "Bearer " + key}});
  }
  // The model's entry in GET /admin/models.
  static json admin_model(const std::string& name) {
    auto response = admin("GET", "/admin/models");
    EXPECT_EQ(response.status, 200) << response.body;
    const json body = json::parse(response.body);
    for (const auto& model : body["data"]) {
      if (model["id"] == name) return model;
    }
    ADD_FAILURE() << name << " missing from " << response.body;
    return json::object();
  }
  static testing::ClientResponse complete(const std::string& model, int max_tokens) {
    return testing::http_request(server_->port(), "POST", "/v1/completions",
                                 json{{"model", model}, {"prompt", "Hello"}, {"max_tokens", max_tokens},
                                      {"temperature", 0}}.dump(),
                                 {{"Content-Type", "application/json"}});
  }

  static ServeProcess* server_;
  static uint16_t admin_port_;
};
ServeProcess* AdminApi::server_ = nullptr;
uint16_t AdminApi::admin_port_ = 0;

TEST_F(AdminApi, NeedsItsOwnKey) {
  auto none = testing::http_request(admin_port_, "GET", "/admin/models");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(json::parse(none.body)["error"]["type"], "authentication_error");
  EXPECT_EQ(admin("GET", "/admin/models", "wrong").status, 401);
  EXPECT_EQ(admin("POST", "/admin/models/demo-xs/drain", "wrong").status, 401)
      << "a wrong key changes nothing";
  EXPECT_FALSE(admin_model("demo-xs")["draining"].get<bool>());
}

TEST_F(AdminApi, ListsEveryModelWithItsState) {
  auto response = admin("GET", "/admin/models");
  ASSERT_EQ(response.status, 200) << response.body;
  auto data = json::parse(response.body)["data"];
  ASSERT_EQ(data.size(), 4u);
  for (const auto& model : data) {
    EXPECT_TRUE(model["state"] == "resident" || model["state"] == "cached") << model;
    EXPECT_EQ(model["draining"], false) << model;
    EXPECT_GE(model["requests_running"].get<int>(), 0) << model;
    EXPECT_GE(model["requests_waiting"].get<int>(), 0) << model;
  }
}

TEST_F(AdminApi, IsNotServedOnThePublicPort) {
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/admin/models"}, {"POST", "/admin/models/demo-xs/drain"}}) {
    auto response = testing::http_request(server_->port(), method, path, method == "POST" ? "{}" : "",
                                          {{"Authorization", std::string("Bearer ") + kAdminKey}});
    EXPECT_EQ(response.status, 404) << method << " " << path;
  }
  EXPECT_EQ(testing::http_request(admin_port_, "GET", "/v1/models").status, 404)
      << "and the public API is not served on the admin port";
}

TEST_F(AdminApi, UnknownModelOrActionIs404) {
  auto unknown = admin("POST", "/admin/models/no-such-model/drain");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["error"]["code"], "model_not_found");
  EXPECT_EQ(admin("POST", "/admin/models/demo-xs/explode").status, 404);
}

// Drain: the stream in flight finishes; new requests for that model get 503 with Retry-After,
// other models are unaffected; undrain serves it again.
TEST_F(AdminApi, DrainRefusesNewRequestsWhileInFlightOnesFinish) {
  testing::HttpConnection stream(server_->port());
  // 256 tokens of the largest model: still generating long after the drain below is answered.
  // Greedy, so that it runs to max_tokens every time (sampled, it sometimes drew EOS early).
  stream.send_request("POST", "/v1/completions",
                      json{{"model", "demo-l"}, {"prompt", "Hello"}, {"max_tokens", 256}, {"temperature", 0},
                           {"stream", true}}
                          .dump());
  ASSERT_EQ(stream.read_head(60s).status, 200);
  ASSERT_TRUE(stream.read_event(60s).has_value());

  auto drained = admin("POST", "/admin/models/demo-l/drain");
  ASSERT_EQ(drained.status, 200) << drained.body;
  auto state = json::parse(drained.body);
  EXPECT_EQ(state["id"], "demo-l");
  EXPECT_EQ(state["draining"], true);
  EXPECT_EQ(state["requests_running"].get<int>() + state["requests_waiting"].get<int>(), 1) << state;

  auto refused = complete("demo-l", 2);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_TRUE(refused.header("retry-after").has_value());
  auto error = json::parse(refused.body)["error"];
  EXPECT_NE(error["message"].get<std::string>().find("draining"), std::string::npos) << error;
  EXPECT_EQ(error["param"], "model");
  EXPECT_EQ(complete("demo-xs", 2).status, 200) << "other models keep serving";

  std::optional<std::string> event;
  std::string finish_reason;
  for (int i = 0; i < 1000 && (event = stream.read_event(60s)) && *event != "[DONE]"; ++i) {
    auto chunk = json::parse(*event);
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish_reason = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(event, "[DONE]");
  EXPECT_EQ(finish_reason, "length") << "the in-flight stream ran to its max_tokens";
  auto after = admin_model("demo-l");
  EXPECT_EQ(after["requests_running"], 0) << after;
  EXPECT_EQ(after["draining"], true) << after;

  auto undrained = admin("POST", "/admin/models/demo-l/undrain");
  ASSERT_EQ(undrained.status, 200) << undrained.body;
  EXPECT_EQ(json::parse(undrained.body)["draining"], false);
  EXPECT_EQ(complete("demo-l", 2).status, 200);
}

TEST_F(AdminApi, LimitsNameTheField) {
  auto above = complete("demo-xs", 1001);
  ASSERT_EQ(above.status, 400) << above.body;
  EXPECT_EQ(json::parse(above.body)["error"]["param"], "max_tokens");
  auto chat = testing::http_request(
      server_->port(), "POST", "/v1/chat/completions",
      json{{"model", "demo-s"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_completion_tokens", 1001}}
          .dump());
  ASSERT_EQ(chat.status, 400) << chat.body;
  EXPECT_EQ(json::parse(chat.body)["error"]["param"], "max_completion_tokens");

  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "hello world ";
  auto prompt = testing::http_request(server_->port(), "POST", "/v1/completions",
                                      json{{"model", "demo-xs"}, {"prompt", long_prompt}, {"max_tokens", 1}}.dump());
  ASSERT_EQ(prompt.status, 400) << prompt.body;
  auto error = json::parse(prompt.body)["error"];
  EXPECT_EQ(error["param"], "prompt");
  EXPECT_NE(error["message"].get<std::string>().find("serve.max_prompt_tokens"), std::string::npos) << error;
}

// An admin port without a key is refused at start, naming the key to set.
TEST(AdminConfig, EnabledWithoutKeyRefusesToStart) {
  auto [code, output] = testing::run_command(
      {AEGAEON_BINARY, "serve", "--port", "0", "--set", "admin.enabled=true", "--set",
       "serve.data_dir=" AEGAEON_TEST_DATA_DIR});
  EXPECT_EQ(code, 2) << output;
  EXPECT_NE(output.find("admin.api_key"), std::string::npos) << output;
}

}  // namespace
}  // namespace aegaeon
