// `aegaeon controller`: the cluster's front door. It runs the OpenAI-compatible API (the same
// routes and proxy as `aegaeon serve`) and the registry workers join; each request runs on the
// live worker serving its model (one already running that model unless it is much busier, else
// the least loaded), and moves to another one, from the tokens already streamed, when its worker
// dies.
#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <optional>
#include <set>
#include <pthread.h>

#include "actors/actor_runtime.hpp"
#include "actors/cluster_router.hpp"
#include "cmd/admin_routes.hpp"
#include "cmd/api_routes.hpp"
#include "cmd/cluster_flags.hpp"
#include "cmd/commands.hpp"
#include "cmd/membership.hpp"
#include "cmd/process_signals.hpp"
#include "cmd/tls_config.hpp"
#include "cmd/serve_config.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "rpc/cluster_registry.hpp"
#include "rpc/http/http_server.hpp"
#include "rpc/kj_runtime.hpp"

namespace aegaeon::cmd {
namespace {

struct ControllerOptions {
  ServeOptions serve;  // config file and overrides (http.*, log.*, serve.*_slo_ms)
  std::string listen = "127.0.0.1:7000";
  std::string http;
  std::string cluster_token;
  uint32_t heartbeat_interval_ms = 1000;
  uint32_t heartbeat_timeout_ms = 3000;
  uint32_t join_window_ms = 15000;
  std::string placement_at;  // HOST:PORT of the controller that places models; empty: this one
  std::string name;          // as a proxy, its node name there (default HOST-PID)
  uint32_t rejoin_backoff_max_ms = 5000;
};

// GET /health: the controller and what it knows of each worker.
rpc::http::HttpResponse health(const rpc::ClusterRegistryServer& registry) {
  using json = nlohmann::json;
  auto now = std::chrono::steady_clock::now();
  json workers = json::array();
  for (const auto& node : registry.nodes()) {
    json models = json::array();
    for (const auto& model : node.registration.served_models) models.push_back(model.name);
    workers.push_back({{"node_id", node.node_id},
                       {"name", node.registration.node_name},
                       {"roles", node.registration.roles},
                       {"models", models},
                       {"running", node.last_heartbeat.running_requests},
                       {"waiting", node.last_heartbeat.waiting_requests},
                       {"last_seen_s", std::chrono::duration<double>(now - node.last_seen).count()}});
  }
  json body = {{"status", workers.empty() ? "no_workers" : "ok"},
               {"version", AEGAEON_VERSION},
               {"role", "controller"},
               {"workers", workers}};
  return rpc::http::HttpResponse::json(200, body.dump());
}

void run_controller(ControllerOptions options) {
  if (!options.http.empty()) {
    HostPort http = parse_host_port(options.http, "--http");
    options.serve.host = http.host;
    options.serve.port = http.port;
  }
  core::Config config = load_serve_config(options.serve);
  if (auto logging = core::init_logging(config.log); !logging.ok()) {
    throw CommandError(logging.error().message, 2);
  }
  check_admin_config(config.admin);
  HostPort listen = parse_host_port(options.listen, "--listen");
  std::optional<HostPort> placement_at;
  if (!options.placement_at.empty()) placement_at = parse_host_port(options.placement_at, "--placement-at");
  if (options.name.empty()) options.name = default_node_name();
  if (options.cluster_token.empty()) throw CommandError("--cluster-token is required", 2);
  if (options.heartbeat_timeout_ms <= options.heartbeat_interval_ms) {
    throw CommandError("--heartbeat-timeout-ms (" + std::to_string(options.heartbeat_timeout_ms) +
                           ") must exceed --heartbeat-interval-ms (" +
                           std::to_string(options.heartbeat_interval_ms) + ")",
                       2);
  }

  // Certificates load before anything starts: a bad file is a start-up error naming its key.
  const auto tls = http_tls(config.http);
  const auto cluster_server_tls = cluster_tls(config.cluster, rpc::TlsContext::Side::kServer);
  // Joining the controller at --placement-at, this one is a client of the same cluster CA.
  const auto cluster_client_tls = placement_at ? cluster_tls(config.cluster, rpc::TlsContext::Side::kClient) : nullptr;

  const ProcessSignals signals;  // before any thread starts
  prometheus::Registry registry;
  register_process_metrics(registry);
  HttpMetrics http_metrics(registry);
  TlsMetrics tls_metrics(registry);
  auto& workers_gauge = prometheus::BuildGauge()
                            .Name("aegaeon_cluster_workers")
                            .Help("Workers registered with this controller")
                            .Register(registry)
                            .Add({});
  auto& departures = prometheus::BuildCounter()
                         .Name("aegaeon_cluster_worker_departures_total")
                         .Help("Workers dropped, by reason: connection_lost or heartbeat_timeout")
                         .Register(registry);

  auto actor_runtime = std::make_unique<actors::ActorRuntime>();
  auto kj = rpc::KjRuntime::start();
  if (!kj.ok()) throw CommandError(kj.error().message);
  std::unique_ptr<rpc::KjRuntime> kj_runtime = std::move(*kj);

  auto catalog = std::make_shared<actors::ClusterCatalog>();
  rpc::ClusterRegistryServer::Options cluster;
  cluster.host = listen.host;
  cluster.port = listen.port;
  cluster.cluster_token = options.cluster_token;
  cluster.heartbeat_interval_ms = options.heartbeat_interval_ms;
  cluster.heartbeat_timeout_ms = options.heartbeat_timeout_ms;
  cluster.tls = cluster_server_tls;
  cluster.on_tls_refused = tls_metrics.observer("cluster");
  // Proxy controllers reporting here are nodes too, but not workers (kj thread only).
  auto reporting_only = std::make_shared<std::set<uint64_t>>();
  cluster.on_register = [catalog, &workers_gauge, reporting_only](const rpc::RegisteredNode& node) {
    if (!node.can_generate) {
      reporting_only->insert(node.node_id);
      return;
    }
    workers_gauge.Increment();
    if (auto added = catalog->add(node.registration); !added.ok()) {
      spdlog::error("cluster: cannot use the models of node {}: {}", node.node_id, added.error().message);
    }
  };
  cluster.on_leave = [&workers_gauge, &departures, reporting_only](uint64_t node_id, rpc::LeaveReason reason,
                                                                   const std::string&) {
    if (reporting_only->erase(node_id) != 0) return;
    workers_gauge.Decrement();
    departures.Add({{"reason", rpc::to_string(reason)}}).Increment();
  };
  auto started = rpc::ClusterRegistryServer::start(*kj_runtime, cluster);
  if (!started.ok()) throw CommandError(started.error().message);
  std::unique_ptr<rpc::ClusterRegistryServer> cluster_server = std::move(*started);

  policy::Slo slo{config.serve.ttft_slo_ms / 1000.0, config.serve.tbt_slo_ms / 1000.0};
  auto front = std::make_unique<actors::ClusterFront>(actor_runtime->system(), *cluster_server, catalog, slo,
                                                      registry, !placement_at,
                                                      std::chrono::milliseconds(options.join_window_ms));

  rpc::http::HttpRouter router;
  router.add("GET", "/health", [&cluster_server](const rpc::http::HttpRequest&, const rpc::http::Responder& responder) {
    responder.respond(health(*cluster_server));
  });
  router.add("GET", "/metrics", [&registry](const rpc::http::HttpRequest&, const rpc::http::Responder& responder) {
    responder.respond({200, std::string(core::kPrometheusContentType), core::serialize_metrics(registry), {}});
  });
  ModelFront model_front{
      [&front](core::GenerationRequest request, const rpc::http::Responder& responder) {
        front->submit(std::move(request), responder);
      },
      [&front] { return front->models(); },
      [catalog] { return catalog->current(); },
  };
  add_api_routes(router, model_front, config.http.api_key);
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
  spdlog::info("aegaeon {} controller: workers join {}:{}{}; serving on {}://{}:{}", AEGAEON_VERSION, listen.host,
               cluster_server->port(), cluster_server_tls ? " (mutual TLS)" : "", (*server)->scheme(), config.http.host,
               (*server)->port());

  // Workers' state and drain on the admin port (admin.*), apart from the public API.
  rpc::http::HttpRouter admin_router;
  if (config.admin.enabled) add_cluster_admin_routes(admin_router, *front, config.admin.api_key);
  auto admin_server = start_admin_server(*kj_runtime, config.admin, std::move(admin_router), "GET /admin/workers",
                                         http_metrics, tls, tls_metrics.observer("admin"));

  // A proxy controller reports the requests waiting here for a model to the controller that
  // places models, as a node of its own (it offers no generations).
  std::unique_ptr<Membership> placement_link;
  if (placement_at) {
    core::NodeRegistration me;
    me.node_name = options.name;
    me.protocol_version = rpc::cluster_protocol_version();
    me.roles = {"proxy"};
    placement_link = std::make_unique<Membership>(
        *kj_runtime, *placement_at, cluster_client_tls, me, options.cluster_token, nullptr,
        [&front] {
          core::HeartbeatReport beat;
          beat.model_requests = front->waiting();
          return beat;
        },
        std::chrono::milliseconds(options.rejoin_backoff_max_ms));
    spdlog::info("models are placed by the controller at {}:{}; this one routes by what workers hold",
                 placement_at->host, placement_at->port);
  }

  const int received = signals.wait_for_stop({tls, cluster_server_tls, cluster_client_tls});
  std::optional<std::string> refusal = placement_link ? placement_link->refusal() : std::nullopt;
  if (!refusal) spdlog::info("received {}: draining in-flight requests", received == SIGINT ? "SIGINT" : "SIGTERM");
  placement_link.reset();

  // HTTP drains; then the actors stop (the router calls into the registry), then the registry and
  // the kj loop go, then the actor system.
  if (admin_server) admin_server->shutdown();
  admin_server.reset();
  (*server)->shutdown();
  server->reset();
  front->stop();
  actor_runtime->system().await_all_actors_done();
  cluster_server.reset();
  kj_runtime.reset();
  front.reset();
  actor_runtime.reset();
  if (refusal) throw CommandError("the controller at --placement-at refused this one: " + *refusal, 2);
  spdlog::info("controller stopped cleanly");
}

}  // namespace

void add_controller_command(CLI::App& app) {
  auto options = std::make_shared<ControllerOptions>();
  auto* sub = app.add_subcommand(
      "controller",
      "Run the cluster's front door: the OpenAI-compatible API and the registry that workers\n"
      "(aegaeon worker --join) join. A request goes to a worker already running its model unless\n"
      "that one is much busier, else to the least loaded worker serving the model; it moves to\n"
      "another one when its worker dies. Stops gracefully on SIGINT/SIGTERM.");
  sub->footer(
      "Admin API (workers' state, drain: no new work, in-flight generations finish) on a port and\n"
      "key of its own: --set admin.enabled=true --set admin.api_key=KEY [--set admin.port=8001];\n"
      "GET /admin/workers, POST /admin/workers/NAME/drain|undrain; see docs/api.md.");
  sub->add_option("--listen", options->listen, "Cluster RPC address workers join, HOST:PORT (default 127.0.0.1:7000)");
  sub->add_option("--http", options->http, "HTTP API address, HOST:PORT (default http.host:http.port)");
  sub->add_option("--cluster-token", options->cluster_token,
                  "Shared secret workers must present (or AEGAEON_CLUSTER_TOKEN)")
      ->envname("AEGAEON_CLUSTER_TOKEN");
  sub->add_option("--placement-at", options->placement_at,
                  "Run as a proxy controller: the controller at HOST:PORT (its --listen) places models\n"
                  "on the workers' host caches, and this one reports the requests waiting here to it\n"
                  "(workers join both: aegaeon worker --join A,B). Default: this controller places");
  sub->add_option("--name", options->name, "This controller's node name at --placement-at (default HOST-PID)");
  sub->add_option("--heartbeat-interval-ms", options->heartbeat_interval_ms,
                  "How often workers send a heartbeat (default 1000)")
      ->check(CLI::Range(10u, 60000u));
  sub->add_option("--heartbeat-timeout-ms", options->heartbeat_timeout_ms,
                  "A worker silent this long is dropped and its requests move (default 3000);\n"
                  "this is how fast a network partition is detected")
      ->check(CLI::Range(20u, 600000u));
  sub->add_option("--join-window-ms", options->join_window_ms,
                  "For this long after it starts, a request for a model no worker has registered yet gets\n"
                  "503 with Retry-After (the workers of a restarted controller are joining again), then 404\n"
                  "(default 15000; workers re-join within their --rejoin-backoff-max-ms, 5000 by default)")
      ->check(CLI::Range(0u, 600000u));
  add_config_options(*sub, options->serve);
  sub->callback([options] { run_controller(*options); });
}

}  // namespace aegaeon::cmd
