#include "cmd/process_signals.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace aegaeon::cmd {

ProcessSignals::ProcessSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  sigaddset(&signals_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

int ProcessSignals::wait_for_stop(const std::vector<std::shared_ptr<rpc::TlsContext>>& reloadable) const {
  while (true) {
    int received = 0;
    sigwait(&signals_, &received);
    if (received != SIGHUP) return received;
    bool any = false;
    for (const auto& tls : reloadable) {
      if (!tls) continue;
      any = true;
      if (auto done = tls->reload(); !done.ok()) {
        spdlog::error("SIGHUP: certificates not reloaded, the ones in use stay: {}", done.error().message);
      } else {
        spdlog::info("SIGHUP: reloaded {}", tls->files().cert_file);
      }
    }
    if (!any) spdlog::info("SIGHUP: no TLS certificates to reload");
  }
}

}  // namespace aegaeon::cmd
