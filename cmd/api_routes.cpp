#include "cmd/api_routes.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <set>
#include <span>

#include "rpc/http/openai_api.hpp"

namespace aegaeon::cmd {
namespace {

namespace http = rpc::http;
using json = nlohmann::json;

}  // namespace

http::Handler require_api_key(std::string api_key, http::Handler handler) {
  if (api_key.empty()) return handler;
  return [api_key = std::move(api_key), handler = std::move(handler)](const http::HttpRequest& request,
                                                                    const http::Responder& responder) {
    auto header = request.header("Authorization");
    if (!header || *header != "Bearer " + api_key) {
      responder.respond(http::openai::error_response(core::error(
          core::ErrorCode::kUnauthenticated, "missing or wrong API key (Authorization: Bearer ...)")));
      return;
    }
    handler(request, responder);
  };
}

ModelFront front_of(const actors::ServingNode& node) {
  return {
      [&node](core::GenerationRequest request, const http::Responder& responder) {
        node.submit(std::move(request), responder);
      },
      [&node] { return node.models(); },
      // The node owns its catalog for its whole life: a non-owning pointer.
      [&node] { return std::shared_ptr<const actors::ModelCatalog>(std::shared_ptr<void>{}, &node.catalog()); },
  };
}

void add_api_routes(http::HttpRouter& router, ModelFront front, const std::string& api_key,
                    std::int32_t max_tokens_limit) {
  auto guard = [api_key](http::Handler handler) { return require_api_key(api_key, std::move(handler)); };
  auto generation = [submit = front.submit, max_tokens_limit](core::GenerationRequest::Api api) -> http::Handler {
    return [submit, api, max_tokens_limit](const http::HttpRequest& request, const http::Responder& responder) {
      auto parsed = http::openai::parse_generation_request(request.body, api, max_tokens_limit);
      if (!parsed.ok()) {
        responder.respond(http::openai::error_response(parsed.error()));
        return;
      }
      submit(std::move(*parsed), responder);
    };
  };
  router.add("POST", "/v1/chat/completions", guard(generation(core::GenerationRequest::Api::kChat)));
  router.add("POST", "/v1/completions", guard(generation(core::GenerationRequest::Api::kCompletion)));
  router.add("GET", "/v1/models", guard([models = front.models](const http::HttpRequest&, const http::Responder& responder) {
    json data = json::array();
    for (const auto& model : models()) {
      data.push_back({{"id", model.name}, {"object", "model"}, {"owned_by", "aegaeon"},
                      {"state", model.state}, {"max_model_len", model.max_context_tokens}});
    }
    responder.respond(http::HttpResponse::json(200, json{{"object", "list"}, {"data", data}}.dump()));
  }));
  // vLLM-style tokenizer endpoints: {"model", "prompt"} → tokens, {"model", "tokens"} → prompt.
  // The entry comes with the catalog that holds it.
  using Entry = std::pair<std::shared_ptr<const actors::ModelCatalog>, const actors::CatalogEntry*>;
  auto tokenizer_of = [catalog = front.catalog](const json& body) -> core::Result<Entry> {
    if (!body.is_object() || !body.contains("model") || !body["model"].is_string()) {
      return core::Error{core::ErrorCode::kInvalidArgument, "'model' is required", "model"};
    }
    auto models = catalog();
    const auto* entry = models->find(body["model"].get<std::string>());
    if (entry == nullptr) {
      return core::Error{core::ErrorCode::kNotFound, "model '" + body["model"].get<std::string>() + "' is not served", "model"};
    }
    return Entry{std::move(models), entry};
  };
  router.add("POST", "/tokenize", guard([tokenizer_of](const http::HttpRequest& request, const http::Responder& responder) {
    json body = json::parse(request.body, nullptr, false);
    auto entry = tokenizer_of(body);
    if (!entry.ok()) return responder.respond(http::openai::error_response(entry.error()));
    if (!body.contains("prompt") || !body["prompt"].is_string()) {
      return responder.respond(http::openai::error_response(
          core::Error{core::ErrorCode::kInvalidArgument, "'prompt' must be a string", "prompt"}));
    }
    bool special = body.value("add_special_tokens", true);
    const auto& model = *entry->second;
    auto tokens = model.tokenizer.encode(body["prompt"].get<std::string>(), special);
    responder.respond(http::HttpResponse::json(200, json{{"tokens", tokens}, {"count", tokens.size()},
                                                         {"max_model_len", model.max_context_tokens}}.dump()));
  }));
  router.add("POST", "/detokenize", guard([tokenizer_of](const http::HttpRequest& request, const http::Responder& responder) {
    json body = json::parse(request.body, nullptr, false);
    auto entry = tokenizer_of(body);
    if (!entry.ok()) return responder.respond(http::openai::error_response(entry.error()));
    std::vector<std::int32_t> tokens;
    if (!body.contains("tokens") || !body["tokens"].is_array()) {
      return responder.respond(http::openai::error_response(
          core::Error{core::ErrorCode::kInvalidArgument, "'tokens' must be an array of integers", "tokens"}));
    }
    for (const auto& t : body["tokens"]) {
      if (!t.is_number_integer()) {
        return responder.respond(http::openai::error_response(
            core::Error{core::ErrorCode::kInvalidArgument, "'tokens' must be an array of integers", "tokens"}));
      }
      tokens.push_back(t.get<std::int32_t>());
    }
    responder.respond(http::HttpResponse::json(
        200, json{{"prompt", entry->second->tokenizer.decode(tokens, false)}}.dump(-1, ' ', false, json::error_handler_t::replace)));
  }));
}

HttpMetrics::HttpMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("aegaeon_http_requests_total")
                    .Help("HTTP requests answered, by route and status code")
                    .Register(registry)),
      durations_(prometheus::BuildHistogram()
                     .Name("aegaeon_http_request_duration_seconds")
                     .Help("Time from request to the end of its response, by route")
                     .Register(registry),
                 core::exponential_buckets(0.0005, 4, 10)) {}

// The route label of `path`: a known route, an admin action with the model or worker name
// replaced by :name (names are not bounded: any path may carry one), or "other".
std::string route_label(std::string_view path) {
  static const std::set<std::string, std::less<>> kRoutes = {
      "/health", "/metrics", "/v1/chat/completions", "/v1/completions", "/v1/models", "/tokenize",
      "/detokenize", "/admin/models", "/admin/workers"};
  if (kRoutes.count(path) != 0) return std::string(path);
  struct AdminPrefix {
    std::string_view prefix;
    std::span<const std::string_view> actions;
  };
  for (const AdminPrefix& admin : {AdminPrefix{"/admin/models/", kModelActions}, AdminPrefix{"/admin/workers/", kWorkerActions}}) {
    if (path.substr(0, admin.prefix.size()) != admin.prefix) continue;
    const auto slash = path.rfind('/');
    const std::string_view action = path.substr(slash + 1);
    if (slash < admin.prefix.size() || std::find(admin.actions.begin(), admin.actions.end(), action) == admin.actions.end()) {
      break;
    }
    return std::string(admin.prefix) + ":name/" + std::string(action);
  }
  return "other";
}

void HttpMetrics::observe(const http::HttpRequest& request, int status, double duration_s) {
  const std::string route = route_label(request.path);
  requests_.Add({{"route", route}, {"code", std::to_string(status)}}).Increment();
  durations_.series({{"route", route}}).Observe(duration_s);
}

void register_process_metrics(prometheus::Registry& registry) {
  prometheus::BuildGauge()
      .Name("aegaeon_build_info")
      .Help("Always 1; the version label says which aegaeon build is running")
      .Register(registry)
      .Add({{"version", AEGAEON_VERSION}})
      .Set(1);
  prometheus::BuildGauge()
      .Name("process_start_time_seconds")
      .Help("Start time of the process since the Unix epoch in seconds")
      .Register(registry)
      .Add({})
      .Set(static_cast<double>(std::time(nullptr)));
}

}  // namespace aegaeon::cmd
