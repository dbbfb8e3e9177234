// Membership: keeps a node registered with a controller over Cap'n Proto RPC — a worker (with
// the generations it offers to run) or a proxy controller reporting to the controller that
// places models. Joins, sends heartbeats with its load report, and re-joins with backoff.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cmd/cluster_flags.hpp"
#include "core/cluster_types.hpp"
#include "rpc/cluster_registry.hpp"

namespace aegaeon::rpc {
class KjRuntime;
}

namespace aegaeon::cmd {

// Joins, sends heartbeats, and re-joins with exponential backoff (100 ms doubling up to
// `backoff_max`, 5 s by default) whenever the controller is unreachable or forgot the node. A
// refusal (wrong token or version) is final: the waiting thread gets SIGTERM and refusal() says
// why. Constructed on the thread that waits for SIGINT/SIGTERM (sigwait).
class Membership {
 public:
  /// `report` fills a heartbeat's load report (requests, models held); its models held also go
  /// with each join. `handlers` null: a node that reports only (a proxy controller). `tls` set:
  /// the connection is mutual TLS (a client-side context of the cluster CA).
  Membership(rpc::KjRuntime& kj, HostPort controller, std::shared_ptr<const rpc::TlsContext> tls,
             core::NodeRegistration node, std::string token,
             std::shared_ptr<const rpc::WorkerHandlers> handlers, std::function<core::HeartbeatReport()> report,
             std::chrono::milliseconds backoff_max);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  /// Set when the controller refused this node.
  [[nodiscard]] std::optional<std::string> refusal() const;

 private:
  bool sleep(std::chrono::milliseconds delay);
  bool sleep_until_beat(std::chrono::milliseconds interval, const std::vector<std::string>& sent);
  void run();

  rpc::KjRuntime& kj_;
  HostPort controller_;
  std::shared_ptr<const rpc::TlsContext> tls_;
  core::NodeRegistration node_;
  std::string token_;
  std::shared_ptr<const rpc::WorkerHandlers> handlers_;
  std::function<core::HeartbeatReport()> report_;
  std::chrono::milliseconds backoff_max_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<std::string> refusal_;
  pthread_t waiter_;    // the thread in sigwait, told of a refusal
  std::thread thread_;  // last: starts once everything above is set
};

}  // namespace aegaeon::cmd
