// Real `aegaeon controller` and `aegaeon worker` child processes on ephemeral loopback ports.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"

namespace aegaeon::testing {

inline constexpr const char* kClusterToken = "test-cluster-secret";

/// `aegaeon controller` with both listeners on ephemeral ports.
class ControllerProcess {
 public:
  explicit ControllerProcess(std::string listen = "127.0.0.1:0") {
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        AEGAEON_BINARY, "controller", "--listen", listen, "--http", "127.0.0.1:0", "--cluster-token",
        kClusterToken});
    auto match = process_->wait_for_line(
        std::regex(R"(workers join [0-9.]+:([0-9]+); serving on http://[0-9.]+:([0-9]+))"),
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
  WorkerProcess(uint16_t controller_port, const std::string& name, const std::string& token = kClusterToken) {
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        AEGAEON_BINARY, "worker", "--join", "127.0.0.1:" + std::to_string(controller_port), "--name", name,
        "--cluster-token", token, "--set", "serve.data_dir=" AEGAEON_TEST_DATA_DIR});
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
