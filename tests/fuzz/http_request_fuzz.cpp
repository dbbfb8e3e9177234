// Target "http_request": whatever a client sends to the real HttpServer (kj-http on a
// KjRuntime) over loopback. Target "https_request": the same server over TLS (rpc/tls.cpp),
// the first byte choosing what the rest is — the plaintext of a real TLS client's connection
// (even), or raw bytes at the TLS port, where the handshake parses them (odd). Either way the
// server must answer or close within the deadline and keep answering /health afterwards.
#include <netinet/in.h>
#include <poll.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "rpc/http/http_server.hpp"
#include "rpc/http/openai_api.hpp"
#include "rpc/kj_runtime.hpp"
#include "tests/fuzz/fuzz_targets.hpp"
#include "tests/fuzz/loopback_exchange.hpp"
#include "tests/support/test_certificates.hpp"

namespace aegaeon::fuzz {
namespace {

constexpr auto kDeadline = std::chrono::milliseconds(5000);
constexpr int kHealthCheckEvery = 16;

// One server per process and target; members are destroyed in reverse order, server before
// runtime. With `tls` it serves HTTPS.
struct HttpFixture {
  std::unique_ptr<rpc::KjRuntime> runtime;
  std::unique_ptr<rpc::http::HttpServer> server;

  explicit HttpFixture(std::shared_ptr<const rpc::TlsContext> tls = nullptr) {
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
          200, formatter.full_response({{"ok", {}, core::FinishReason::kStop}}, {1, 1})));
    });
    // Drops the Responder without answering: the server must still answer (500).
    router.add("POST", "/v1/drop", [](const HttpRequest&, const Responder&) {});
    rpc::http::HttpServerOptions options;
    options.max_body_bytes = 4096;   // small limits so inputs reach the 413 and 431 paths
    options.max_header_bytes = 1024;
    options.drain_timeout = std::chrono::milliseconds(1000);
    options.tls = std::move(tls);
    auto started = rpc::http::HttpServer::start(*runtime, options, std::move(router));
    if (!started.ok()) fuzz_fail("HttpServer::start: " + started.error().message);
    server = std::move(*started);
  }

};

const std::string kHealthRequest = "GET /health HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";

void expect_health(const LoopbackReply& reply) {
  if (!reply.closed || reply.bytes.rfind("HTTP/1.1 200", 0) != 0) {
    fuzz_fail("the HTTP server stopped answering /health after an input");
  }
}

// The HTTPS server, and a client context (TLS 1.2+, trusting the test CA) for real TLS
// connections to it; the certificates come from the openssl CLI at start.
struct HttpsFixture {
  std::unique_ptr<HttpFixture> http;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> client{nullptr, SSL_CTX_free};

  HttpsFixture() {
    std::signal(SIGPIPE, SIG_IGN);  // the server may close while a client still writes
    auto certs = testing::TestCertificates::make(std::filesystem::temp_directory_path() /
                                                 ("aegaeon-fuzz-tls-" + std::to_string(::getpid())));
    if (!certs.ok()) fuzz_fail("certificates: " + certs.error().message);
    auto tls = rpc::TlsContext::load(rpc::TlsContext::Side::kServer, {certs->server.cert, certs->server.key, ""});
    if (!tls.ok()) fuzz_fail("TlsContext::load: " + tls.error().message);
    http = std::make_unique<HttpFixture>(*tls);
    client.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_min_proto_version(client.get(), TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(client.get(), certs->ca.c_str(), nullptr) != 1) fuzz_fail("client CA");
    SSL_CTX_set_verify(client.get(), SSL_VERIFY_PEER, nullptr);
  }

  // A real TLS connection: handshake, `size` plaintext bytes, half-close, then read until the
  // server closes, every blocking call bounded by `kDeadline` (socket timeouts).
  [[nodiscard]] LoopbackReply exchange(const std::uint8_t* data, std::size_t size) const {
    LoopbackReply reply;
    const int fd = connect_loopback(http->server->port());
    std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(client.get()), SSL_free);
    SSL_set_fd(ssl.get(), fd);
    if (const int result = retry_interrupted(ssl.get(), [&] { return SSL_connect(ssl.get()); }); result != 1) {
      const char* reason = ERR_reason_error_string(ERR_peek_error());
      fuzz_fail("the handshake with the HTTPS server failed: SSL error " +
                std::to_string(SSL_get_error(ssl.get(), result)) + ", " + std::strerror(errno) +
                (reason != nullptr ? std::string(", ") + reason : std::string()));
    }
    // A write may fail once the server answered and closed (a bad request): that is an answer.
    if (size == 0 ||
        retry_interrupted(ssl.get(), [&] { return SSL_write(ssl.get(), data, static_cast<int>(size)); }) > 0) {
      ::shutdown(fd, SHUT_WR);
    }
    char buffer[16384];
    while (true) {
      const int n = retry_interrupted(ssl.get(), [&] { return SSL_read(ssl.get(), buffer, sizeof buffer); });
      if (n > 0) {
        if (reply.bytes.size() < (1u << 16)) reply.bytes.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      reply.closed = !timed_out(ssl.get(), n);  // closed cleanly or not, unless the read timed out
      break;
    }
    ssl.reset();
    ::close(fd);
    return reply;
  }

 private:
  // A blocking socket connected to 127.0.0.1:`port` whose reads and writes time out after
  // kDeadline. libFuzzer's once-a-second SIGALRM may interrupt any blocking call (EINTR).
  static int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fuzz_fail(std::string("socket: ") + std::strerror(errno));
    const timeval timeout{kDeadline.count() / 1000, (kDeadline.count() % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return fd;
    if (errno == EINTR) {  // the connection goes on: wait until it is made
      pollfd writable{fd, POLLOUT, 0};
      int ready = 0;
      do {
        ready = ::poll(&writable, 1, static_cast<int>(kDeadline.count()));
      } while (ready < 0 && errno == EINTR);
      int error = ready > 0 ? 0 : ETIMEDOUT;
      socklen_t length = sizeof error;
      if (ready > 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error == 0) return fd;
      errno = error;
    }
    fuzz_fail(std::string("cannot connect to the HTTPS server: ") + std::strerror(errno));
  }

  // Runs an OpenSSL call on the blocking socket again while a signal interrupts it.
  template <typename Call>
  static int retry_interrupted(SSL* ssl, Call call) {
    while (true) {
      errno = 0;
      const int result = call();
      if (result > 0) return result;
      const int error = SSL_get_error(ssl, result);
      const bool retry = error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_SYSCALL;
      if (!(retry && errno == EINTR)) return result;
    }
  }

  // True when a failed call `result` of retry_interrupted ran into the socket's timeout.
  static bool timed_out(SSL* ssl, int result) {
    const int error = SSL_get_error(ssl, result);
    const bool waiting = error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_SYSCALL;
    return waiting && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
};

}  // namespace

int fuzz_http_request(const std::uint8_t* data, std::size_t size) {
  static const HttpFixture fixture;
  static std::atomic<int> inputs{0};
  auto reply = loopback_exchange(fixture.server->port(), data, size, kDeadline);
  if (!reply.closed) fuzz_fail("the HTTP server neither answered nor closed within 5 s");
  if (inputs++ % kHealthCheckEvery == 0) {
    expect_health(loopback_exchange(fixture.server->port(), reinterpret_cast<const std::uint8_t*>(kHealthRequest.data()),
                                    kHealthRequest.size(), kDeadline));
  }
  return 0;
}

int fuzz_https_request(const std::uint8_t* data, std::size_t size) {
  static const HttpsFixture fixture;
  static std::atomic<int> inputs{0};
  if (size == 0) return 0;
  const bool raw = (data[0] & 1) != 0;
  const auto reply = raw ? loopback_exchange(fixture.http->server->port(), data + 1, size - 1, kDeadline)
                         : fixture.exchange(data + 1, size - 1);
  if (!reply.closed) fuzz_fail("the HTTPS server neither answered nor closed within 5 s");
  if (inputs++ % kHealthCheckEvery == 0) {
    expect_health(fixture.exchange(reinterpret_cast<const std::uint8_t*>(kHealthRequest.data()), kHealthRequest.size()));
  }
  return 0;
}

}  // namespace aegaeon::fuzz
