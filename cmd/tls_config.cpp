#include "cmd/tls_config.hpp"

#include <spdlog/spdlog.h>

#include "cmd/commands.hpp"

namespace aegaeon::cmd {
namespace {

std::shared_ptr<rpc::TlsContext> load_or_throw(rpc::TlsContext::Side side, rpc::TlsFiles files,
                                               const std::string& keys) {
  auto tls = rpc::TlsContext::load(side, std::move(files));
  if (!tls.ok()) throw CommandError(keys + ": " + tls.error().message, 2);
  return std::move(*tls);
}

}  // namespace

std::shared_ptr<rpc::TlsContext> http_tls(const core::HttpConfig& http) {
  if (http.tls_cert_file.empty() && http.tls_key_file.empty()) return nullptr;
  if (http.tls_cert_file.empty() || http.tls_key_file.empty()) {
    throw CommandError(std::string(http.tls_cert_file.empty() ? "http.tls_cert_file" : "http.tls_key_file") +
                           " is not set: HTTPS needs both http.tls_cert_file and http.tls_key_file",
                       2);
  }
  return load_or_throw(rpc::TlsContext::Side::kServer, {http.tls_cert_file, http.tls_key_file, ""},
                       "http.tls_cert_file / http.tls_key_file");
}

std::shared_ptr<rpc::TlsContext> cluster_tls(const core::ClusterConfig& cluster, rpc::TlsContext::Side side) {
  const std::pair<const char*, const std::string*> keys[] = {{"cluster.tls_ca_file", &cluster.tls_ca_file},
                                                             {"cluster.tls_cert_file", &cluster.tls_cert_file},
                                                             {"cluster.tls_key_file", &cluster.tls_key_file}};
  std::string missing;
  int set = 0;
  for (const auto& [key, value] : keys) {
    if (value->empty()) {
      missing += (missing.empty() ? "" : ", ") + std::string(key);
    } else {
      ++set;
    }
  }
  if (set == 0) return nullptr;
  if (!missing.empty()) {
    throw CommandError(missing + " not set: mutual TLS needs cluster.tls_ca_file, cluster.tls_cert_file and "
                                 "cluster.tls_key_file (or none of them for plain TCP)",
                       2);
  }
  return load_or_throw(side, {cluster.tls_cert_file, cluster.tls_key_file, cluster.tls_ca_file}, "cluster.tls_*");
}

TlsMetrics::TlsMetrics(prometheus::Registry& registry)
    : refused_(prometheus::BuildCounter()
                   .Name("aegaeon_tls_handshake_failures_total")
                   .Help("Connections refused at the TLS handshake, by listener (http, admin, cluster) and reason "
                         "(not_tls, no_certificate, untrusted_certificate, expired_certificate, timeout, ...)")
                   .Register(registry)) {}

rpc::TlsRefusalObserver TlsMetrics::observer(std::string listener) {
  return [this, listener = std::move(listener)](const rpc::TlsRefusal& refusal) {
    refused_.Add({{"listener", listener}, {"reason", refusal.kind}}).Increment();
  };
}

}  // namespace aegaeon::cmd
