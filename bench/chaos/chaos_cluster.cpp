#include "bench/chaos/chaos_cluster.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_certificates.hpp"

extern char** environ;

namespace aegaeon::bench::chaos {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kClusterToken = "chaos-cluster-secret";
// On hosts each process has a network namespace of its own, so fixed ports never collide.
constexpr uint16_t kHostsClusterPort = 7000;
constexpr uint16_t kHostsHttpPort = 8000;
constexpr int kControllerHost = 1;

// hosts.sh's default subnet: host I is 10.213.0.I.
std::string host_address(int host) { return "10.213.0." + std::to_string(host); }
int host_of_worker(int worker) { return worker + 2; }

std::pair<int, std::string> hosts_sh(std::vector<std::string> args) {
  args.insert(args.begin(), AEGAEON_SOURCE_DIR "/deploy/netns/hosts.sh");
  return testing::run_command(args, {}, 60s);
}

// Why hosts cannot be made here, or nullopt.
std::optional<std::string> hosts_unavailable() {
  if (geteuid() != 0) return "not root";
  if (!testing::find_on_path("ip")) return "no ip (iproute2)";
  if (auto [code, output] = hosts_sh({"check"}); code != 0) return output;
  return std::nullopt;
}

// A loopback port nobody listens on now (the controller binds it a moment later; another
// process taking it in between makes the start fail loudly, not silently).
uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Moves the calling thread (and every thread it starts later) into network namespace `name`;
// returns a descriptor of the namespace it left, for leave_network_namespace().
int enter_network_namespace(const std::string& name) {
  const int left = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
    if (fd >= 0) ::close(fd);
    if (left >= 0) ::close(left);
    throw std::runtime_error("cannot enter network namespace " + name);
  }
  ::close(fd);
  return left;
}

// Back to the namespace enter_network_namespace() left (`hosts.sh down` kills every process in
// the hosts' namespaces, and this one counts as in h1 while its main thread is there).
void leave_network_namespace(int left) {
  if (left < 0) return;
  if (::setns(left, CLONE_NEWNET) != 0) std::perror("bench_chaos: cannot leave the controller's network namespace");
  ::close(left);
}

// The --set flags of the cluster's mutual TLS with `own` as this process's certificate.
void add_tls_flags(std::vector<std::string>& argv, const std::string& ca,
                   const testing::CertificateFiles& own) {
  argv.insert(argv.end(),
              {"--set", "cluster.tls_ca_file=" + ca, "--set", "cluster.tls_cert_file=" + own.cert,
               "--set", "cluster.tls_key_file=" + own.key});
}

}  // namespace

LoggedProcess::LoggedProcess(const std::vector<std::string>& argv, const std::filesystem::path& log)
    : log_(log) {
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) throw std::runtime_error("cannot open " + log.string());
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  posix_spawn_file_actions_adddup2(&actions, out, 2);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  int rc = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out);
  if (rc != 0) throw std::runtime_error("cannot spawn " + argv[0]);
}

LoggedProcess::~LoggedProcess() {
  if (exit_code_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

void LoggedProcess::signal(int signo) const {
  if (!exit_code_) ::kill(pid_, signo);
}

std::optional<int> LoggedProcess::wait(std::chrono::milliseconds timeout) {
  for (auto deadline = Clock::now() + timeout; !exit_code_;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else if (Clock::now() >= deadline) {
      return std::nullopt;
    } else {
      std::this_thread::sleep_for(10ms);
    }
  }
  return exit_code_;
}

Resources resources_of(pid_t pid) {
  Resources held{pid};
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) held.rss_kib = std::stol(line.substr(6));
  }
  std::error_code error;
  int files = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++files;
  }
  if (!error) held.open_files = files;
  return held;
}

ChaosCluster::ChaosCluster(ClusterOptions options) : options_(std::move(options)) {
  std::filesystem::create_directories(options_.out);
  if (options_.netns) {
    if (auto why = hosts_unavailable()) {
      std::printf("chaos: no hosts (%s): running on loopback, without partitions\n", why->c_str());
    } else {
      hosts_prefix_ = "aeg-" + std::to_string(getpid());
      hosts_sh({"prune"});
      auto [code, output] = hosts_sh(
          {"up", "--prefix", *hosts_prefix_, "--hosts", std::to_string(options_.workers + 1)});
      if (code != 0) throw std::runtime_error("hosts.sh up failed: " + output);
      // The clients, the health checks and the metrics scrapes all go to the controller's
      // loopback, as a client on its host would.
      left_namespace_ = enter_network_namespace(*hosts_prefix_ + "-h" + std::to_string(kControllerHost));
    }
  }
  if (hosts_prefix_) {
    cluster_port_ = kHostsClusterPort;
    http_port_ = kHostsHttpPort;
  } else {
    cluster_port_ = free_loopback_port();
    http_port_ = free_loopback_port();
  }
  if (options_.tls) {
    auto made = testing::TestCertificates::make(options_.out / "certificates");
    if (!made.ok()) throw std::runtime_error("certificates: " + made.error().message);
    certificates_ = std::move(*made);
  }
  start_controller();
  for (int worker = 0; worker < options_.workers; ++worker) {
    workers_.push_back(spawn(worker_name(worker), worker_argv(worker)));
  }
  if (!wait_all_joined(300s)) {
    throw std::runtime_error("the workers did not all join within 300 s; logs in " +
                             options_.out.string());
  }
}

ChaosCluster::~ChaosCluster() {
  {
    std::lock_guard lock(mutex_);
    controller_.reset();
    workers_.clear();
  }
  if (hosts_prefix_) {
    leave_network_namespace(left_namespace_);
    hosts_sh({"down", "--prefix", *hosts_prefix_});
  }
}

std::string ChaosCluster::where() const {
  std::string place = hosts_prefix_
                          ? "hosts (network namespaces " + *hosts_prefix_ + "-h*)"
                          : std::string("loopback (no partitions: network namespaces need root)");
  return place + (certificates_ ? ", mutual TLS between controller and workers" : ", plain TCP");
}

std::vector<std::string> ChaosCluster::controller_argv() const {
  std::vector<std::string> argv;
  std::string listen = "127.0.0.1:" + std::to_string(cluster_port_);
  std::string http = "127.0.0.1:" + std::to_string(http_port_);
  if (hosts_prefix_) {
    argv = {"ip", "netns", "exec", *hosts_prefix_ + "-h" + std::to_string(kControllerHost)};
    listen = host_address(kControllerHost) + ":" + std::to_string(cluster_port_);
  }
  argv.insert(argv.end(), {options_.binary, "controller", "--listen", listen, "--http", http,
                           "--cluster-token", kClusterToken, "--heartbeat-interval-ms",
                           std::to_string(options_.heartbeat_interval_ms), "--heartbeat-timeout-ms",
                           std::to_string(options_.heartbeat_timeout_ms)});
  if (certificates_) add_tls_flags(argv, certificates_->ca, certificates_->server);
  return argv;
}

std::vector<std::string> ChaosCluster::worker_argv(int worker) const {
  std::vector<std::string> argv;
  std::string join = "127.0.0.1:" + std::to_string(cluster_port_);
  if (hosts_prefix_) {
    argv = {"ip", "netns", "exec", *hosts_prefix_ + "-h" + std::to_string(host_of_worker(worker))};
    join = host_address(kControllerHost) + ":" + std::to_string(cluster_port_);
  }
  argv.insert(argv.end(), {options_.binary, "worker", "--join", join, "--name", worker_name(worker),
                           "--cluster-token", kClusterToken, "--rejoin-backoff-max-ms", "500",
                           "--set", "serve.data_dir=" + options_.data_dir});
  if (certificates_) add_tls_flags(argv, certificates_->ca, certificates_->client);
  return argv;
}

std::unique_ptr<LoggedProcess> ChaosCluster::spawn(const std::string& name,
                                                   const std::vector<std::string>& argv) {
  int incarnation = ++incarnations_[name];
  return std::make_unique<LoggedProcess>(
      argv, options_.out / (name + "." + std::to_string(incarnation) + ".log"));
}

void ChaosCluster::start_controller() {
  {
    std::lock_guard lock(mutex_);
    controller_ = spawn("controller", controller_argv());
  }
  for (auto deadline = Clock::now() + 60s; Clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    if (!health().empty()) return;
  }
  throw std::runtime_error("the controller does not serve after 60 s; log: " +
                           controller_->log().string());
}

void ChaosCluster::kill_worker(int worker) {
  std::lock_guard lock(mutex_);
  workers_[worker]->signal(SIGKILL);
  workers_[worker]->wait(10s);
}

void ChaosCluster::restart_worker(int worker) {
  std::lock_guard lock(mutex_);
  workers_[worker] = spawn(worker_name(worker), worker_argv(worker));
}

void ChaosCluster::stop_worker(int worker) {
  std::lock_guard lock(mutex_);
  workers_[worker]->signal(SIGSTOP);
}

void ChaosCluster::continue_worker(int worker) {
  std::lock_guard lock(mutex_);
  workers_[worker]->signal(SIGCONT);
}

void ChaosCluster::cut(int worker) {
  if (hosts_prefix_)
    hosts_sh({"cut", "--prefix", *hosts_prefix_, std::to_string(host_of_worker(worker))});
}

void ChaosCluster::heal(int worker) {
  if (hosts_prefix_)
    hosts_sh({"heal", "--prefix", *hosts_prefix_, std::to_string(host_of_worker(worker))});
}

void ChaosCluster::kill_controller() {
  std::lock_guard lock(mutex_);
  controller_->signal(SIGKILL);
  controller_->wait(10s);
}

void ChaosCluster::restart_controller() { start_controller(); }

std::string ChaosCluster::health() {
  try {
    auto response = testing::http_request(http_port_, "GET", "/health", {}, {}, 5s);
    return response.status == 200 ? response.body : std::string();
  } catch (const std::exception&) {
    return {};
  }
}

bool ChaosCluster::wait_all_joined(std::chrono::seconds timeout) {
  for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;
       std::this_thread::sleep_for(200ms)) {
    auto body = nlohmann::json::parse(health(), nullptr, false);
    if (body.is_discarded()) continue;
    int listed = 0;
    for (int worker = 0; worker < options_.workers; ++worker) {
      for (const auto& node : body["workers"])
        listed += node["name"] == worker_name(worker) ? 1 : 0;
    }
    if (listed == options_.workers) return true;
  }
  return false;
}

std::map<std::string, Resources> ChaosCluster::sample() {
  std::lock_guard lock(mutex_);
  std::map<std::string, Resources> held;
  if (controller_) held["controller"] = resources_of(controller_->pid());
  for (int worker = 0; worker < options_.workers; ++worker) {
    held[worker_name(worker)] = resources_of(workers_[worker]->pid());
  }
  return held;
}

std::vector<std::string> ChaosCluster::stop_all() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, LoggedProcess*>> all;
  for (int worker = 0; worker < options_.workers; ++worker)
    all.emplace_back(worker_name(worker), workers_[worker].get());
  all.emplace_back("controller", controller_.get());
  for (auto& [name, process] : all) process->signal(SIGTERM);
  std::vector<std::string> unclean;
  for (auto& [name, process] : all) {
    auto code = process->wait(30s);
    if (code != 0) {
      unclean.push_back(
          name + (code ? " exited with " + std::to_string(*code) : std::string(" did not exit")) +
          " (log " + process->log().string() + ")");
    }
  }
  return unclean;
}

}  // namespace aegaeon::bench::chaos
