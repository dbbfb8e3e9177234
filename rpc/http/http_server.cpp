#include "rpc/http/http_server.hpp"

#include <kj/compat/http.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <future>

#include <sys/socket.h>

#include "rpc/http/exchange.hpp"
#include "rpc/kj_context.hpp"
#include "rpc/kj_runtime.hpp"
#include "rpc/tls_stream.hpp"

namespace aegaeon::rpc::http {
namespace {

using Phase = detail::Exchange::Phase;
using Clock = std::chrono::steady_clock;

kj::StringPtr status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : "Error";
  }
}

kj::StringPtr ptr(const std::string& s) { return kj::StringPtr(s.c_str(), s.size()); }

// Fills kj headers from a response; the strings must outlive the send() call.
void fill_headers(kj::HttpHeaders& headers, const HttpResponse& response) {
  headers.set(kj::HttpHeaderId::CONTENT_TYPE, ptr(response.content_type));
  for (const auto& [name, value] : response.headers) headers.add(ptr(name), ptr(value));
}

// Copies out everything a pump step needs under the lock.
struct Snapshot {
  Phase phase;
  std::string batch;
  bool closed;
  bool cancelled;
};

// Resolves once the client has closed its end of the connection. While a non-streaming answer
// is being computed nothing is written, and kj reports a hang-up only through a failed write or
// POLLHUP (which a client's FIN alone does not raise), so the socket is peeked periodically.
kj::Promise<void> client_hung_up(kj::Timer& timer, int fd) {
  constexpr auto kInterval = 100 * kj::MILLISECONDS;
  return timer.afterDelay(kInterval).then([&timer, fd]() -> kj::Promise<void> {
    char byte;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    const bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    if (gone) return kj::READY_NOW;
    return client_hung_up(timer, fd);  // still there (or pipelining its next request)
  });
}

}  // namespace

HttpRouter& HttpRouter::add(std::string method, std::string path, Handler handler) {
  routes_[std::move(path)][std::move(method)] = std::move(handler);
  return *this;
}

HttpRouter& HttpRouter::add_prefix(std::string method, std::string prefix, Handler handler) {
  prefixes_[std::move(prefix)][std::move(method)] = std::move(handler);
  return *this;
}

const Handler* HttpRouter::find(const std::string& method, const std::string& path,
                                HttpResponse& not_routed) const {
  auto by_path = routes_.find(path);
  if (by_path == routes_.end()) {
    // The longest registered prefix of `path` (map order: a prefix sorts before its extensions).
    by_path = prefixes_.end();
    for (auto it = prefixes_.begin(); it != prefixes_.end(); ++it) {
      if (path.starts_with(it->first)) by_path = it;
    }
    if (by_path == prefixes_.end()) {
      not_routed = HttpResponse::error(404, "no route for " + path, "invalid_request_error");
      return nullptr;
    }
  }
  auto by_method = by_path->second.find(method);
  if (by_method == by_path->second.end()) {
    std::string allow;
    for (const auto& [m, _] : by_path->second) allow += (allow.empty() ? "" : ", ") + m;
    not_routed = HttpResponse::error(405, method + " is not allowed on " + path + " (allowed: " +
                                              allow + ")", "invalid_request_error");
    not_routed.headers.emplace_back("Allow", allow);
    return nullptr;
  }
  return &by_method->second;
}

// The kj-side service of one connection: everything here runs on the kj thread.
class KjHttpService final : public kj::HttpService {
 public:
  KjHttpService(const kj::HttpHeaderTable& table, const HttpServerOptions& options,
                const HttpRouter& router, kj::Timer& timer, kj::Maybe<int> connection_fd)
      : table_(table), options_(options), router_(router), timer_(timer), fd_(connection_fd) {}

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                            Response& response) override {
    auto started = Clock::now();
    auto request = std::make_shared<HttpRequest>();
    request->method = kj::str(method).cStr();
    std::string target(url.cStr(), url.size());
    auto question = target.find('?');
    request->path = target.substr(0, question);
    if (question != std::string::npos) request->query = target.substr(question + 1);
    uint64_t header_bytes = 0;
    headers.forEach([&](kj::StringPtr name, kj::StringPtr value) {
      header_bytes += name.size() + value.size() + 4;  // ": " and CRLF
      request->headers.emplace_back(name.cStr(), value.cStr());
    });

    auto exchange = std::make_shared<detail::Exchange>();
    HttpResponse not_routed;
    const Handler* handler = router_.find(request->method, request->path, not_routed);
    kj::Promise<void> answered = nullptr;
    if (header_bytes > options_.max_header_bytes) {
      exchange->phase = Phase::kResponded;
      exchange->response = HttpResponse::error(
          431, "request headers exceed the limit of " + std::to_string(options_.max_header_bytes) +
                   " bytes", "invalid_request_error");
      answered = answer(exchange, response);
    } else if (handler == nullptr) {
      exchange->phase = Phase::kResponded;
      exchange->response = std::move(not_routed);
      answered = answer(exchange, response);
    } else {
      KJ_IF_MAYBE(length, body.tryGetLength()) {
        if (*length > options_.max_body_bytes) {
          exchange->phase = Phase::kResponded;
          exchange->response = too_large();
          return answer(exchange, response).then([this, request, exchange, started] {
            finish(*request, *exchange, started);
          });
        }
      }
      // Read one byte past the limit so an oversize chunked body is told apart from an exact
      // fit; kj fails the read once the limit is passed.
      answered = body.readAllText(options_.max_body_bytes + 1)
                     .then(
                         [this, request, exchange, handler, &response](kj::String text) {
                           if (text.size() > options_.max_body_bytes) {
                             exchange->phase = Phase::kResponded;
                             exchange->response = too_large();
                           } else {
                             request->body.assign(text.cStr(), text.size());
                             dispatch(*handler, *request, exchange);
                           }
                           return answer(exchange, response);
                         },
                         [this, exchange, &response](kj::Exception&& e) {
                           if (e.getType() == kj::Exception::Type::DISCONNECTED) {
                             kj::throwFatalException(kj::mv(e));
                           }
                           exchange->phase = Phase::kResponded;
                           exchange->response = too_large();
                           return answer(exchange, response);
                         });
    }
    // If this promise is dropped (client gone, server shutting down) the handler's side learns
    // it through cancelled() / on_cancel.
    return answered
        .then([this, request, exchange, started] { finish(*request, *exchange, started); })
        .attach(kj::defer([exchange] { exchange->cancel(); }));
  }

 private:
  HttpResponse too_large() const {
    return HttpResponse::error(
        413, "request body exceeds the limit of " + std::to_string(options_.max_body_bytes) + " bytes",
        "invalid_request_error");
  }

  static void dispatch(const Handler& handler, const HttpRequest& request,
                       const std::shared_ptr<detail::Exchange>& exchange) {
    try {
      handler(request, Responder(exchange));
    } catch (const std::exception& e) {
      spdlog::error("handler for {} {} threw: {}", request.method, request.path, e.what());
      Responder(exchange).respond(HttpResponse::error(500, "internal error", "server_error"));
    }
  }

  void finish(const HttpRequest& request, detail::Exchange& exchange, Clock::time_point started) {
    if (!options_.on_complete) return;
    int status;
    {
      std::lock_guard lock(exchange.mutex);
      status = exchange.response.status;
    }
    options_.on_complete(request, status,
                         std::chrono::duration<double>(Clock::now() - started).count());
  }

  // Waits (without blocking the loop) until the handler answers, then writes the answer. A
  // client that hangs up meanwhile cancels the exchange: the handler's side learns it through
  // on_cancel / cancelled() and stops working for nobody.
  kj::Promise<void> answer(std::shared_ptr<detail::Exchange> exchange, Response& response) {
    auto snapshot = take(*exchange);
    if (snapshot.phase == Phase::kPending) {
      if (snapshot.cancelled) return KJ_EXCEPTION(DISCONNECTED, "client hung up before the answer");
      auto changed = wait_for_change(*exchange, /*streaming=*/false);
      KJ_IF_MAYBE(fd, fd_) {
        changed = changed.exclusiveJoin(client_hung_up(timer_, *fd).then([exchange] { exchange->cancel(); }));
      }
      return changed.then([this, exchange, &response]() mutable { return answer(std::move(exchange), response); });
    }
    kj::HttpHeaders headers(table_);
    fill_headers(headers, exchange->response);
    if (snapshot.phase == Phase::kResponded) {
      const auto& body = exchange->response.body;
      auto stream = response.send(exchange->response.status, status_text(exchange->response.status),
                                  headers, body.size());
      auto written = stream->write(body.data(), body.size());
      return written.attach(kj::mv(stream), kj::mv(exchange));
    }
    headers.add("Cache-Control", "no-cache");
    auto stream = response.send(exchange->response.status, status_text(exchange->response.status),
                                headers);
    auto& out = *stream;
    auto disconnected = out.whenWriteDisconnected().then([exchange] { exchange->cancel(); });
    return pump(exchange, out, std::move(snapshot))
        .exclusiveJoin(kj::mv(disconnected))
        .catch_([exchange](kj::Exception&& e) {
          exchange->cancel();  // a failed write means the client is gone
          if (e.getType() != kj::Exception::Type::DISCONNECTED) kj::throwFatalException(kj::mv(e));
        })
        .attach(kj::mv(stream));
  }

  // Writes queued SSE frames until the stream is closed or cancelled.
  kj::Promise<void> pump(std::shared_ptr<detail::Exchange> exchange, kj::AsyncOutputStream& out,
                         Snapshot snapshot) {
    if (snapshot.cancelled) return kj::READY_NOW;
    if (!snapshot.batch.empty()) {
      auto batch = kj::heap<std::string>(std::move(snapshot.batch));
      auto written = out.write(batch->data(), batch->size()).attach(kj::mv(batch));
      return written.then([this, exchange, &out]() mutable {
        auto next = take(*exchange);
        return pump(std::move(exchange), out, std::move(next));
      });
    }
    if (snapshot.closed) return kj::READY_NOW;
    return wait_for_change(*exchange, /*streaming=*/true).then([this, exchange, &out]() mutable {
      auto next = take(*exchange);
      return pump(std::move(exchange), out, std::move(next));
    });
  }

  static Snapshot take(detail::Exchange& exchange) {
    std::lock_guard lock(exchange.mutex);
    Snapshot snapshot{exchange.phase, {}, exchange.stream_closed, exchange.cancelled};
    for (auto& chunk : exchange.chunks) snapshot.batch += chunk;
    exchange.chunks.clear();
    return snapshot;
  }

  // A promise that resolves after the next update() by any thread, or at once if what the
  // caller waits for already happened: an answer (or cancellation) of a pending request, or new
  // frames, the end or cancellation of a stream. Checked under the lock that update() takes, so
  // an update racing with this call is never missed.
  static kj::Promise<void> wait_for_change(detail::Exchange& exchange, bool streaming) {
    auto pair = kj::newPromiseAndCrossThreadFulfiller<void>();
    auto fulfiller =
        std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<void>>>(kj::mv(pair.fulfiller));
    {
      std::lock_guard lock(exchange.mutex);
      bool ready = exchange.cancelled ||
                   (streaming ? (!exchange.chunks.empty() || exchange.stream_closed)
                              : exchange.phase != Phase::kPending);
      if (ready) return kj::READY_NOW;
      exchange.waker = [fulfiller] { (*fulfiller)->fulfill(); };
    }
    return kj::mv(pair.promise);
  }

  const kj::HttpHeaderTable& table_;
  const HttpServerOptions& options_;
  const HttpRouter& router_;
  kj::Timer& timer_;
  kj::Maybe<int> fd_;  // the connection's socket, to notice a hang-up while an answer is pending
};

struct HttpServer::Impl {
  KjRuntime& runtime;
  HttpServerOptions options;
  HttpRouter router;
  uint16_t port = 0;
  bool stopped = false;
  // kj-thread objects; created and destroyed on the kj thread only.
  kj::Own<kj::HttpHeaderTable> table;
  kj::Own<kj::HttpServer> server;
  kj::Own<kj::ConnectionReceiver> listener;
  kj::Own<kj::TaskSet> tasks;  // the listen loop; separate so shutdown can cancel it alone

  Impl(KjRuntime& rt, HttpServerOptions opts, HttpRouter r)
      : runtime(rt), options(std::move(opts)), router(std::move(r)) {}

  // Stops accepting: the loop goes before the listener it waits on (kj's HttpServer keeps the
  // connections it accepted in tasks of its own, which drain()).
  void stop_listening() {
    tasks = nullptr;
    listener = nullptr;
  }

  void destroy_on_loop() {
    stop_listening();
    server = nullptr;
    listener = nullptr;
    table = nullptr;
  }
};

namespace {
class LogErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& e) override {
    spdlog::warn("http server: {}", e.getDescription().cStr());
  }
};
LogErrors log_errors;
}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

core::Result<std::unique_ptr<HttpServer>> HttpServer::start(KjRuntime& runtime,
                                                            HttpServerOptions options,
                                                            HttpRouter router) {
  auto impl = std::make_unique<Impl>(runtime, std::move(options), std::move(router));
  std::promise<core::Result<uint16_t>> bound;
  auto bound_future = bound.get_future();
  Impl* s = impl.get();
  std::string address = s->options.host + ":" + std::to_string(s->options.port);
  bool scheduled = runtime.execute_sync([&](KjContext& ctx) {
    s->table = kj::heap<kj::HttpHeaderTable>();
    // One service per connection, so a request knows the socket its client hangs up on.
    s->server = kj::heap<kj::HttpServer>(
        ctx.timer, *s->table, [s, &timer = ctx.timer](kj::AsyncIoStream& connection) -> kj::Own<kj::HttpService> {
          return kj::heap<KjHttpService>(*s->table, s->options, s->router, timer, connection.getFd());
        });
    s->tasks = kj::heap<kj::TaskSet>(log_errors);
    // Binding reports to `bound` (this thread waits on it); the accept loop starts only after,
    // so its failures go to the log and never to `bound`.
    auto listening =
        ctx.network.parseAddress(s->options.host, s->options.port)
            .then([s, &bound, &timer = ctx.timer](kj::Own<kj::NetworkAddress> addr) {
              s->listener = addr->listen();
              const auto port = static_cast<uint16_t>(s->listener->getPort());
              if (s->options.tls) {
                s->listener = listen_tls(kj::mv(s->listener), s->options.tls, timer,
                                         "https " + s->options.host + ":" + std::to_string(port),
                                         s->options.on_tls_refused);
              }
              s->tasks->add(s->server->listenHttp(*s->listener));
              bound.set_value(port);
            })
            .catch_([&bound, address](kj::Exception&& e) {  // parsing or binding failed
              bound.set_value(core::error(core::ErrorCode::kUnavailable,
                                          "cannot listen on " + address + ": " +
                                              e.getDescription().cStr()));
            });
    s->tasks->add(kj::mv(listening));
  });
  if (!scheduled) return core::error(core::ErrorCode::kUnavailable, "kj runtime is not running");
  auto port = bound_future.get();
  if (!port.ok()) {
    runtime.execute_sync([s](KjContext&) { s->destroy_on_loop(); });
    s->stopped = true;
    return port.error();
  }
  impl->port = *port;
  spdlog::info("http: listening on {}:{}{}", impl->options.host, impl->port, impl->options.tls ? " (TLS)" : "");
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() { shutdown(); }

uint16_t HttpServer::port() const { return impl_->port; }

const char* HttpServer::scheme() const { return impl_->options.tls ? "https" : "http"; }

void HttpServer::shutdown() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  Impl* s = impl_.get();
  std::promise<void> done;
  auto done_future = done.get_future();
  bool scheduled = s->runtime.execute_sync([s, &done](KjContext& ctx) {
    s->stop_listening();  // refuse new connections at once
    auto timeout = ctx.timer.afterDelay(s->options.drain_timeout.count() * kj::MILLISECONDS);
    ctx.tasks.add(s->server->drain()
                      .exclusiveJoin(kj::mv(timeout))
                      .then([s, &done] {
                        s->destroy_on_loop();  // cancels whatever did not finish in time
                        done.set_value();
                      }, [s, &done](kj::Exception&&) {
                        s->destroy_on_loop();
                        done.set_value();
                      }));
  });
  if (scheduled) done_future.wait();
}

}  // namespace aegaeon::rpc::http
