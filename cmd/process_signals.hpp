// The signals a long-running command (serve, controller, worker) waits for: SIGINT and SIGTERM
// stop it; SIGHUP reloads its TLS certificates (renewed files take effect for new connections
// while open ones keep going).
#pragma once

#include <csignal>
#include <memory>
#include <vector>

#include "rpc/tls.hpp"

namespace aegaeon::cmd {

class ProcessSignals {
 public:
  /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, so threads started afterwards
  /// inherit the mask and only wait_for_stop() sees them; ignores SIGPIPE. Construct it before
  /// any thread starts.
  ProcessSignals();

  /// Waits for SIGINT or SIGTERM and returns it. On each SIGHUP meanwhile, reloads the files of
  /// `reloadable` (null entries are skipped); a failure is logged and the old certificates stay.
  int wait_for_stop(const std::vector<std::shared_ptr<rpc::TlsContext>>& reloadable) const;

 private:
  sigset_t signals_;
};

}  // namespace aegaeon::cmd
