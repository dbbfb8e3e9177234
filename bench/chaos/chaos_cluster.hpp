// The cluster a chaos run attacks: one `aegaeon controller` and N `aegaeon worker`s, real
// processes, each writing its log to a file of its own (a pipe nobody drains would stall a
// process that runs for half an hour). On "hosts" (network namespaces made by
// deploy/netns/hosts.sh, controller on h1, worker i on h(i+1)) where this runs as root, on
// loopback otherwise; mutual TLS between controller and workers unless turned off. It carries out
// the faults (SIGKILL, SIGSTOP/SIGCONT, partition and heal, controller restart) and samples each
// process's RSS and open files.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/test_certificates.hpp"

namespace aegaeon::bench::chaos {

/// A child process whose stdout and stderr append to a log file.
class LoggedProcess {
 public:
  /// Starts `argv`; throws std::runtime_error when it cannot be spawned.
  LoggedProcess(const std::vector<std::string>& argv, const std::filesystem::path& log);
  /// Kills (SIGKILL) and reaps it if it still runs.
  ~LoggedProcess();
  LoggedProcess(const LoggedProcess&) = delete;
  LoggedProcess& operator=(const LoggedProcess&) = delete;

  void signal(int signo) const;
  /// Waits for its exit; the exit code (128 + signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::filesystem::path& log() const { return log_; }

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
  std::optional<int> exit_code_;
};

/// What a process holds, read from /proc.
struct Resources {
  pid_t pid = -1;
  long rss_kib = -1;
  int open_files = -1;
};
Resources resources_of(pid_t pid);

struct ClusterOptions {
  std::string binary;
  std::string data_dir;       ///< serve.data_dir of the workers (demo models synthesized there)
  std::filesystem::path out;  ///< logs and certificates go here
  int workers = 3;
  bool netns = true;  ///< hosts when possible; false: loopback
  bool tls = true;    ///< mutual TLS between controller and workers
  int heartbeat_interval_ms = 250;
  int heartbeat_timeout_ms = 2500;
};

/// Where the processes run; every method is safe to call from any thread.
class ChaosCluster {
 public:
  /// Makes the hosts (or picks loopback ports), starts the controller and the workers and waits
  /// until every worker joined. Throws std::runtime_error saying what failed.
  explicit ChaosCluster(ClusterOptions options);
  /// Stops everything still running and deletes the hosts.
  ~ChaosCluster();
  ChaosCluster(const ChaosCluster&) = delete;
  ChaosCluster& operator=(const ChaosCluster&) = delete;

  /// Where it runs and how its processes talk, in words.
  [[nodiscard]] std::string where() const;
  /// The controller's HTTP port, reachable at 127.0.0.1 from this process's threads (on hosts
  /// this process joins h1's network namespace).
  [[nodiscard]] uint16_t http_port() const { return http_port_; }
  [[nodiscard]] bool can_partition() const { return hosts_prefix_.has_value(); }
  [[nodiscard]] int workers() const { return options_.workers; }
  static std::string worker_name(int worker) { return "w" + std::to_string(worker + 1); }

  void kill_worker(int worker);     ///< SIGKILL, reaped
  void restart_worker(int worker);  ///< a new process under the same name (joins in the background)
  void stop_worker(int worker);     ///< SIGSTOP
  void continue_worker(int worker);  ///< SIGCONT
  void cut(int worker);              ///< the worker's host loses its link (hosts only)
  void heal(int worker);
  void kill_controller();  ///< SIGKILL, reaped
  /// Starts the controller again on the same ports; throws when it does not serve within 60 s.
  void restart_controller();

  /// Waits until the controller lists every worker; false after `timeout`.
  bool wait_all_joined(std::chrono::seconds timeout);
  /// The controller's GET /health (empty when it does not answer).
  std::string health();

  /// Each running process ("controller", "w1", ...) with what it holds now.
  std::map<std::string, Resources> sample();
  /// SIGTERM to every process; the names of those that did not exit with 0 within 30 s.
  std::vector<std::string> stop_all();

 private:
  std::vector<std::string> controller_argv() const;
  std::vector<std::string> worker_argv(int worker) const;
  std::unique_ptr<LoggedProcess> spawn(const std::string& name,
                                       const std::vector<std::string>& argv);
  void start_controller();  // and wait until it serves

  ClusterOptions options_;
  std::optional<std::string> hosts_prefix_;                // set when running on hosts
  int left_namespace_ = -1;  // on hosts: the network namespace this process came from
  std::optional<testing::TestCertificates> certificates_;  // set when the cluster speaks TLS
  uint16_t cluster_port_ = 0;
  uint16_t http_port_ = 0;
  std::mutex mutex_;  // guards the processes and the incarnation counts
  std::unique_ptr<LoggedProcess> controller_;
  std::vector<std::unique_ptr<LoggedProcess>> workers_;
  std::map<std::string, int> incarnations_;
};

}  // namespace aegaeon::bench::chaos
