// The admin API: model state, drain, pin and unload on `aegaeon serve`, worker state and drain on `aegaeon
// controller`; on a port and key of their own (admin.* in the configuration) so it never shares
// the network the public API faces.
#pragma once

#include <memory>
#include <string>

#include "actors/cluster_router.hpp"
#include "actors/serving_node.hpp"
#include "cmd/api_routes.hpp"
#include "core/config.hpp"
#include "rpc/http/http_server.hpp"
#include "rpc/kj_runtime.hpp"

namespace aegaeon::cmd {

/// Adds GET /admin/models and POST /admin/models/{name}/{drain,undrain,pin,unpin,unload,load} (kModelActions) for `node` (which must
/// outlive the routes), every route behind `Authorization: Bearer <api_key>`; `api_key` must
/// not be empty.
void add_admin_routes(rpc::http::HttpRouter& router, const actors::ServingNode& node, std::string api_key);

/// Adds GET /admin/workers and POST /admin/workers/{name}/{drain,undrain} for the controller's
/// `front` (which must outlive the routes), behind `Authorization: Bearer <api_key>`.
void add_cluster_admin_routes(rpc::http::HttpRouter& router, actors::ClusterFront& front, std::string api_key);

/// Throws CommandError (exit code 2) when admin.enabled is set without admin.api_key.
void check_admin_config(const core::AdminConfig& admin);

/// Starts the admin port (admin.host, admin.port) with `router` and logs where it listens; its
/// requests are counted in `metrics` (which must outlive the server). HTTPS when `tls` is set
/// (the public port's certificate), its refusals passed to `on_tls_refused`. nullptr when
/// admin.enabled is false. Throws CommandError when it cannot bind.
std::unique_ptr<rpc::http::HttpServer> start_admin_server(rpc::KjRuntime& runtime, const core::AdminConfig& admin,
                                                          rpc::http::HttpRouter router, const std::string& routes,
                                                          HttpMetrics& metrics,
                                                          std::shared_ptr<const rpc::TlsContext> tls = nullptr,
                                                          rpc::TlsRefusalObserver on_tls_refused = {});

}  // namespace aegaeon::cmd
