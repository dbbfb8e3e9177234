#include "cmd/admin_routes.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <span>

#include <spdlog/spdlog.h>

#include "cmd/api_routes.hpp"
#include "cmd/commands.hpp"
#include "rpc/http/openai_api.hpp"

namespace aegaeon::cmd {
namespace {

namespace http = rpc::http;
using json = nlohmann::json;

constexpr std::string_view kModelsPrefix = "/admin/models/";

json model_json(const actors::ModelStatus& model) {
  json pinned = nullptr;
  if (model.pinned_prefill_device && model.pinned_decode_device) {
    pinned = {{"prefill_device", *model.pinned_prefill_device}, {"decode_device", *model.pinned_decode_device}};
  }
  return {{"id", model.name},
          {"state", model.state},
          {"draining", model.draining},
          {"pinned", std::move(pinned)},
          {"requests_running", model.running},
          {"requests_waiting", model.waiting},
          {"max_model_len", model.max_context_tokens}};
}


json worker_json(const actors::WorkerStatus& worker) {
  return {{"id", worker.name},
          {"node_id", worker.node_id},
          {"draining", worker.draining},
          {"generations_in_flight", worker.in_flight},
          {"models", worker.models},
          {"held_bytes", worker.held_bytes},
          {"host_cache_bytes", worker.cache_bytes}};
}

// The target of POST {prefix}{name}/{action}, for models and workers alike.
struct AdminTarget {
  std::string name;    ///< everything between the prefix and the last '/'
  std::string action;  ///< one of the route's actions
};

// Reads `request.path` under `prefix`; for an action not in `actions` it answers 404 itself and
// returns nullopt.
std::optional<AdminTarget> admin_target(const http::HttpRequest& request, std::string_view prefix,
                                        std::span<const std::string_view> actions,
                                        const http::Responder& responder) {
  const std::string_view rest = std::string_view(request.path).substr(prefix.size());
  const auto slash = rest.rfind('/');
  const std::string_view action = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (std::find(actions.begin(), actions.end(), action) == actions.end()) {
    std::string valid;
    for (auto a : actions) valid += (valid.empty() ? "/" : " or /") + std::string(a);
    responder.respond(http::HttpResponse::error(
        404, "no route for " + request.path + " (POST " + std::string(prefix) + "{name}" + valid + ")",
        "invalid_request_error"));
    return std::nullopt;
  }
  return AdminTarget{std::string(rest.substr(0, slash)), std::string(action)};
}

// GET /admin/...: an OpenAI-style list.
http::HttpResponse list_response(json data) {
  return http::HttpResponse::json(200, json{{"object", "list"}, {"data", std::move(data)}}.dump());
}

constexpr std::string_view kWorkersPrefix = "/admin/workers/";

}  // namespace

void add_admin_routes(http::HttpRouter& router, const actors::ServingNode& node, std::string api_key) {
  router.add("GET", "/admin/models",
             require_api_key(api_key, [&node](const http::HttpRequest&, const http::Responder& responder) {
               node.admin(actors::AdminAction::kReport, {}, [responder](std::vector<actors::ModelStatus> models) {
                 json data = json::array();
                 for (const auto& model : models) data.push_back(model_json(model));
                 responder.respond(list_response(std::move(data)));
               });
             }));
  // POST /admin/models/{name}/drain|undrain|pin|unpin|unload|load.
  router.add_prefix(
      "POST", std::string(kModelsPrefix),
      require_api_key(std::move(api_key), [&node](const http::HttpRequest& request, const http::Responder& responder) {
        auto target = admin_target(request, kModelsPrefix, kModelActions, responder);
        if (!target) return;
        const std::string& name = target->name;
        if (node.catalog().find(name) == nullptr) {
          responder.respond(http::openai::error_response(core::Error{
              core::ErrorCode::kNotFound, "model '" + name + "' is not served here (see GET /admin/models)", "model"}));
          return;
        }
        // Answers with the model's status once the action is done.
        auto answer = [responder, name](std::vector<actors::ModelStatus> models) {
          auto it = std::find_if(models.begin(), models.end(), [&](const auto& m) { return m.name == name; });
          responder.respond(http::HttpResponse::json(200, model_json(*it).dump()));
        };
        if (target->action == "unload" || target->action == "load") {
          auto finished = [responder, answer](core::Result<std::vector<actors::ModelStatus>> models) {
            if (!models.ok()) return responder.respond(http::openai::error_response(models.error()));
            answer(std::move(models).value());
          };
          if (target->action == "unload") node.unload_model(name, std::move(finished));
          else node.load_model(name, std::move(finished));
          return;
        }
        auto action = actors::AdminAction::kReport;
        if (target->action == "drain" || target->action == "undrain") {
          action = target->action == "drain" ? actors::AdminAction::kDrain : actors::AdminAction::kUndrain;
        } else if (auto pinned = node.set_pinned(name, target->action == "pin"); !pinned.ok()) {
          responder.respond(http::openai::error_response(pinned.error()));
          return;
        }
        node.admin(action, name, std::move(answer));
      }));
}

void add_cluster_admin_routes(http::HttpRouter& router, actors::ClusterFront& front, std::string api_key) {
  router.add("GET", "/admin/workers",
             require_api_key(api_key, [&front](const http::HttpRequest&, const http::Responder& responder) {
               front.admin_workers(actors::WorkerAction::kReport, {}, [responder](std::vector<actors::WorkerStatus> workers) {
                 json data = json::array();
                 for (const auto& worker : workers) data.push_back(worker_json(worker));
                 responder.respond(list_response(std::move(data)));
               });
             }));
  // POST /admin/workers/{name}/drain|undrain.
  router.add_prefix(
      "POST", std::string(kWorkersPrefix),
      require_api_key(std::move(api_key), [&front](const http::HttpRequest& request, const http::Responder& responder) {
        auto target = admin_target(request, kWorkersPrefix, kWorkerActions, responder);
        if (!target) return;
        const std::string name = target->name;
        const auto action = target->action == "drain" ? actors::WorkerAction::kDrain : actors::WorkerAction::kUndrain;
        front.admin_workers(action, name, [responder, name](std::vector<actors::WorkerStatus> workers) {
          auto it = std::find_if(workers.begin(), workers.end(), [&](const auto& w) { return w.name == name; });
          if (it == workers.end()) {
            responder.respond(http::openai::error_response(core::Error{
                core::ErrorCode::kNotFound, "no live worker is called '" + name + "' (see GET /admin/workers)", "worker"}));
            return;
          }
          responder.respond(http::HttpResponse::json(200, worker_json(*it).dump()));
        });
      }));
}

void check_admin_config(const core::AdminConfig& admin) {
  if (admin.enabled && admin.api_key.empty()) {
    // An admin port without a key would let anyone who reaches it drain the service.
    throw CommandError("admin.enabled is true but admin.api_key is empty: set admin.api_key "
                       "(e.g. --set admin.api_key=KEY) to open the admin port",
                       2);
  }
}

std::unique_ptr<http::HttpServer> start_admin_server(rpc::KjRuntime& runtime, const core::AdminConfig& admin,
                                                     http::HttpRouter router, const std::string& routes,
                                                     HttpMetrics& metrics, std::shared_ptr<const rpc::TlsContext> tls,
                                                     rpc::TlsRefusalObserver on_tls_refused) {
  if (!admin.enabled) return nullptr;
  http::HttpServerOptions options;
  options.host = admin.host;
  options.port = admin.port;
  // Admin actions show in aegaeon_http_requests_total next to the public API's routes.
  options.on_complete = [&metrics](const http::HttpRequest& request, int status, double duration_s) {
    metrics.observe(request, status, duration_s);
  };
  options.tls = std::move(tls);  // the same certificate as the public port
  options.on_tls_refused = std::move(on_tls_refused);
  auto server = http::HttpServer::start(runtime, options, std::move(router));
  if (!server.ok()) throw CommandError(server.error().with_context("admin port").message);
  spdlog::info("admin API on {}://{}:{} ({}; key: admin.api_key)", (*server)->scheme(), admin.host, (*server)->port(),
               routes);
  return std::move(*server);
}

}  // namespace aegaeon::cmd
