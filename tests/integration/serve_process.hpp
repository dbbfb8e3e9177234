// A real `aegaeon serve` child process on an ephemeral port, for the integration suites.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"

namespace aegaeon::testing {

/// Starts `aegaeon serve --port 0` (plus `extra` arguments) and waits for its address.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> extra = {}) {
    // The demo models are synthesized once per build tree and shared by every test process.
    std::vector<std::string> argv = {AEGAEON_BINARY, "serve", "--port", "0", "--set",
                                     "serve.data_dir=" AEGAEON_TEST_DATA_DIR};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<ChildProcess>(argv);
    auto match = process_->wait_for_line(std::regex(R"(serving on http://[0-9.]+:([0-9]+))"), std::chrono::seconds(60));
    if (match) port_ = static_cast<uint16_t>(std::stoi((*match)[1]));
  }
  [[nodiscard]] uint16_t port() const { return port_; }
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  uint16_t port_ = 0;
};

}  // namespace aegaeon::testing
