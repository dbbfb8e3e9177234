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
#include "cmd/admin_routes.hpp"
#include "cmd/api_routes.hpp"
#include "cmd/commands.hpp"
#include "cmd/demo_models.hpp"
#include "cmd/process_signals.hpp"
#include "cmd/serve_config.hpp"
#include "cmd/tls_config.hpp"
#include "core/config.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "gpu/backend/cuda/cuda_backend.hpp"
#include "rpc/http/http_server.hpp"
#include "rpc/http/openai_api.hpp"
#include "rpc/kj_runtime.hpp"

namespace aegaeon::cmd {

void add_config_options(CLI::App& command, ServeOptions& options) {
  command.add_option("-c,--config", options.config_path, "YAML configuration file")
      ->check(CLI::ExistingFile);
  command.add_option("--set", options.overrides,
                     "Override a configuration key, e.g. --set http.port=9000 (repeatable)");
}

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
  if (!options.policy.empty()) {
    // Through the config's own validation, so the error names the key and the allowed values.
    auto applied = core::apply_override(config, "serve.policy=" + options.policy);
    if (!applied.ok()) throw CommandError("--policy " + applied.error().message, 2);
  }
  return config;
}

actors::ServingOptions serving_options(const core::ServeConfig& serve) {
  auto models = serve.models_dir.empty() ? ensure_demo_models(serve.data_dir) : models_in(serve.models_dir);
  if (!models.ok()) throw CommandError(models.error().message, 2);
  actors::ServingOptions options;
  options.models = std::move(*models);
  options.prefill_devices = static_cast<int>(serve.prefill_devices);
  options.decode_devices = static_cast<int>(serve.decode_devices);
  if (serve.device != "cpu" && !backend::cuda::parse_cuda_device(serve.device).ok()) {
    throw CommandError("serve.device: '" + serve.device + "': expected cpu, cuda or cuda:N", 2);
  }
  options.device.device = serve.device;
  options.device.threads = static_cast<int>(serve.device_threads);
  options.device.kv_bytes = serve.kv_bytes;
  options.slo = {serve.ttft_slo_ms / 1000.0, serve.tbt_slo_ms / 1000.0};
  options.admission.enabled = serve.admission;
  options.max_prompt_tokens = static_cast<std::int32_t>(serve.max_prompt_tokens);
  auto policy = policy::parse_serving_policy(serve.policy);
  if (!policy.ok()) throw CommandError(policy.error().message, 2);
  options.policy = *policy;
  options.device.weight_slots = serve.weight_slots != 0 ? static_cast<int>(serve.weight_slots)
                                                        : policy::default_weight_slots(*policy);
  return options;
}

namespace {

void run_serve(const ServeOptions& options) {
  core::Config config = load_serve_config(options);
  if (auto logging = core::init_logging(config.log); !logging.ok()) {
    throw CommandError(logging.error().message, 2);
  }
  check_admin_config(config.admin);
  const auto tls = http_tls(config.http);  // before anything starts: a bad file is a start-up error

  const ProcessSignals signals;  // before any thread starts
  prometheus::Registry registry;
  register_process_metrics(registry);
  HttpMetrics http_metrics(registry);
  TlsMetrics tls_metrics(registry);

  auto actor_runtime = std::make_unique<actors::ActorRuntime>();
  auto status = actors::spawn_status_actor(actor_runtime->system(), {AEGAEON_VERSION, "local"});
  auto node = actors::ServingNode::start(actor_runtime->system(), serving_options(config.serve), registry);
  if (!node.ok()) throw CommandError(node.error().message);
  std::unique_ptr<actors::ServingNode> serving = std::move(*node);
  if (const std::uint64_t limit = config.serve.host_cache_bytes; limit != 0) {
    std::uint64_t total = 0;
    for (const auto& entry : serving->catalog().entries()) total += serving->weight_bytes(entry.id);
    if (total > limit) {
      serving->stop();
      actors::stop_actor(status);
      throw CommandError("serve.host_cache_bytes: the models' weights take " + std::to_string(total) +
                             " bytes, more than the limit of " + std::to_string(limit) +
                             " (aegaeon serve holds every model; raise it, or run a cluster whose workers share them)",
                         2);
    }
  }

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
                   200, std::string(core::kPrometheusContentType), core::serialize_metrics(registry), {}};
               responder.respond(std::move(response));
             });
  add_api_routes(router, front_of(*serving), config.http.api_key,
                 static_cast<std::int32_t>(config.serve.max_tokens_limit));
  rpc::http::HttpServerOptions http_options;
  http_options.host = config.http.host;
  http_options.port = config.http.port;
  http_options.max_body_bytes = config.http.max_body_bytes;
  http_options.max_header_bytes = config.http.max_header_bytes;
  http_options.on_complete = [&http_metrics](const rpc::http::HttpRequest& request, int status_code,
                                             double duration_s) {
    http_metrics.observe(request, status_code, duration_s);
  };
  http_options.tls = tls;
  http_options.on_tls_refused = tls_metrics.observer("http");
  auto server = rpc::http::HttpServer::start(*kj_runtime, http_options, std::move(router));
  if (!server.ok()) throw CommandError(server.error().message);
  const char* scheme = (*server)->scheme();
  spdlog::info("aegaeon {} serving on {}://{}:{} (try /v1/models, /health, /metrics)", AEGAEON_VERSION, scheme,
               config.http.host, (*server)->port());
  spdlog::info("try: curl -s {}{}://{}:{}/v1/completions -d '{{\"model\":\"{}\",\"prompt\":\"Hello\",\"max_tokens\":16}}'",
               tls ? "--cacert CA.pem " : "", scheme, config.http.host, (*server)->port(),
               serving->models().front().name);

  // The admin API listens apart, so firewalls and keys can treat it apart from the public API.
  rpc::http::HttpRouter admin_router;
  if (config.admin.enabled) add_admin_routes(admin_router, *serving, config.admin.api_key);
  auto admin_server = start_admin_server(*kj_runtime, config.admin, std::move(admin_router), "GET /admin/models",
                                         http_metrics, tls, tls_metrics.observer("admin"));

  const int received = signals.wait_for_stop({tls});
  spdlog::info("received {}: draining in-flight requests", received == SIGINT ? "SIGINT" : "SIGTERM");

  // Order matters (DESIGN.md rule 4): HTTP drains, the kj loop stops, then the actors.
  if (admin_server) admin_server->shutdown();
  admin_server.reset();
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
      "Stops gracefully on SIGINT/SIGTERM: in-flight requests finish or are cancelled.\n"
      "Limits: http.max_body_bytes, serve.max_prompt_tokens, serve.max_tokens_limit.\n"
      "Admin API (model state, drain, pin, unload and load) on a port and key of its own: --set admin.enabled=true\n"
      "--set admin.api_key=KEY [--set admin.port=8001]; see docs/api.md.");
  add_config_options(*sub, *options);
  sub->add_option("--host", options->host, "Address to listen on (default 127.0.0.1)");
  sub->add_option("--port", options->port, "Port to listen on; 0 picks a free one (default 8000)")
      ->check(CLI::Range(0, 65535));
  sub->add_option("--policy", options->policy,
                  "Serving policy: aegaeon (token-level switching, default), request-level "
                  "(a model keeps the device until its batch finishes) or static (one model per "
                  "device, no switching); same as --set serve.policy=NAME");
  sub->callback([options] { run_serve(*options); });
}

}  // namespace aegaeon::cmd
