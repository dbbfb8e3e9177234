// A cluster spread over "hosts": network namespaces made by deploy/netns/hosts.sh, each with its
// own address on a private bridge. The controller runs in h1 (cluster RPC on h1's veth address,
// HTTP on h1's loopback), workers in h2 and h3 join over the veth links, and h4 plays a bad peer.
// Every cluster connection is mutual TLS (certificates made by the openssl CLI).
// The HTTP client is curl run inside h1 (`ip netns exec`), so the test process itself never
// changes namespace. Covered: serving across hosts, a partition (h2's link goes down) while
// streams run, healing it, and refused peers (another CA's certificate, a wrong token); every stream is checked token for token against
// the no-fault output at temperature 0. Needs root, `ip netns` and curl (CI has all three);
// skips with the reason otherwise.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

#include "tests/cluster/cluster_process.hpp"
#include "tests/cluster/completion.hpp"
#include "tests/support/test_certificates.hpp"

namespace aegaeon {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::Completion;
using testing::ControllerProcess;
using testing::Launch;
using testing::request_body;
using testing::WorkerProcess;

constexpr int kHosts = 4;
constexpr int kControllerHost = 1;
constexpr int kBadPeerHost = 4;
// A partition is detected within seconds; the timeout still spans ten heartbeats, which a
// loaded machine (or ASan) does not miss by accident.
constexpr const char* kHeartbeatIntervalMs = "250";
constexpr const char* kHeartbeatTimeoutMs = "2500";
// Every curl call ends by then, whatever the machine's load.
constexpr const char* kCurlMaxTimeS = "150";
constexpr auto kCurlDeadline = 160s;

// Runs deploy/netns/hosts.sh; returns {exit code, output}.
std::pair<int, std::string> hosts_sh(std::vector<std::string> args) {
  args.insert(args.begin(), AEGAEON_SOURCE_DIR "/deploy/netns/hosts.sh");
  return testing::run_command(args, {}, 60s);
}

// Why these tests cannot run here, or nullopt.
std::optional<std::string> unavailable() {
  if (geteuid() != 0) return "needs root to create network namespaces (CI runs as root)";
  if (!testing::find_on_path("ip")) return "needs ip (iproute2)";
  if (!testing::find_on_path("curl")) return "needs curl (scripts/install-deps installs it)";
  auto [code, output] = hosts_sh({"check"});
  if (code != 0) return "ip netns is unavailable here: " + output;
  return std::nullopt;
}

// The hosts of one test (prefix aeg-PID, so concurrent runs never collide), deleted with
// whatever still runs in them when this goes, whatever the test's outcome.
class Hosts {
 public:
  Hosts() : prefix_("aeg-" + std::to_string(getpid())) {
    hosts_sh({"prune"});  // sets a killed run left behind
    std::tie(code_, output_) = hosts_sh({"up", "--prefix", prefix_, "--hosts", std::to_string(kHosts)});
  }
  ~Hosts() { hosts_sh({"down", "--prefix", prefix_}); }
  Hosts(const Hosts&) = delete;
  Hosts& operator=(const Hosts&) = delete;

  [[nodiscard]] bool up() const { return code_ == 0; }
  [[nodiscard]] const std::string& output() const { return output_; }
  // hosts.sh's default subnet: host I is 10.213.0.I.
  static std::string address(int host) { return "10.213.0." + std::to_string(host); }
  // The command prefix that runs a program on `host`.
  [[nodiscard]] std::vector<std::string> exec_in(int host) const {
    return {"ip", "netns", "exec", prefix_ + "-h" + std::to_string(host)};
  }
  // Takes `host`'s link down (a partition: connections stay open, packets are lost) or up.
  void cut(int host) const { EXPECT_EQ(hosts_sh({"cut", "--prefix", prefix_, std::to_string(host)}).first, 0); }
  void heal(int host) const { EXPECT_EQ(hosts_sh({"heal", "--prefix", prefix_, std::to_string(host)}).first, 0); }

 private:
  std::string prefix_;
  int code_ = -1;
  std::string output_;
};

// One streaming completion through curl on the controller's host.
class Stream {
 public:
  explicit Stream(std::vector<std::string> curl_argv) : curl_(std::move(curl_argv)) {}
  // Waits for the first token.
  bool first_token() { return curl_.wait_for_line(std::regex(R"(^data: \{.*"text")"), 60s).has_value(); }
  // What curl printed so far (for failure messages).
  std::string output() { return curl_.output(); }
  // Waits for the end of the stream and assembles what it carried.
  Completion finish() {
    auto code = curl_.wait(kCurlDeadline);
    EXPECT_EQ(code, std::optional<int>(0)) << curl_.output();
    Completion result;
    std::istringstream lines(curl_.output());
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data: ", 0) != 0 || line == "data: [DONE]") continue;
      auto chunk = json::parse(line.substr(6), nullptr, false);
      if (chunk.is_discarded() || chunk.contains("error")) {
        ADD_FAILURE() << "bad event: " << line;
        continue;
      }
      testing::add_chunk(result, chunk);
    }
    return result;
  }

 private:
  testing::ChildProcess curl_;
};

struct Case {
  std::string model;
  std::string prompt;
};

// Long enough that generations are still running when a fault lands; under ASan every step is
// several times slower, so fewer tokens keep the same margin.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kMaxTokens = 64;
#else
constexpr int kMaxTokens = 256;
#endif

std::vector<Case> cases_for(const std::vector<std::string>& names) {
  return {{names[0], "Once upon a time"}, {names[1], "The cluster keeps serving"},
          {names[names.size() - 1], "Tokens flow between hosts"}, {names[0], "Hello there"}};
}

// --set flags for the cluster's mutual TLS with `files` as this process's certificate.
std::vector<std::string> cluster_tls(const std::string& ca, const testing::CertificateFiles& files) {
  return {"--set", "cluster.tls_ca_file=" + ca, "--set", "cluster.tls_cert_file=" + files.cert,
          "--set", "cluster.tls_key_file=" + files.key};
}

class NetnsCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = unavailable()) GTEST_SKIP() << *why;
    auto certs = testing::TestCertificates::make(std::filesystem::temp_directory_path() /
                                                 ("aegaeon-netns-tls-" + std::to_string(getpid())));
    ASSERT_TRUE(certs.ok()) << certs.error().message;
    certs_ = std::move(*certs);
    hosts_ = std::make_unique<Hosts>();
    ASSERT_TRUE(hosts_->up()) << hosts_->output();
    Launch controller{hosts_->exec_in(kControllerHost),
                      {"--heartbeat-interval-ms", kHeartbeatIntervalMs, "--heartbeat-timeout-ms", kHeartbeatTimeoutMs}};
    const auto tls = cluster_tls(certs_.ca, certs_.server);
    controller.extra_args.insert(controller.extra_args.end(), tls.begin(), tls.end());
    controller_ = std::make_unique<ControllerProcess>(Hosts::address(kControllerHost) + ":0", controller);
    ASSERT_NE(controller_->http_port(), 0) << controller_->process().output();
    for (int host : {2, 3}) {
      workers_.push_back(start_worker(host, "w" + std::to_string(host), testing::kClusterToken));
    }
    for (auto& worker : workers_) {
      node_ids_.push_back(worker->wait_joined());
      ASSERT_NE(node_ids_.back(), 0u) << worker->process().output();
    }
  }

  // A worker on `host`; its certificate is the cluster's client one unless `certificate` is set.
  std::unique_ptr<WorkerProcess> start_worker(int host, const std::string& name, const std::string& token,
                                              const testing::CertificateFiles* certificate = nullptr) {
    std::string join = Hosts::address(kControllerHost) + ":" + std::to_string(controller_->cluster_port());
    Launch launch{hosts_->exec_in(host), {"--rejoin-backoff-max-ms", "500"}};
    const auto tls = cluster_tls(certs_.ca, certificate != nullptr ? *certificate : certs_.client);
    launch.extra_args.insert(launch.extra_args.end(), tls.begin(), tls.end());
    return std::make_unique<WorkerProcess>(join, name, token, launch);
  }

  // curl on the controller's host against its HTTP API; fails (exit code 22) on HTTP errors.
  std::vector<std::string> curl(const std::string& path, const std::string& body = {}) const {
    auto argv = hosts_->exec_in(kControllerHost);
    argv.insert(argv.end(), {"curl", "-sSN", "--fail-with-body", "--max-time", kCurlMaxTimeS});
    if (!body.empty()) argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    argv.push_back("http://127.0.0.1:" + std::to_string(controller_->http_port()) + path);
    return argv;
  }
  std::string get(const std::string& path) const {
    auto [code, output] = testing::run_command(curl(path), {}, kCurlDeadline);
    EXPECT_EQ(code, 0) << path << ": " << output;
    return output;
  }
  Completion complete(const json& body) const {
    auto [code, output] = testing::run_command(curl("/v1/completions", body.dump()), {}, kCurlDeadline);
    EXPECT_EQ(code, 0) << output;
    auto parsed = json::parse(output, nullptr, false);
    if (code != 0 || parsed.is_discarded()) return {};
    return testing::parse_completion(parsed);
  }
  // The node ids /health lists, in its order.
  std::vector<uint64_t> live_workers() const {
    std::vector<uint64_t> ids;
    auto health = json::parse(get("/health"), nullptr, false);
    if (health.is_discarded()) return ids;
    for (const auto& worker : health["workers"]) ids.push_back(worker["node_id"]);
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  // The sum of every series of a counter in /metrics.
  double metric(const std::string& name) const {
    std::istringstream lines(get("/metrics"));
    double sum = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
      if (line[name.size()] != ' ' && line[name.size()] != '{') continue;
      sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  }
  // What each case generates without faults (non-streaming, all at once).
  std::vector<Completion> no_fault_run(const std::vector<Case>& cases) const {
    std::vector<std::future<Completion>> pending;
    for (const auto& c : cases) {
      pending.push_back(std::async(std::launch::async, [this, body = request_body(c.model, c.prompt, kMaxTokens, false)] {
        return complete(body);
      }));
    }
    std::vector<Completion> results;
    for (auto& p : pending) results.push_back(p.get());
    return results;
  }
  // The same cases, streaming, all started at once.
  std::vector<std::unique_ptr<Stream>> start_streams(const std::vector<Case>& cases) const {
    std::vector<std::unique_ptr<Stream>> streams;
    for (const auto& c : cases) {
      streams.push_back(
          std::make_unique<Stream>(curl("/v1/completions", request_body(c.model, c.prompt, kMaxTokens, true).dump())));
    }
    return streams;
  }
  std::vector<std::string> models() const {
    std::vector<std::string> names;
    auto list = json::parse(get("/v1/models"), nullptr, false);
    if (list.is_discarded()) return names;
    for (const auto& model : list["data"]) names.push_back(model["id"]);
    return names;
  }

  // Members go in reverse order: processes first, then the hosts they ran in.
  std::unique_ptr<Hosts> hosts_;
  testing::TestCertificates certs_;
  std::unique_ptr<ControllerProcess> controller_;
  std::vector<std::unique_ptr<WorkerProcess>> workers_;
  std::vector<uint64_t> node_ids_;
};

void expect_same(const std::vector<Completion>& got, const std::vector<Completion>& reference,
                 const std::vector<Case>& cases) {
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_FALSE(reference[i].text.empty()) << "case " << i;
    EXPECT_EQ(got[i].text, reference[i].text) << "stream " << i << " (" << cases[i].model << ")";
    EXPECT_EQ(got[i].completion_tokens, reference[i].completion_tokens) << "stream " << i;
    EXPECT_EQ(got[i].finish_reason, reference[i].finish_reason) << "stream " << i;
  }
}

TEST_F(NetnsCluster, WorkersOnTwoHostsServeEveryStreamExactly) {
  EXPECT_EQ(live_workers().size(), 2u);
  auto names = models();
  ASSERT_GE(names.size(), 2u);
  auto cases = cases_for(names);
  auto reference = no_fault_run(cases);

  auto streams = start_streams(cases);
  std::vector<Completion> got;
  for (auto& stream : streams) got.push_back(stream->finish());
  expect_same(got, reference, cases);
}

TEST_F(NetnsCluster, PartitionMovesStreamsAndHealedWorkerRejoins) {
  auto names = models();
  ASSERT_GE(names.size(), 2u);
  auto cases = cases_for(names);
  auto reference = no_fault_run(cases);

  // (b) Partition: h2's link goes down while the streams run (as soon as the first one has a
  // token, so generations are in flight on both workers). Its TCP connection does not break:
  // only the missed heartbeats tell the controller.
  auto streams = start_streams(cases);
  ASSERT_TRUE(streams.front()->first_token()) << streams.front()->output() << controller_->process().output();
  hosts_->cut(2);
  std::string left = "node " + std::to_string(node_ids_[0]) + " left: sent no heartbeat";
  EXPECT_TRUE(controller_->process().wait_for_line(std::regex(left), 60s)) << controller_->process().output();
  std::vector<Completion> got;
  for (auto& stream : streams) got.push_back(stream->finish());
  expect_same(got, reference, cases);
  // The partition hit generations in flight (otherwise this proves nothing), and it shows.
  EXPECT_TRUE(controller_->process().wait_for_line(std::regex("re-prefilled on node " + std::to_string(node_ids_[1])), 10s))
      << controller_->process().output();
  EXPECT_EQ(live_workers(), std::vector<uint64_t>{node_ids_[1]});
  EXPECT_GE(metric(R"(aegaeon_cluster_worker_departures_total{reason="heartbeat_timeout"})"), 1.0)
      << "a partition keeps the connection: only the heartbeats tell";
  EXPECT_GE(metric("aegaeon_cluster_resubmissions_total"), 1.0);

  // (c) Heal: the worker re-joins under a new node id...
  hosts_->heal(2);
  uint64_t rejoined = workers_[0]->wait_joined(60s);
  ASSERT_NE(rejoined, 0u) << workers_[0]->process().output();
  EXPECT_EQ(live_workers(), (std::vector<uint64_t>{node_ids_[1], rejoined}));
  // ...and gets work again: with h3 cut off in turn, it alone serves, with the same tokens.
  hosts_->cut(3);
  std::string other_left = "node " + std::to_string(node_ids_[1]) + " left: sent no heartbeat";
  ASSERT_TRUE(controller_->process().wait_for_line(std::regex(other_left), 60s)) << controller_->process().output();
  EXPECT_EQ(live_workers(), std::vector<uint64_t>{rejoined});
  Completion after = complete(request_body(cases[1].model, cases[1].prompt, kMaxTokens, false));
  EXPECT_EQ(after.text, reference[1].text);
  EXPECT_EQ(after.completion_tokens, reference[1].completion_tokens);
}

TEST_F(NetnsCluster, RefusesABadPeerOnAnotherHost) {
  std::string cluster = Hosts::address(kControllerHost) + "/" + std::to_string(controller_->cluster_port());
  // Garbage on the cluster port from h4.
  auto garbage = hosts_->exec_in(kBadPeerHost);
  garbage.insert(garbage.end(), {"bash", "-c", "printf '\\0\\0\\0garbage that is no capnp message\\377\\377' > /dev/tcp/" + cluster});
  EXPECT_EQ(testing::run_command(garbage, {}, 30s).first, 0);
  // A worker on h4 with the wrong secret is refused and says why.
  auto intruder = start_worker(kBadPeerHost, "intruder", "wrong-token");
  auto code = intruder->process().wait(60s);
  ASSERT_TRUE(code.has_value()) << intruder->process().output();
  EXPECT_EQ(*code, 2) << intruder->process().output();
  EXPECT_NE(intruder->process().output().find("cluster token rejected"), std::string::npos)
      << intruder->process().output();
  // A worker on h4 whose certificate another CA signed never gets past the handshake; the
  // garbage above was no TLS either. Both show in the controller's log and /metrics.
  auto stranger = start_worker(kBadPeerHost, "stranger", testing::kClusterToken, &certs_.stranger);
  auto refusals = [this](const std::string& reason) {
    return get("/metrics").find(R"(aegaeon_tls_handshake_failures_total{listener="cluster",reason=")" + reason +
                                "\"}") != std::string::npos;
  };
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!refusals("untrusted_certificate") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(refusals("untrusted_certificate")) << get("/metrics");
  EXPECT_TRUE(refusals("not_tls")) << get("/metrics");
  EXPECT_TRUE(controller_->process().wait_for_line(std::regex("its certificate is not signed by the trusted CA"), 10s))
      << controller_->process().output();
  EXPECT_EQ(stranger->wait_joined(1s), 0u) << stranger->process().output();
  stranger.reset();

  // The cluster is unharmed.
  auto expected = node_ids_;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(live_workers(), expected);
  EXPECT_GE(complete(request_body(models().front(), "Still fine", 4, false)).completion_tokens, 1);
}

}  // namespace
}  // namespace aegaeon
