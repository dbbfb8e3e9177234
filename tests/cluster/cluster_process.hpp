// Real `aegaeon controller` and `aegaeon worker` child processes on ephemeral loopback ports.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"

namespace aegaeon::testing {

inline constexpr const char* kClusterToken = "test-cluster-secret";

/// Where and how a cluster process starts: `prefix` goes before the binary (e.g. `ip netns exec
/// NS`, which execs it in place: the child's pid stays the process's), `extra_args` after the
/// command's own.
struct Launch {
  std::vector<std::string> prefix;
  std::vector<std::string> extra_args;
};

/// `prefix`, then `args`, then `extra_args`.
inline std::vector<std::string> launch_argv(const Launch& launch, std::vector<std::string> args) {
  std::vector<std::string> argv = launch.prefix;
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), launch.extra_args.begin(), launch.extra_args.end());
  return argv;
}

/// `aegaeon controller` with both listeners on ephemeral ports.
class ControllerProcess {
 public:
  explicit ControllerProcess(std::string listen = "127.0.0.1:0", const Launch& launch = {}) {
    process_ = std::make_unique<ChildProcess>(
        launch_argv(launch, {AEGAEON_BINARY, "controller", "--listen", listen, "--http", "127.0.0.1:0",
                             "--cluster-token", kClusterToken}));
    auto match = process_->wait_for_line(
        std::regex(R"(workers join [0-9.]+:([0-9]+)(?: \(mutual TLS\))?; serving on https?://[0-9.]+:([0-9]+))"),
        std::chrono::seconds(30));
    if (match) {
      cluster_port_ = static_cast<uint16_t>(std::stoi((*match)[1]));
      http_port_ = static_cast<uint16_t>(std::stoi((*match)[2]));
    }
  }
  [[nodiscard]] uint16_t cluster_port() const { return cluster_port_; }
  [[nodiscard]] uint16_t http_port() const { return http_port_; }
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  uint16_t cluster_port_ = 0;
  uint16_t http_port_ = 0;
};

/// `aegaeon worker` joining a controller with the demo models (synthesized once per build tree).
class WorkerProcess {
 public:
  WorkerProcess(uint16_t controller_port, const std::string& name, const std::string& token = kClusterToken)
      : WorkerProcess("127.0.0.1:" + std::to_string(controller_port), name, token, {}) {}
  /// Joins the controller at `join` (HOST:PORT). Admission control is off: these tests check
  /// routing and faults stream by stream, and under a sanitizer's slowdown the TTFT predictor may
  /// turn away a request a test waits for (an "overloaded" stream).
  WorkerProcess(const std::string& join, const std::string& name, const std::string& token, const Launch& launch) {
    process_ = std::make_unique<ChildProcess>(
        launch_argv(launch, {AEGAEON_BINARY, "worker", "--join", join, "--name", name, "--cluster-token", token,
                             "--set", "serve.data_dir=" AEGAEON_TEST_DATA_DIR, "--set", "serve.admission=false"}));
  }
  /// Waits until the worker (re-)joined; returns its node id, or 0 on timeout.
  uint64_t wait_joined(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    auto match = process_->wait_for_line(std::regex(R"(joined controller at \S+ as node ([0-9]+))"), timeout);
    return match ? std::stoull((*match)[1]) : 0;
  }
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace aegaeon::testing
