// The admin API of a real `aegaeon serve` (admin.* keys): its own port and key, GET
// /admin/models, drain (new requests get 503 + Retry-After while an in-flight stream finishes)
// and undrain, pin and unpin, unload and load; and the request limits serve.max_prompt_tokens
// and serve.max_tokens_limit.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "tests/integration/serve_process.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::ServeProcess;

constexpr const char* kAdminKey = "adm-test-key";

// The arguments that open the admin port (port picked by the OS) with kAdminKey.
std::vector<std::string> admin_args(std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--set", "admin.enabled=true", "--set", "admin.port=0", "--set",
                                   std::string("admin.api_key=") + kAdminKey};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// The admin port `server` logged, or 0.
uint16_t admin_port_of(ServeProcess& server) {
  auto match = server.process().wait_for_line(std::regex(R"(admin API on http://[0-9.]+:([0-9]+))"), 60s);
  return match ? static_cast<uint16_t>(std::stoi((*match)[1])) : 0;
}

testing::ClientResponse admin_request(uint16_t port, const std::string& method, const std::string& path,
                                      const std::string& key = kAdminKey) {
  return testing::http_request(port, method, path, method == "POST" ? "{}" : "",
                               {{"Authorization", "Bearer " + key}});
}

// One server for the suite (starting it loads the four demo models), admin port picked by the OS.
class AdminApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess(
        admin_args({"--set", "serve.max_prompt_tokens=16", "--set", "serve.max_tokens_limit=1000"}));
    admin_port_ = admin_port_of(*server_);
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
    return admin_request(admin_port_, method, path, key);
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

// With one device of each role, nothing can be pinned: the other models would have none left.
TEST_F(AdminApi, PinNeedsADeviceToSpare) {
  auto refused = admin("POST", "/admin/models/demo-xs/pin");
  ASSERT_EQ(refused.status, 409) << refused.body;
  auto error = json::parse(refused.body)["error"];
  EXPECT_NE(error["message"].get<std::string>().find("serve.prefill_devices"), std::string::npos) << error;
  EXPECT_TRUE(admin_model("demo-xs")["pinned"].is_null());
  EXPECT_EQ(admin("POST", "/admin/models/demo-xs/unpin").status, 200) << "unpinning what is not pinned is a no-op";
  EXPECT_EQ(admin("POST", "/admin/models/no-such-model/pin").status, 404);
}

// Pin: the pinned model gets a prefill and a decode device of its own. Its requests run only
// there and no other model's do, so those devices load it once and never switch, while the other
// three models share (and switch on) the rest. Unpin gives the devices back.
TEST(AdminPin, APinnedModelKeepsDevicesOfItsOwn) {
  ServeProcess server(admin_args({"--set", "serve.prefill_devices=2", "--set", "serve.decode_devices=2"}));
  ASSERT_NE(server.port(), 0) << server.process().output();
  const uint16_t admin_port = admin_port_of(server);
  ASSERT_NE(admin_port, 0) << server.process().output();

  auto pinned = admin_request(admin_port, "POST", "/admin/models/demo-l/pin");
  ASSERT_EQ(pinned.status, 200) << pinned.body;
  const json pin = json::parse(pinned.body)["pinned"];
  ASSERT_TRUE(pin.is_object()) << pinned.body;
  const int prefill_device = pin["prefill_device"];
  const int decode_device = pin["decode_device"];
  EXPECT_EQ(json::parse(admin_request(admin_port, "POST", "/admin/models/demo-l/pin").body)["pinned"], pin)
      << "pinning again keeps the same devices";
  // Two devices per role: the pin took one of each, the last ones stay for the other models.
  auto refused = admin_request(admin_port, "POST", "/admin/models/demo-s/pin");
  EXPECT_EQ(refused.status, 409) << refused.body;

  // Three rounds over the four models, each model's request in its own client.
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> clients;
    for (const char* model : {"demo-xs", "demo-s", "demo-m", "demo-l"}) {
      clients.emplace_back([&server, model] {
        auto response = testing::post_json(server.port(), "/v1/completions",
                                           {{"model", model}, {"prompt", "Hello"}, {"max_tokens", 8}});
        EXPECT_EQ(response.status, 200) << model << ": " << response.body;
      });
    }
    for (auto& client : clients) client.join();
  }
  const std::string metrics = testing::http_request(server.port(), "GET", "/metrics").body;
  auto switches = [&](const std::string& device) {
    return testing::metric_sum(metrics, "aegaeon_model_switches_total", "device=\"" + device + "\"");
  };
  const std::string own_prefill = "prefill-" + std::to_string(prefill_device);
  const std::string own_decode = "decode-" + std::to_string(decode_device);
  const std::string shared_decode = "decode-" + std::to_string(1 - decode_device);
  EXPECT_LE(switches(own_prefill), 1) << "loads demo-l once\n" << metrics;
  EXPECT_LE(switches(own_decode), 1) << "loads demo-l once\n" << metrics;
  EXPECT_GE(switches(shared_decode), 3) << "three models take turns there\n" << metrics;
  // Admin actions are counted with the public API's routes, the model's name left out.
  const std::string pins = R"(",route="/admin/models/:name/pin")";
  EXPECT_EQ(testing::metric_sum(metrics, "aegaeon_http_requests_total", R"(code="200)" + pins), 2) << metrics;
  EXPECT_EQ(testing::metric_sum(metrics, "aegaeon_http_requests_total", R"(code="409)" + pins), 1) << metrics;

  auto unpinned = admin_request(admin_port, "POST", "/admin/models/demo-l/unpin");
  ASSERT_EQ(unpinned.status, 200) << unpinned.body;
  EXPECT_TRUE(json::parse(unpinned.body)["pinned"].is_null());
  auto other = admin_request(admin_port, "POST", "/admin/models/demo-s/pin");
  EXPECT_EQ(other.status, 200) << "the devices are free again: " << other.body;
  server.stop();
}

// Unload and load. An unloaded model's requests get 404, /v1/models leaves it out and its host
// memory goes (the gauge says 0) while the other model serves on; a load reads its folder again:
// new weights are served, the old ones give the old answer back bit for bit, a changed layout is
// refused (409) and the model stays unloaded. Unloading a model already unloaded, one with a
// request in flight, or pinning an unloaded one is refused (409).
TEST(AdminUnload, UnloadFreesAModelAndLoadReadsItsFolderAgain) {
  const auto dir = std::filesystem::temp_directory_path() / ("aegaeon-admin-unload-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto synth = [&](const std::string& name, int seed, int hidden = 64) {
    auto [code, output] = testing::run_command({AEGAEON_BINARY, "model", "synth", "--arch", "llama", "--seed",
                                                std::to_string(seed), "--hidden", std::to_string(hidden), "--out",
                                                (dir / name).string()});
    ASSERT_EQ(code, 0) << output;
  };
  synth("m1", 1);
  synth("m2", 2);
  ServeProcess server(admin_args({"--set", "serve.models_dir=" + dir.string()}));
  ASSERT_NE(server.port(), 0) << server.process().output();
  const uint16_t admin_port = admin_port_of(server);
  ASSERT_NE(admin_port, 0) << server.process().output();
  auto admin = [&](const std::string& model, const std::string& action) {
    return admin_request(admin_port, "POST", "/admin/models/" + model + "/" + action);
  };
  // Greedy tokens with their logprobs: other weights give other numbers even for equal text.
  auto answer = [&](const std::string& model) {
    auto response = testing::post_json(server.port(), "/v1/completions",
                                       {{"model", model}, {"prompt", "Hello"}, {"max_tokens", 12}, {"temperature", 0},
                                        {"logprobs", 1}});
    EXPECT_EQ(response.status, 200) << model << ": " << response.body;
    return response.status == 200 ? json::parse(response.body)["choices"][0]["logprobs"] : json();
  };
  auto weights_gauge = [&](const std::string& model) {
    return testing::metric_sum(testing::http_request(server.port(), "GET", "/metrics").body,
                               "aegaeon_model_host_weights_bytes", "model_name=\"" + model + "\"");
  };
  const json original = answer("m1");
  ASSERT_FALSE(original.is_null());
  const double weight_bytes = weights_gauge("m1");
  EXPECT_GT(weight_bytes, 0);

  auto unloaded = admin("m1", "unload");
  ASSERT_EQ(unloaded.status, 200) << unloaded.body;
  EXPECT_EQ(json::parse(unloaded.body)["state"], "unloaded");
  EXPECT_EQ(weights_gauge("m1"), 0) << "its host memory is freed";
  auto refused = testing::post_json(server.port(), "/v1/completions", {{"model", "m1"}, {"prompt", "Hello"}});
  EXPECT_EQ(refused.status, 404) << refused.body;
  EXPECT_NE(refused.body.find("unloaded"), std::string::npos) << refused.body;
  const std::string listed = testing::http_request(server.port(), "GET", "/v1/models").body;
  EXPECT_EQ(listed.find("\"m1\""), std::string::npos) << listed;
  EXPECT_NE(listed.find("\"m2\""), std::string::npos) << listed;
  EXPECT_FALSE(answer("m2").is_null()) << "the other model serves on";
  EXPECT_EQ(admin("m1", "unload").status, 409) << "unloaded already";
  auto pin = admin("m1", "pin");
  EXPECT_EQ(pin.status, 409) << pin.body;
  EXPECT_NE(pin.body.find("load it"), std::string::npos) << pin.body;

  // New weights of the same shape: served after the load.
  synth("m1", 7);
  auto loaded = admin("m1", "load");
  ASSERT_EQ(loaded.status, 200) << loaded.body;
  EXPECT_EQ(json::parse(loaded.body)["state"], "cached");
  EXPECT_EQ(weights_gauge("m1"), weight_bytes);
  EXPECT_NE(answer("m1"), original) << "seed 7's weights answer";
  EXPECT_EQ(admin("m1", "load").status, 409) << "loaded already";

  // The first weights again: the first answer again.
  ASSERT_EQ(admin("m1", "unload").status, 200);
  synth("m1", 1);
  ASSERT_EQ(admin("m1", "load").status, 200);
  EXPECT_EQ(answer("m1"), original);

  // Another shape cannot be loaded in place.
  ASSERT_EQ(admin("m1", "unload").status, 200);
  synth("m1", 1, 128);
  auto reshaped = admin("m1", "load");
  EXPECT_EQ(reshaped.status, 409) << reshaped.body;
  EXPECT_NE(reshaped.body.find("changed since start"), std::string::npos) << reshaped.body;
  const json models = json::parse(admin_request(admin_port, "GET", "/admin/models").body)["data"];
  for (const auto& model : models) {
    if (model["id"] == "m1") {
      EXPECT_EQ(model["state"], "unloaded") << model;
    }
  }
  std::filesystem::remove(dir / "m1" / "model.safetensors");
  auto missing = admin("m1", "load");
  EXPECT_EQ(missing.status, 409) << missing.body;
  EXPECT_NE(missing.body.find("model.safetensors"), std::string::npos) << missing.body;
  synth("m1", 1);
  ASSERT_EQ(admin("m1", "load").status, 200);
  EXPECT_EQ(answer("m1"), original);

  // A model with a request in flight stays loaded.
  testing::HttpConnection stream(server.port());
  stream.send_request("POST", "/v1/completions",
                      json{{"model", "m2"}, {"prompt", "Hello"}, {"max_tokens", 400}, {"temperature", 0},
                           {"stream", true}}
                          .dump());
  ASSERT_EQ(stream.read_head(60s).status, 200);
  ASSERT_TRUE(stream.read_event(60s).has_value());
  auto busy = admin("m2", "unload");
  EXPECT_EQ(busy.status, 409) << busy.body;
  EXPECT_NE(busy.body.find("drain it first"), std::string::npos) << busy.body;
  std::optional<std::string> event;
  for (int i = 0; i < 1000 && (event = stream.read_event(60s)) && *event != "[DONE]"; ++i) {
  }
  EXPECT_EQ(event, "[DONE]") << "the stream finished";
  EXPECT_FALSE(answer("m2").is_null());

  const std::string metrics = testing::http_request(server.port(), "GET", "/metrics").body;
  EXPECT_EQ(testing::metric_sum(metrics, "aegaeon_http_requests_total",
                                R"(code="200",route="/admin/models/:name/unload")"), 3) << metrics;
  server.stop();
  std::filesystem::remove_all(dir);
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
