// The HTTP front door shared by `aegaeon serve` and `aegaeon controller`: the OpenAI-compatible
// routes, the tokenizer endpoints and HTTP metrics, over whatever runs the requests (a
// ServingNode in one process, the cluster router in a controller).
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actors/model_catalog.hpp"
#include "actors/serving_node.hpp"
#include "core/metrics.hpp"
#include "rpc/http/http_server.hpp"

namespace aegaeon::cmd {

/// What the API routes need from the serving side. Each member is called on the kj thread and
/// must not block.
struct ModelFront {
  /// Runs a validated request; answers through the responder.
  std::function<void(core::GenerationRequest, const rpc::http::Responder&)> submit;
  /// GET /v1/models.
  std::function<std::vector<actors::ModelStatus>()> models;
  /// Tokenizers for /tokenize and /detokenize (the current set; it may grow in a cluster).
  std::function<std::shared_ptr<const actors::ModelCatalog>()> catalog;
};

/// The front of a ServingNode (which must outlive the routes).
ModelFront front_of(const actors::ServingNode& node);

/// Adds /v1/chat/completions, /v1/completions, /v1/models, /tokenize and /detokenize, guarded
/// by `api_key` when it is not empty. `max_tokens_limit` (0: none) caps max_tokens.
void add_api_routes(rpc::http::HttpRouter& router, ModelFront front, const std::string& api_key,
                    std::int32_t max_tokens_limit = 0);

/// `handler` behind `Authorization: Bearer <api_key>` (401 with an OpenAI error otherwise);
/// `handler` itself when `api_key` is empty.
rpc::http::Handler require_api_key(std::string api_key, rpc::http::Handler handler);

/// What POST /admin/models/{name}/<action> and /admin/workers/{name}/<action> can do: the admin
/// routes serve these, route_label knows them.
inline constexpr std::array<std::string_view, 6> kModelActions = {"drain", "undrain", "pin", "unpin", "unload", "load"};
inline constexpr std::array<std::string_view, 2> kWorkerActions = {"drain", "undrain"};

/// The `route` label of a request for `path`: the route itself, an admin action with the name in
/// it replaced ("/admin/models/:name/drain"), or "other", so that no path can blow up cardinality.
std::string route_label(std::string_view path);

/// HTTP metrics of the public and the admin port, labelled by route_label.
class HttpMetrics {
 public:
  explicit HttpMetrics(prometheus::Registry& registry);
  /// Records one answered request.
  void observe(const rpc::http::HttpRequest& request, int status, double duration_s);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  core::HistogramFamily durations_;
};

/// aegaeon_build_info and process_start_time_seconds.
void register_process_metrics(prometheus::Registry& registry);

}  // namespace aegaeon::cmd
