// The HTTP/1.1 server (kj-http on the KjRuntime thread): exact-path routing, body size limits,
// Server-Sent Events, graceful drain. The OpenAI API, /health and /metrics are routes on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "rpc/http/http_types.hpp"
#include "rpc/tls.hpp"

namespace aegaeon::rpc {
class KjRuntime;
}

namespace aegaeon::rpc::http {

/// Maps (method, path) to handlers. Unknown paths answer 404, known paths with another method
/// 405 with an Allow header.
class HttpRouter {
 public:
  /// Registers `handler` for `method` (e.g. "GET") on the exact `path` (e.g. "/health").
  HttpRouter& add(std::string method, std::string path, Handler handler);
  /// Registers `handler` for `method` on every path that starts with `prefix` and has no exact
  /// route (e.g. "/admin/models/" for per-model routes); the handler reads the rest of the path.
  HttpRouter& add_prefix(std::string method, std::string prefix, Handler handler);

  /// The handler for a request, or an error response (404/405) to send instead.
  [[nodiscard]] const Handler* find(const std::string& method, const std::string& path,
                                    HttpResponse& not_routed) const;

 private:
  std::map<std::string, std::map<std::string, Handler>> routes_;    // path -> method -> handler
  std::map<std::string, std::map<std::string, Handler>> prefixes_;  // prefix -> method -> handler
};

/// Called on the kj thread after every response (or stream) ends; for metrics and access logs.
using CompletionObserver =
    std::function<void(const HttpRequest& request, int status, double duration_s)>;

/// Listening address and limits.
struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                        ///< 0 picks an ephemeral port (see HttpServer::port)
  uint64_t max_body_bytes = 1 << 20;        ///< larger bodies get 413
  uint64_t max_header_bytes = 64 << 10;     ///< larger header blocks get 431
  std::chrono::milliseconds drain_timeout{5000};  ///< shutdown waits this long for in-flight work
  CompletionObserver on_complete;
  /// HTTPS when set (a server-side context); connections whose handshake fails are refused,
  /// logged and passed to on_tls_refused.
  std::shared_ptr<const TlsContext> tls;
  TlsRefusalObserver on_tls_refused;
};

/// A running server. Create and destroy it from a thread other than the kj thread.
class HttpServer {
 public:
  /// Binds and starts serving; fails with kUnavailable naming the address if it cannot bind.
  static core::Result<std::unique_ptr<HttpServer>> start(KjRuntime& runtime,
                                                         HttpServerOptions options,
                                                         HttpRouter router);
  /// Shuts down (see shutdown()) if that has not happened yet.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The bound port (the ephemeral one when options.port was 0).
  [[nodiscard]] uint16_t port() const;
  /// "https" or "http", for the URLs a log line shows.
  [[nodiscard]] const char* scheme() const;

  /// Stops accepting connections and requests, lets in-flight requests finish for up to
  /// drain_timeout, then cancels what is left (their streams see cancelled()). Blocks until done.
  void shutdown();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::rpc::http
