// `aegaeon serve`: the all-in-one process — the serving runtime (proxy, prefill, decode and
// gpu_worker actors over the CPU backend) behind the OpenAI-compatible API, plus /health
// (answered by the status actor) and /metrics.
#include <CLI/CLI.hpp>
#include <caf/actor.hpp>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <ctime>
#include <set>
#include <pthread.h>

#include "actors/actor_runtime.hpp"
#include "actors/model_catalog.hpp"
#include "actors/serving_node.hpp"
#include "actors/status_actor.hpp"
#include "cmd/demo_models.hpp"
#include "cmd/commands.hpp"
#include "core/config.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "rpc/http/http_server.hpp"
#include "rpc/http/openai_api.hpp"
#include "rpc/kj_runtime.hpp"

namespace aegaeon::cmd {
namespace {

struct ServeOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string host;
  int port = -1;
};

// Config from the file (if any), then --set overrides, then the dedicated flags.
core::Config load_serve_config(const ServeOptions& options) {
  core::Config config;
  if (!options.config_path.empty()) {
    auto loaded = core::load_config_file(options.config_path);
    if (!loaded.ok()) throw CommandError(loaded.error().message, 2);
    config = std::move(*loaded);
  }
  for (const auto& override_text : options.overrides) {
    auto applied = core::apply_override(config, override_text);
    if (!applied.ok()) throw CommandError("--set " + applied.error().message, 2);
  }
  if (!options.host.empty()) config.http.host = options.host;
  if (options.port >= 0) config.http.port = static_cast<uint16_t>(options.port);
  return config;
}

// HTTP metrics, labelled by route so unknown paths cannot blow up cardinality.
class HttpMetrics {
 public:
  explicit HttpMetrics(core::Registry& registry)
      : requests_(core::build_counter()
                      .name("aegaeon_http_requests_total")
                      .help("HTTP requests answered, by route and status code")
                      .register_on(registry)),
        durations_(core::build_histogram()
                       .name("aegaeon_http_request_duration_seconds")
                       .help("Time from request to the end of its response, by route")
                       .buckets(core::exponential_buckets(0.0005, 4, 10))
                       .register_on(registry)) {}

  void observe(const rpc::http::HttpRequest& request, int status, double duration_s,
               bool routed) {
    std::string route = routed ? request.path : "other";
    requests_.add({{"route", route}, {"code", std::to_string(status)}}).increment();
    durations_.add({{"route", route}}).observe(duration_s);
  }

 private:
  core::Family<core::Counter>& requests_;
  core::Family<core::Histogram>& durations_;
};

// The serving runtime's options from the configuration (the demo set when no models_dir).
actors::ServingOptions serving_options(const core::ServeConfig& serve) {
  auto models = serve.models_dir.empty() ? ensure_demo_models(serve.data_dir) : models_in(serve.models_dir);
  if (!models.ok()) throw CommandError(models.error().message, 2);
  actors::ServingOptions options;
  options.models = std::move(*models);
  options.prefill_devices = static_cast<int>(serve.prefill_devices);
  options.decode_devices = static_cast<int>(serve.decode_devices);
  options.device.threads = static_cast<int>(serve.device_threads);
  options.device.kv_bytes = serve.kv_bytes;
  options.slo = {serve.ttft_slo_ms / 1000.0, serve.tbt_slo_ms / 1000.0};
  options.admission.enabled = serve.admission;
  auto policy = policy::parse_serving_policy(serve.policy);
  if (!policy.ok()) throw CommandError(policy.error().message, 2);
  options.policy = *policy;
  return options;
}

// True when the request carries the configured API key (always, when none is configured).
bool authorized(const std::string& api_key, const rpc::http::HttpRequest& request) {
  if (api_key.empty()) return true;
  auto header = request.header("Authorization");
  return header && *header == "Bearer " + api_key;
}

// The OpenAI-compatible API and the tokenizer endpoints, answered by `node`.
void add_api_routes(rpc::http::HttpRouter& router, const actors::ServingNode& node,
                    const std::string& api_key) {
  namespace http = rpc::http;
  using json = nlohmann::json;
  auto guard = [api_key](http::Handler handler) -> http::Handler {
    return [api_key, handler = std::move(handler)](const http::HttpRequest& request,
                                                   const http::Responder& responder) {
      if (!authorized(api_key, request)) {
        responder.respond(http::openai::error_response(core::error(
            core::ErrorCode::kUnauthenticated, "missing or wrong API key (Authorization: Bearer ...)")));
        return;
      }
      handler(request, responder);
    };
  };
  auto generation = [&node](core::GenerationRequest::Api api) -> http::Handler {
    return [&node, api](const http::HttpRequest& request, const http::Responder& responder) {
      auto parsed = http::openai::parse_generation_request(request.body, api);
      if (!parsed.ok()) {
        responder.respond(http::openai::error_response(parsed.error()));
        return;
      }
      node.submit(std::move(*parsed), responder);
    };
  };
  router.add("POST", "/v1/chat/completions", guard(generation(core::GenerationRequest::Api::kChat)));
  router.add("POST", "/v1/completions", guard(generation(core::GenerationRequest::Api::kCompletion)));
  router.add("GET", "/v1/models", guard([&node](const http::HttpRequest&, const http::Responder& responder) {
    json data = json::array();
    for (const auto& model : node.models()) {
      data.push_back({{"id", model.name}, {"object", "model"}, {"owned_by", "aegaeon"},
                      {"state", model.state}, {"max_model_len", model.max_context_tokens}});
    }
    responder.respond(http::HttpResponse::json(200, json{{"object", "list"}, {"data", data}}.dump()));
  }));
  // vLLM-style tokenizer endpoints: {"model", "prompt"} → tokens, {"model", "tokens"} → prompt.
  auto tokenizer_of = [&node](const json& body) -> core::Result<const actors::CatalogEntry*> {
    if (!body.is_object() || !body.contains("model") || !body["model"].is_string()) {
      return core::Error{core::ErrorCode::kInvalidArgument, "'model' is required", "model"};
    }
    const auto* entry = node.catalog().find(body["model"].get<std::string>());
    if (entry == nullptr) {
      return core::Error{core::ErrorCode::kNotFound, "model '" + body["model"].get<std::string>() + "' is not served", "model"};
    }
    return entry;
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
    auto tokens = (*entry)->tokenizer.encode(body["prompt"].get<std::string>(), special);
    responder.respond(http::HttpResponse::json(200, json{{"tokens", tokens}, {"count", tokens.size()},
                                                         {"max_model_len", (*entry)->max_context_tokens}}.dump()));
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
        200, json{{"prompt", (*entry)->tokenizer.decode(tokens, false)}}.dump(-1, ' ', false, json::error_handler_t::replace)));
  }));
}

void run_serve(const ServeOptions& options) {
  core::Config config = load_serve_config(options);
  if (auto logging = core::init_logging(config.log); !logging.ok()) {
    throw CommandError(logging.error().message, 2);
  }

  // Block the shutdown signals before any thread starts, so every thread inherits the mask and
  // only sigwait() below sees them.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGINT);
  sigaddset(&shutdown_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  core::Registry registry;
  core::build_gauge()
      .name("aegaeon_build_info")
      .help("Always 1; the version label says which aegaeon build is running")
      .register_on(registry)
      .add({{"version", AEGAEON_VERSION}})
      .set(1);
  core::build_gauge()
      .name("process_start_time_seconds")
      .help("Start time of the process since the Unix epoch in seconds")
      .register_on(registry)
      .add({})
      .set(static_cast<double>(std::time(nullptr)));
  HttpMetrics http_metrics(registry);

  auto actor_runtime = std::make_unique<actors::ActorRuntime>();
  auto status = actors::spawn_status_actor(actor_runtime->system(), {AEGAEON_VERSION, "local"});
  auto node = actors::ServingNode::start(actor_runtime->system(), serving_options(config.serve), registry);
  if (!node.ok()) throw CommandError(node.error().message);
  std::unique_ptr<actors::ServingNode> serving = std::move(*node);

  auto kj = rpc::KjRuntime::start();
  if (!kj.ok()) throw CommandError(kj.error().message);
  std::unique_ptr<rpc::KjRuntime> kj_runtime = std::move(*kj);

  rpc::http::HttpRouter router;
  router.add("GET", "/health",
             [status](const rpc::http::HttpRequest&, const rpc::http::Responder& responder) {
               actors::request_health(status, responder);
             });
  router.add("GET", "/metrics",
             [&registry](const rpc::http::HttpRequest&, const rpc::http::Responder& responder) {
               rpc::http::HttpResponse response{
                   200, "text/plain; version=0.0.4; charset=utf-8", registry.serialize(), {}};
               responder.respond(std::move(response));
             });
  add_api_routes(router, *serving, config.http.api_key);
  rpc::http::HttpServerOptions http_options;
  http_options.host = config.http.host;
  http_options.port = config.http.port;
  http_options.max_body_bytes = config.http.max_body_bytes;
  http_options.max_header_bytes = config.http.max_header_bytes;
  http_options.on_complete = [&http_metrics](const rpc::http::HttpRequest& request, int status_code,
                                             double duration_s) {
    static const std::set<std::string> kRoutes = {"/health", "/metrics", "/v1/chat/completions",
                                                  "/v1/completions", "/v1/models", "/tokenize", "/detokenize"};
    bool routed = kRoutes.count(request.path) != 0;
    http_metrics.observe(request, status_code, duration_s, routed);
  };
  auto server = rpc::http::HttpServer::start(*kj_runtime, http_options, std::move(router));
  if (!server.ok()) throw CommandError(server.error().message);
  spdlog::info("aegaeon {} serving on http://{}:{} (try /v1/models, /health, /metrics)", AEGAEON_VERSION,
               config.http.host, (*server)->port());
  spdlog::info("try: curl -s http://{}:{}/v1/completions -d '{{\"model\":\"{}\",\"prompt\":\"Hello\",\"max_tokens\":16}}'",
               config.http.host, (*server)->port(), serving->models().front().name);

  int received = 0;
  sigwait(&shutdown_signals, &received);
  spdlog::info("received {}: draining in-flight requests", received == SIGINT ? "SIGINT" : "SIGTERM");

  // Order matters (DESIGN.md rule 4): HTTP drains, the kj loop stops, then the actors.
  (*server)->shutdown();
  server->reset();
  kj_runtime.reset();
  serving.reset();  // stops the serving actors and drops its handles to them
  actors::stop_actor(status);
  actor_runtime.reset();
  spdlog::info("aegaeon stopped cleanly");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto options = std::make_shared<ServeOptions>();
  auto* sub = app.add_subcommand(
      "serve",
      "Serve the OpenAI-compatible API in one process (HTTP, actors, execution backend).\n"
      "With no --config it runs its embedded default on 127.0.0.1:8000.\n"
      "Stops gracefully on SIGINT/SIGTERM: in-flight requests finish or are cancelled.");
  sub->add_option("-c,--config", options->config_path, "YAML configuration file")
      ->check(CLI::ExistingFile);
  sub->add_option("--set", options->overrides,
                  "Override a configuration key, e.g. --set http.port=9000 (repeatable)");
  sub->add_option("--host", options->host, "Address to listen on (default 127.0.0.1)");
  sub->add_option("--port", options->port, "Port to listen on; 0 picks a free one (default 8000)")
      ->check(CLI::Range(0, 65535));
  sub->callback([options] { run_serve(*options); });
}

}  // namespace aegaeon::cmd
