// TLS of a process's ports from its configuration: HTTPS for the OpenAI and admin ports
// (http.tls_*), mutual TLS for the cluster connections (cluster.tls_*), and the metric of
// connections refused at the handshake.
#pragma once

#include <memory>
#include <string>

#include "core/config.hpp"
#include "core/metrics.hpp"
#include "rpc/tls.hpp"

namespace aegaeon::cmd {

/// The HTTP ports' TLS, or null when http.tls_cert_file and http.tls_key_file are both empty.
/// Throws CommandError naming the key when only one is set or a file does not load.
std::shared_ptr<rpc::TlsContext> http_tls(const core::HttpConfig& http);

/// The cluster connections' mutual TLS for this side (a controller's registry is the server, a
/// worker or proxy controller joining one the client), or null when cluster.tls_* are all empty.
/// Throws CommandError naming the keys when only some are set or a file does not load.
std::shared_ptr<rpc::TlsContext> cluster_tls(const core::ClusterConfig& cluster, rpc::TlsContext::Side side);

/// aegaeon_tls_handshake_failures_total{listener, reason}: peers refused at the handshake.
class TlsMetrics {
 public:
  explicit TlsMetrics(prometheus::Registry& registry);
  /// Counts the refusals of one listener ("http", "admin", "cluster").
  [[nodiscard]] rpc::TlsRefusalObserver observer(std::string listener);

 private:
  prometheus::Family<prometheus::Counter>& refused_;
};

}  // namespace aegaeon::cmd
