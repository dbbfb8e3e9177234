// Target "http_request": whatever a client sends to the real HttpServer (kj-http on a
// KjRuntime) over loopback. The server must answer or close within the deadline and keep
// answering /health afterwards.
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <string>

#include "rpc/http/http_server.hpp"
#include "rpc/http/openai_api.hpp"
#include "rpc/kj_runtime.hpp"
#include "tests/fuzz/fuzz_targets.hpp"
#include "tests/fuzz/loopback_exchange.hpp"

namespace aegaeon::fuzz {
namespace {

constexpr auto kDeadline = std::chrono::milliseconds(5000);
constexpr int kHealthCheckEvery = 16;

// One server per process; members are destroyed in reverse order, server before runtime.
struct HttpFixture {
  std::unique_ptr<rpc::KjRuntime> runtime;
  std::unique_ptr<rpc::http::HttpServer> server;

  HttpFixture() {
    spdlog::set_level(spdlog::level::off);
    auto rt = rpc::KjRuntime::start();
    if (!rt.ok()) fuzz_fail("KjRuntime::start: " + rt.error().message);
    runtime = std::move(*rt);
    using rpc::http::HttpRequest;
    using rpc::http::HttpResponse;
    using rpc::http::Responder;
    rpc::http::HttpRouter router;
    router.add("GET", "/health", [](const HttpRequest&, const Responder& r) {
      r.respond(HttpResponse::text(200, "ok\n"));
    });
    // Echoes what the server parsed, so headers, query and body all flow into a response.
    router.add("POST", "/v1/echo", [](const HttpRequest& req, const Responder& r) {
      std::string echo = req.method + " " + req.path + "?" + req.query + "\n";
      for (const auto& [name, value] : req.headers) echo += name + ": " + value + "\n";
      if (auto type = req.header("content-type")) echo += std::string(*type) + "\n";
      r.respond(HttpResponse::text(200, echo + req.body));
    });
    // A Server-Sent Events stream written at once and closed.
    router.add("GET", "/v1/stream", [](const HttpRequest& req, const Responder& r) {
      auto stream = r.open_stream(200, {{"X-Query", req.query.substr(0, 64)}});
      stream.send("first");
      stream.send("multi\nline");
      stream.send("[DONE]");
      stream.close();
    });
    // The OpenAI validation behind the real path: 400 with the field, or a complete answer.
    router.add("POST", "/v1/chat/completions", [](const HttpRequest& req, const Responder& r) {
      using Api = core::GenerationRequest::Api;
      auto parsed = rpc::http::openai::parse_generation_request(req.body, Api::kChat);
      if (!parsed.ok()) return r.respond(rpc::http::openai::error_response(parsed.error()));
      rpc::http::openai::ResponseFormatter formatter(Api::kChat, parsed->model, 1, 1700000000, false);
      r.respond(HttpResponse::json(
          200, formatter.full_response("ok", {}, core::FinishReason::kStop, {1, 1})));
    });
    // Drops the Responder without answering: the server must still answer (500).
    router.add("POST", "/v1/drop", [](const HttpRequest&, const Responder&) {});
    rpc::http::HttpServerOptions options;
    options.max_body_bytes = 4096;   // small limits so inputs reach the 413 and 431 paths
    options.max_header_bytes = 1024;
    options.drain_timeout = std::chrono::milliseconds(1000);
    auto started = rpc::http::HttpServer::start(*runtime, options, std::move(router));
    if (!started.ok()) fuzz_fail("HttpServer::start: " + started.error().message);
    server = std::move(*started);
  }

  void check_health() const {
    static const std::string kRequest =
        "GET /health HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
    auto reply = loopback_exchange(server->port(), reinterpret_cast<const std::uint8_t*>(kRequest.data()),
                                   kRequest.size(), kDeadline);
    if (!reply.closed || reply.bytes.rfind("HTTP/1.1 200", 0) != 0) {
      fuzz_fail("the HTTP server stopped answering /health after an input");
    }
  }
};

}  // namespace

int fuzz_http_request(const std::uint8_t* data, std::size_t size) {
  static const HttpFixture fixture;
  static std::atomic<int> inputs{0};
  auto reply = loopback_exchange(fixture.server->port(), data, size, kDeadline);
  if (!reply.closed) fuzz_fail("the HTTP server neither answered nor closed within 5 s");
  if (inputs++ % kHealthCheckEvery == 0) fixture.check_health();
  return 0;
}

}  // namespace aegaeon::fuzz
