// TLS over real loopback sockets, with certificates made by the openssl CLI. HTTPS on the HTTP
// server with curl as the client: requests and streams, peers refused (plain HTTP, a silent one
// that must not hold up others), a certificate reload that keeps open streams. Mutual TLS on
// the cluster registry: members join; another CA's certificate, an expired one, none, and plain
// TCP are refused, each with its reason, and the registry keeps serving.
#include "rpc/tls.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "rpc/cluster_registry.hpp"
#include "rpc/http/http_server.hpp"
#include "rpc/kj_runtime.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_certificates.hpp"

namespace aegaeon::rpc {
namespace {

using namespace std::chrono_literals;
using http::HttpRequest;
using http::HttpResponse;
using http::HttpRouter;
using http::Responder;

// Made once for the whole binary: openssl takes ~0.1 s per key.
const core::Result<testing::TestCertificates>& certificates() {
  static const auto made = testing::TestCertificates::make(std::filesystem::temp_directory_path() /
                                                           ("aegaeon-tls-test-" + std::to_string(::getpid())));
  return made;
}

TEST(TlsContext, LoadErrorsNameTheFileAndTheReason) {
  ASSERT_TRUE(certificates().ok()) << certificates().error().message;
  const auto* certs = &*certificates();
  auto missing = TlsContext::load(TlsContext::Side::kServer, {"/nonexistent/cert.pem", certs->server.key, ""});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/cert.pem"), std::string::npos) << missing.error().message;

  auto mismatched = TlsContext::load(TlsContext::Side::kServer, {certs->server.cert, certs->client.key, ""});
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.error().message.find("does not belong to the certificate"), std::string::npos)
      << mismatched.error().message;

  auto no_key = TlsContext::load(TlsContext::Side::kServer, {certs->server.cert, "", ""});
  ASSERT_FALSE(no_key.ok());
  auto not_a_ca = TlsContext::load(TlsContext::Side::kServer, {certs->server.cert, certs->server.key, certs->server.key});
  ASSERT_FALSE(not_a_ca.ok());
  EXPECT_NE(not_a_ca.error().message.find(certs->server.key), std::string::npos) << not_a_ca.error().message;

  EXPECT_TRUE(TlsContext::load(TlsContext::Side::kServer, {certs->server.cert, certs->server.key, certs->ca}).ok());
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(certificates().ok()) << certificates().error().message;
    certs_ = &*certificates();
    const auto curl = testing::find_on_path("curl");
    if (!curl) GTEST_SKIP() << "curl is not on PATH (Debian package 'curl')";
    curl_ = *curl;
    auto started = KjRuntime::start();
    ASSERT_TRUE(started.ok()) << started.error().message;
    runtime_ = std::move(*started);
  }
  void TearDown() override {
    release();
    server_.reset();
    for (auto& thread : threads_) thread.join();
    runtime_.reset();
  }

  // /hello answers at once; /stream sends "tick 0", then ticks every 20 ms until release().
  HttpRouter router() {
    HttpRouter router;
    router.add("GET", "/hello", [](const HttpRequest&, const Responder& responder) {
      responder.respond(HttpResponse::text(200, "hello over tls"));
    });
    router.add("GET", "/stream", [this](const HttpRequest&, const Responder& responder) {
      auto stream = responder.open_stream();
      threads_.emplace_back([this, stream] {
        for (int i = 0; stream.send("tick " + std::to_string(i)); ++i) {
          std::unique_lock lock(mutex_);
          if (released_.wait_for(lock, 20ms, [this] { return release_; })) break;
        }
        stream.send("[DONE]");
        stream.close();
      });
    });
    return router;
  }

  void start(std::shared_ptr<TlsContext> tls) {
    http::HttpServerOptions options;
    options.tls = std::move(tls);
    options.on_tls_refused = [this](const TlsRefusal& refusal) {
      std::lock_guard lock(mutex_);
      refusals_.push_back(refusal);
      refused_.notify_all();
    };
    auto server = http::HttpServer::start(*runtime_, std::move(options), router());
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    EXPECT_STREQ(server_->scheme(), "https");
  }

  std::shared_ptr<TlsContext> server_context(const testing::CertificateFiles& files) {
    auto tls = TlsContext::load(TlsContext::Side::kServer, {files.cert, files.key, ""});
    EXPECT_TRUE(tls.ok()) << tls.error().message;
    return tls.ok() ? *tls : nullptr;
  }

  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(server_->port()) + path;
  }

  // curl's exit code and output (60: the server's certificate did not verify against `ca`).
  std::pair<int, std::string> curl(const std::string& path, const std::string& ca) {
    return testing::run_command({curl_, "-sS", "--max-time", "10", "--cacert", ca, url(path)}, {}, 15s);
  }

  // The first refusal of `kind` seen within 5 s.
  std::optional<TlsRefusal> refusal_of(const std::string& kind) {
    std::unique_lock lock(mutex_);
    std::optional<TlsRefusal> found;
    refused_.wait_for(lock, 5s, [&] {
      for (const auto& refusal : refusals_) {
        if (refusal.kind == kind) found = refusal;
      }
      return found.has_value();
    });
    return found;
  }

  void release() {
    std::lock_guard lock(mutex_);
    release_ = true;
    released_.notify_all();
  }

  const testing::TestCertificates* certs_ = nullptr;
  std::string curl_;
  std::unique_ptr<KjRuntime> runtime_;
  std::unique_ptr<http::HttpServer> server_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable refused_;
  std::condition_variable released_;
  std::vector<TlsRefusal> refusals_;
  bool release_ = false;
};

TEST_F(HttpsTest, AnswersRequestsAndStreamsOverTls) {
  start(server_context(certs_->server));
  auto [code, body] = curl("/hello", certs_->ca);
  EXPECT_EQ(code, 0) << body;
  EXPECT_EQ(body, "hello over tls");

  testing::ChildProcess stream({curl_, "-sSN", "--max-time", "20", "--cacert", certs_->ca, url("/stream")});
  ASSERT_TRUE(stream.wait_for_line(std::regex("data: tick 3"), 10s)) << stream.output();
  release();
  ASSERT_TRUE(stream.wait_for_line(std::regex("data: \\[DONE\\]"), 10s)) << stream.output();
  EXPECT_EQ(stream.wait(10s), 0) << stream.output();

  // A client that does not trust the server's CA refuses it (curl's exit code 60).
  EXPECT_EQ(curl("/hello", certs_->other_ca).first, 60);
}

TEST_F(HttpsTest, RefusesPlainHttpAndKeepsServing) {
  start(server_context(certs_->server));
  testing::HttpConnection plain(server_->port());
  plain.send_request("GET", "/hello");
  int status = 0;
  try {
    status = plain.read_head(5s).status;  // the server answers with a TLS alert and hangs up
  } catch (const std::runtime_error&) {
  }
  EXPECT_NE(status, 200) << "plain HTTP got an answer from the TLS port";
  const auto refusal = refusal_of("not_tls");
  ASSERT_TRUE(refusal) << "no not_tls refusal reported";
  EXPECT_NE(refusal->peer.find("127.0.0.1:"), std::string::npos) << refusal->peer;
  EXPECT_NE(refusal->message.find("does not speak TLS"), std::string::npos) << refusal->message;

  auto [code, body] = curl("/hello", certs_->ca);
  EXPECT_EQ(code, 0) << body;
  EXPECT_EQ(body, "hello over tls");
}

TEST_F(HttpsTest, ASilentPeerDoesNotHoldUpOthers) {
  start(server_context(certs_->server));
  // A TCP connection that never starts its handshake.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(server_->port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);

  const auto started = std::chrono::steady_clock::now();
  auto [code, body] = curl("/hello", certs_->ca);
  EXPECT_EQ(code, 0) << body;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  ::close(silent);
  EXPECT_TRUE(refusal_of("closed")) << "the silent peer's hang-up was not reported";
}

TEST_F(HttpsTest, ReloadServesTheNewCertificateAndKeepsOpenStreams) {
  // The files the server reads live apart, so the test can renew them in place.
  const auto live = std::filesystem::temp_directory_path() / ("aegaeon-tls-reload-" + std::to_string(::getpid()));
  std::filesystem::create_directories(live);
  const testing::CertificateFiles files{(live / "server.pem").string(), (live / "server.key").string()};
  auto install = [&](const testing::CertificateFiles& from) {
    std::filesystem::copy_file(from.cert, files.cert, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(from.key, files.key, std::filesystem::copy_options::overwrite_existing);
  };
  install(certs_->server);
  auto tls = server_context(files);
  ASSERT_NE(tls, nullptr);
  start(tls);

  testing::ChildProcess stream({curl_, "-sSN", "--max-time", "30", "--cacert", certs_->ca, url("/stream")});
  ASSERT_TRUE(stream.wait_for_line(std::regex("data: tick 1"), 10s)) << stream.output();

  // A broken file is refused and the certificate in use stays.
  std::ofstream(files.cert) << "not a certificate\n";
  const auto broken = tls->reload();
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find(files.cert), std::string::npos) << broken.error().message;
  EXPECT_EQ(curl("/hello", certs_->ca).first, 0);

  install(certs_->server_renewed);
  ASSERT_TRUE(tls->reload().ok());
  auto [renewed, body] = curl("/hello", certs_->other_ca);
  EXPECT_EQ(renewed, 0) << "a new connection did not get the renewed certificate: " << body;
  EXPECT_EQ(curl("/hello", certs_->ca).first, 60) << "a new connection still got the old certificate";

  // The stream opened before the reload goes on: three more ticks than it had, then its end.
  const std::string& seen = stream.output();
  const auto last = seen.rfind("data: tick ");
  ASSERT_NE(last, std::string::npos) << seen;
  const int next = std::stoi(seen.substr(last + 11)) + 3;
  EXPECT_TRUE(stream.wait_for_line(std::regex("^data: tick " + std::to_string(next) + "$"), 10s))
      << "the stream stopped at the reload:\n" << stream.output();
  release();
  ASSERT_TRUE(stream.wait_for_line(std::regex("data: \\[DONE\\]"), 10s)) << stream.output();
  EXPECT_EQ(stream.wait(10s), 0) << stream.output();
  std::filesystem::remove_all(live);
}


class ClusterMutualTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(certificates().ok()) << certificates().error().message;
    certs_ = &*certificates();
    auto server_runtime = KjRuntime::start();
    auto client_runtime = KjRuntime::start();  // a second loop: the client is another "process"
    ASSERT_TRUE(server_runtime.ok() && client_runtime.ok());
    server_runtime_ = std::move(*server_runtime);
    client_runtime_ = std::move(*client_runtime);
    serve_with(certs_->server);
  }
  void TearDown() override {
    server_.reset();
    client_runtime_.reset();
    server_runtime_.reset();
  }

  // (Re)starts the registry with `certificate` as its own.
  void serve_with(const testing::CertificateFiles& certificate) {
    server_.reset();
    auto tls = TlsContext::load(TlsContext::Side::kServer, {certificate.cert, certificate.key, certs_->ca});
    ASSERT_TRUE(tls.ok()) << tls.error().message;
    ClusterRegistryServer::Options options;
    options.cluster_token = "s3cret";
    options.tls = *tls;
    options.on_tls_refused = [this](const TlsRefusal& refusal) {
      std::lock_guard lock(mutex_);
      refused_kinds_.push_back(refusal.kind);
      refused_.notify_all();
    };
    auto server = ClusterRegistryServer::start(*server_runtime_, options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
  }

  // Connects with `files` (no certificate when empty) trusting `ca`, and registers.
  core::Result<core::RegistrationReply> join(const testing::CertificateFiles& files, const std::string& ca) {
    auto tls = TlsContext::load(TlsContext::Side::kClient, {files.cert, files.key, ca});
    if (!tls.ok()) return tls.error();
    auto client = ClusterClient::connect(*client_runtime_, "127.0.0.1", server_->port(), *tls, 5s);
    if (!client.ok()) return client.error();
    core::NodeRegistration node;
    node.node_name = "worker";
    node.protocol_version = cluster_protocol_version();
    return (*client)->register_node(node, "s3cret");
  }

  // True when the registry reported a refusal of `kind` within 5 s.
  bool refused(const std::string& kind) {
    std::unique_lock lock(mutex_);
    return refused_.wait_for(lock, 5s, [&] {
      return std::find(refused_kinds_.begin(), refused_kinds_.end(), kind) != refused_kinds_.end();
    });
  }

  const testing::TestCertificates* certs_ = nullptr;
  std::unique_ptr<KjRuntime> server_runtime_;
  std::unique_ptr<KjRuntime> client_runtime_;
  std::unique_ptr<ClusterRegistryServer> server_;
  std::mutex mutex_;
  std::condition_variable refused_;
  std::vector<std::string> refused_kinds_;
};

TEST_F(ClusterMutualTlsTest, AMemberJoinsAndOthersAreRefusedWithTheirReason) {
  auto member = join(certs_->client, certs_->ca);
  ASSERT_TRUE(member.ok()) << member.error().message;

  EXPECT_FALSE(join(certs_->stranger, certs_->ca).ok()) << "another CA's certificate joined";
  EXPECT_TRUE(refused("untrusted_certificate"));
  EXPECT_FALSE(join(certs_->expired, certs_->ca).ok()) << "an expired certificate joined";
  EXPECT_TRUE(refused("expired_certificate"));
  EXPECT_FALSE(join({}, certs_->ca).ok()) << "a client without a certificate joined";
  EXPECT_TRUE(refused("no_certificate"));

  auto plain = ClusterClient::connect(*client_runtime_, "127.0.0.1", server_->port(), nullptr, 5s);
  if (plain.ok()) {
    core::NodeRegistration node;
    node.node_name = "plain";
    node.protocol_version = cluster_protocol_version();
    EXPECT_FALSE((*plain)->register_node(node, "s3cret").ok()) << "plain TCP joined";
  }
  EXPECT_TRUE(refused("not_tls"));

  // A worker that does not trust the registry's CA refuses it; the registry sees its alert.
  auto distrustful = join(certs_->client, certs_->other_ca);
  ASSERT_FALSE(distrustful.ok());
  EXPECT_NE(distrustful.error().message.find("not signed by the trusted CA"), std::string::npos)
      << distrustful.error().message;

  // The registry kept serving through all of it.
  auto again = join(certs_->client, certs_->ca);
  EXPECT_TRUE(again.ok()) << again.error().message;
}

TEST_F(ClusterMutualTlsTest, AWorkerRefusesARegistryWhoseCertificateNamesAnotherHost) {
  // Signed by the cluster CA, but for elsewhere.invalid: not the 127.0.0.1 the worker joins.
  serve_with(certs_->elsewhere);
  auto misnamed = join(certs_->client, certs_->ca);
  ASSERT_FALSE(misnamed.ok()) << "joined a registry whose certificate names another host";
  EXPECT_NE(misnamed.error().message.find("does not name the host this side connected to (127.0.0.1:"),
            std::string::npos)
      << misnamed.error().message;
  EXPECT_TRUE(refused("refused_our_certificate"));
}

}  // namespace
}  // namespace aegaeon::rpc
