#include "cmd/admin_routes.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "cmd/api_routes.hpp"
#include "rpc/http/openai_api.hpp"

namespace aegaeon::cmd {
namespace {

namespace http = rpc::http;
using json = nlohmann::json;

constexpr std::string_view kModelsPrefix = "/admin/models/";

json model_json(const actors::ModelStatus& model) {
  return {{"id", model.name},
          {"state", model.state},
          {"draining", model.draining},
          {"requests_running", model.running},
          {"requests_waiting", model.waiting},
          {"max_model_len", model.max_context_tokens}};
}

// "/admin/models/demo-xs/drain" → the action, or nullopt for an action the API does not have.
std::optional<actors::AdminAction> action_named(std::string_view name) {
  if (name == "drain") return actors::AdminAction::kDrain;
  if (name == "undrain") return actors::AdminAction::kUndrain;
  return std::nullopt;
}

}  // namespace

void add_admin_routes(http::HttpRouter& router, const actors::ServingNode& node, std::string api_key) {
  router.add("GET", "/admin/models",
             require_api_key(api_key, [&node](const http::HttpRequest&, const http::Responder& responder) {
               node.admin(actors::AdminAction::kReport, {}, [responder](std::vector<actors::ModelStatus> models) {
                 json data = json::array();
                 for (const auto& model : models) data.push_back(model_json(model));
                 responder.respond(http::HttpResponse::json(200, json{{"object", "list"}, {"data", data}}.dump()));
               });
             }));
  // POST /admin/models/{name}/{action}: the name is everything up to the last '/'.
  router.add_prefix(
      "POST", std::string(kModelsPrefix),
      require_api_key(std::move(api_key), [&node](const http::HttpRequest& request, const http::Responder& responder) {
        std::string_view rest = std::string_view(request.path).substr(kModelsPrefix.size());
        const auto slash = rest.rfind('/');
        const auto action = slash == std::string_view::npos ? std::nullopt : action_named(rest.substr(slash + 1));
        if (!action) {
          responder.respond(http::HttpResponse::error(
              404, "no route for " + request.path + " (POST /admin/models/{name}/drain or /undrain)",
              "invalid_request_error"));
          return;
        }
        std::string name(rest.substr(0, slash));
        if (node.catalog().find(name) == nullptr) {
          responder.respond(http::openai::error_response(core::Error{
              core::ErrorCode::kNotFound, "model '" + name + "' is not served here (see GET /admin/models)", "model"}));
          return;
        }
        node.admin(*action, name, [responder, name](std::vector<actors::ModelStatus> models) {
          auto it = std::find_if(models.begin(), models.end(), [&](const auto& m) { return m.name == name; });
          responder.respond(http::HttpResponse::json(200, model_json(*it).dump()));
        });
      }));
}

}  // namespace aegaeon::cmd
