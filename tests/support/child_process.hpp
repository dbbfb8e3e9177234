// A real child process for integration tests: spawned with its stdout+stderr on a pipe, read
// line by line with deadlines, signalled, and reaped with a timeout (never a hang).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace aegaeon::testing {

/// One running child process.
class ChildProcess {
 public:
  /// Starts `argv[0]` with `argv`; throws std::runtime_error if it cannot be spawned.
  explicit ChildProcess(std::vector<std::string> argv);
  /// Kills (SIGKILL) and reaps the child if it is still running.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Reads output until a line matches `pattern`; returns the match, or nullopt on timeout or
  /// end of output. Every line read is kept in output().
  std::optional<std::smatch> wait_for_line(const std::regex& pattern,
                                           std::chrono::milliseconds timeout);
  /// Sends a signal.
  void signal(int signo);
  /// Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// Everything the child printed so far (after wait(), all of it).
  [[nodiscard]] const std::string& output() const { return output_; }
  /// The child's process id (for /proc, e.g. its memory use).
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  bool read_more(std::chrono::milliseconds timeout);  // false at EOF or timeout

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string output_;
  size_t scanned_ = 0;  // output_ up to here was already matched line by line
  std::string last_line_;
  std::optional<int> exit_code_;
};

/// Runs a command to completion with `input` on stdin; returns {exit code, stdout+stderr}.
std::pair<int, std::string> run_command(const std::vector<std::string>& argv,
                                        const std::string& input = {},
                                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// The full path of `program` on PATH, or nullopt.
std::optional<std::string> find_on_path(const std::string& program);

}  // namespace aegaeon::testing
