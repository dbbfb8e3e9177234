// The admin API of `aegaeon serve`: model state and drain, on a port and key of their own
// (admin.* in the configuration) so it never shares the network the public API faces.
#pragma once

#include <string>

#include "actors/serving_node.hpp"
#include "rpc/http/http_server.hpp"

namespace aegaeon::cmd {

/// Adds GET /admin/models and POST /admin/models/{name}/{drain,undrain} for `node` (which must
/// outlive the routes), every route behind `Authorization: Bearer <api_key>`; `api_key` must
/// not be empty.
void add_admin_routes(rpc::http::HttpRouter& router, const actors::ServingNode& node, std::string api_key);

}  // namespace aegaeon::cmd
