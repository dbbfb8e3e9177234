// TLS over kj streams with OpenSSL memory BIOs: OpenSSL reads the network bytes we received
// (network_in_) and leaves what must be sent in network_out_; the stream moves bytes between those
// BIOs and the TCP stream with kj's async reads and writes, so nothing blocks the kj thread.
#include "rpc/tls.hpp"

#include <arpa/inet.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <mutex>

#include "rpc/tls_stream.hpp"

namespace aegaeon::rpc {
namespace {

struct SslContextFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslContextPtr = std::unique_ptr<SSL_CTX, SslContextFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

}  // namespace

struct TlsContext::Impl {
  Side side;
  TlsFiles files;
  mutable std::mutex mutex;  // guards context: reload() runs on a signal-handling thread
  SslContextPtr context;

  [[nodiscard]] SslPtr new_ssl() const {
    const std::lock_guard lock(mutex);
    return SslPtr(SSL_new(context.get()));  // takes its own reference: a reload leaves it be
  }
};

namespace {

using core::ErrorCode;

// Empties OpenSSL's error queue of this thread into words ("certificate verify failed; ...").
std::string openssl_errors() {
  std::string words;
  while (const unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (!words.empty()) words += "; ";
    if (reason != nullptr) {
      words += reason;
    } else {
      char text[256];
      ERR_error_string_n(code, text, sizeof text);
      words += text;
    }
  }
  return words.empty() ? "no reason given" : words;
}

core::Result<SslContextPtr> build_context(TlsContext::Side side, const TlsFiles& files) {
  const bool server = side == TlsContext::Side::kServer;
  ERR_clear_error();
  SslContextPtr context(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!context) return core::error(ErrorCode::kInternal, "cannot create a TLS context: " + openssl_errors());
  SSL_CTX* ctx = context.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // No renegotiation: a write then never has to wait for a read. A peer that closes without
  // close_notify reads as an ordinary end of stream (HTTP/1.1 frames its own bodies).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // No TLS 1.3 session tickets: nothing here resumes sessions, and a ticket is data a client
  // would have to read after the handshake for nothing.
  if (server) SSL_CTX_set_num_tickets(ctx, 0);

  if (server && (files.cert_file.empty() || files.key_file.empty())) {
    return core::error(ErrorCode::kInvalidArgument, "a TLS server needs a certificate and its private key");
  }
  if (files.cert_file.empty() != files.key_file.empty()) {
    return core::error(ErrorCode::kInvalidArgument, "a certificate needs its private key and a key its certificate");
  }
  if (!files.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1) {
      return core::error(ErrorCode::kInvalidArgument,
                         "cannot read the certificate in '" + files.cert_file + "': " + openssl_errors());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_error()) != X509_R_KEY_VALUES_MISMATCH) {
      return core::error(ErrorCode::kInvalidArgument,
                         "cannot read the private key in '" + files.key_file + "': " + openssl_errors());
    }
    if (ERR_peek_error() != 0 || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return core::error(ErrorCode::kInvalidArgument, "the private key in '" + files.key_file +
                                                          "' does not belong to the certificate in '" +
                                                          files.cert_file + "'");
    }
    if (X509* certificate = SSL_CTX_get0_certificate(ctx);
        certificate != nullptr && X509_cmp_current_time(X509_get0_notAfter(certificate)) < 0) {
      spdlog::warn("tls: the certificate in '{}' has expired: peers will refuse it", files.cert_file);
    }
  }
  if (!files.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, files.ca_file.c_str(), nullptr) != 1) {
      return core::error(ErrorCode::kInvalidArgument,
                         "cannot read the CA certificates in '" + files.ca_file + "': " + openssl_errors());
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
    if (server) {
      // Tells clients which CA to choose a certificate for.
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca_file.c_str())) {
        SSL_CTX_set_client_CA_list(ctx, names);
      }
    }
  }
  return context;
}

// "HOST:PORT" of the stream's peer, or "unknown peer" (not a socket, or already gone).
std::string peer_of(kj::AsyncIoStream& stream) {
  sockaddr_storage address{};
  kj::uint length = sizeof address;
  if (kj::runCatchingExceptions([&] { stream.getpeername(reinterpret_cast<sockaddr*>(&address), &length); }) !=
      nullptr) {
    return "unknown peer";
  }
  char host[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &v4.sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(v4.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &v6.sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6.sin6_port));
  }
  return "unknown peer";
}

kj::Exception disconnected(const std::string& what) {
  return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__, kj::str(what.c_str()));
}

// One TLS connection over a kj stream. Reads and writes may be in flight at the same time (one
// of each, as kj allows): only reads take bytes from the network, and every send goes through
// one chain (`sends_`), so records leave in the order OpenSSL made them.
class TlsStream final : public kj::AsyncIoStream {
 public:
  TlsStream(kj::Own<kj::AsyncIoStream> inner, SslPtr ssl, TlsContext::Side side)
      : inner_(kj::mv(inner)), ssl_(std::move(ssl)), peer_(peer_of(*inner_)) {
    network_in_ = BIO_new(BIO_s_mem());
    network_out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(network_in_, -1);  // empty means "more to come", not the end
    SSL_set_bio(ssl_.get(), network_in_, network_out_);  // the SSL owns both from here
    if (side == TlsContext::Side::kServer) {
      SSL_set_accept_state(ssl_.get());
    } else {
      SSL_set_connect_state(ssl_.get());
    }
  }

  [[nodiscard]] const std::string& peer() const { return peer_; }

  // Resolves with nothing once the handshake succeeded, or with why it failed (never rejects).
  kj::Promise<kj::Maybe<TlsRefusal>> handshake() {
    return handshake_step().catch_([this](kj::Exception&& e) -> kj::Maybe<TlsRefusal> {
      return TlsRefusal{"closed", std::string("the connection failed during the handshake: ") +
                                      e.getDescription().cStr(),
                        peer_};
    });
  }

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
    return read_into(static_cast<kj::byte*>(buffer), std::max<size_t>(min_bytes, 1), max_bytes, 0);
  }

  kj::Promise<void> write(const void* buffer, size_t size) override {
    auto piece = kj::heap<kj::ArrayPtr<const kj::byte>>(static_cast<const kj::byte*>(buffer), size);
    auto sent = encrypt(kj::arrayPtr(piece.get(), 1), 0, 0);
    return sent.attach(kj::mv(piece));
  }

  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return encrypt(pieces, 0, 0);
  }

  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }

  void shutdownWrite() override {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // queues close_notify
    shutdown_ = send_pending()
                    .then([this] { inner_->shutdownWrite(); })
                    .eagerlyEvaluate([](kj::Exception&&) {});  // the peer may be gone already
  }

  void abortRead() override { inner_->abortRead(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    inner_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    inner_->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* address, kj::uint* length) override { inner_->getsockname(address, length); }
  void getpeername(struct sockaddr* address, kj::uint* length) override { inner_->getpeername(address, length); }
  // The socket itself, so the HTTP server can notice a client hanging up while it waits.
  kj::Maybe<int> getFd() const override { return inner_->getFd(); }

 private:
  // Plaintext is encrypted in batches: a 25 MiB KV handoff never sits encrypted in memory whole,
  // and small pieces (HTTP headers and body) leave in one TCP write.
  static constexpr size_t kBatchBytes = 64 << 10;

  kj::Promise<kj::Maybe<TlsRefusal>> handshake_step() {
    ERR_clear_error();
    const int result = SSL_do_handshake(ssl_.get());
    if (result == 1) return send_pending().then([]() -> kj::Maybe<TlsRefusal> { return nullptr; });
    const int error = SSL_get_error(ssl_.get(), result);
    if (error == SSL_ERROR_WANT_READ && !eof_) {
      return send_pending().then([this] { return receive(); }).then([this] { return handshake_step(); });
    }
    // Why, read now from this thread's OpenSSL error queue; then send the alert that says it (so
    // the peer's log names the reason too) and give up.
    TlsRefusal refusal = refusal_for(error);
    return send_pending()
        .catch_([](kj::Exception&&) {})  // the peer may be gone already
        .then([refusal = std::move(refusal)]() mutable -> kj::Maybe<TlsRefusal> { return kj::mv(refusal); });
  }

  TlsRefusal refusal_for(int ssl_error) {
    const unsigned long first = ERR_peek_error();
    const std::string reason = openssl_errors();
    auto refusal = [this](const char* kind, std::string message) {
      return TlsRefusal{kind, std::move(message), peer_};
    };
    switch (const long verify = SSL_get_verify_result(ssl_.get()); verify) {
      case X509_V_OK: break;
      case X509_V_ERR_CERT_HAS_EXPIRED: return refusal("expired_certificate", "its certificate has expired");
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return refusal("certificate_not_yet_valid", "its certificate is not valid yet");
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return refusal("wrong_name", "its certificate does not name the host this side connected to (" +
                                         peer_ + "): add that name or address to the certificate's subjectAltName");
      default:
        return refusal("untrusted_certificate", std::string("its certificate is not signed by the trusted CA (") +
                                                    X509_verify_cert_error_string(verify) + ")");
    }
    switch (ERR_GET_REASON(first)) {
      case SSL_R_HTTP_REQUEST:
      case SSL_R_HTTPS_PROXY_REQUEST:
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_UNKNOWN_PROTOCOL:
      case SSL_R_PACKET_LENGTH_TOO_LONG:
      case SSL_R_RECORD_LENGTH_MISMATCH:
        return refusal("not_tls", "it does not speak TLS (plain HTTP or TCP?): " + reason);
      case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return refusal("no_certificate", "it presented no certificate, and this port requires one");
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return refusal("refused_our_certificate", "it refused this side's certificate (" + reason + ")");
      default: break;
    }
    if (eof_ || ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
      return refusal("closed", "it closed the connection during the handshake");
    }
    return refusal("protocol", reason);
  }

  kj::Promise<size_t> read_into(kj::byte* buffer, size_t min_bytes, size_t max_bytes, size_t done) {
    while (done < min_bytes) {
      ERR_clear_error();
      size_t n = 0;
      const int result = SSL_read_ex(ssl_.get(), buffer + done, max_bytes - done, &n);
      if (result == 1) {
        done += n;
        continue;
      }
      const int error = SSL_get_error(ssl_.get(), result);
      if (error == SSL_ERROR_WANT_READ && !eof_) {
        // Whatever OpenSSL must answer (a TLS 1.3 key update) goes out before we wait.
        return send_pending().then([this] { return receive(); }).then([this, buffer, min_bytes, max_bytes, done] {
          return read_into(buffer, min_bytes, max_bytes, done);
        });
      }
      if (error == SSL_ERROR_ZERO_RETURN || eof_) return done;  // the peer closed
      return disconnected("TLS read from " + peer_ + " failed: " + refusal_for(error).message);
    }
    return done;
  }

  kj::Promise<void> encrypt(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces, size_t piece, size_t offset) {
    for (; piece < pieces.size(); ++piece, offset = 0) {
      const auto bytes = pieces[piece];
      while (offset < bytes.size()) {
        const size_t n = std::min(bytes.size() - offset, kBatchBytes);
        ERR_clear_error();
        size_t written = 0;
        if (SSL_write_ex(ssl_.get(), bytes.begin() + offset, n, &written) != 1 || written != n) {
          return disconnected("TLS write to " + peer_ + " failed: " + openssl_errors());
        }
        offset += n;
        if (BIO_ctrl_pending(network_out_) >= kBatchBytes) {
          return send_pending().then([this, pieces, piece, offset] { return encrypt(pieces, piece, offset); });
        }
      }
    }
    return send_pending();
  }

  // Sends what OpenSSL has produced so far, after every earlier send; resolves when it is out.
  kj::Promise<void> send_pending() {
    if (const size_t pending = BIO_ctrl_pending(network_out_); pending > 0) {
      auto bytes = kj::heapArray<kj::byte>(pending);
      BIO_read(network_out_, bytes.begin(), static_cast<int>(pending));
      sends_ = sends_.addBranch()
                   .then([this, bytes = kj::mv(bytes)]() mutable {
                     auto sent = inner_->write(bytes.begin(), bytes.size());
                     return sent.attach(kj::mv(bytes));
                   })
                   .fork();
    }
    return sends_.addBranch();
  }

  // Reads what the network has into network_in_.
  kj::Promise<void> receive() {
    return inner_->tryRead(received_.begin(), 1, received_.size()).then([this](size_t n) {
      if (n == 0) {
        eof_ = true;
        BIO_set_mem_eof_return(network_in_, 0);  // now an empty BIO is the end
        return;
      }
      BIO_write(network_in_, received_.begin(), static_cast<int>(n));
    });
  }

  kj::Own<kj::AsyncIoStream> inner_;
  SslPtr ssl_;
  std::string peer_;
  BIO* network_in_ = nullptr;   // owned by ssl_
  BIO* network_out_ = nullptr;  // owned by ssl_
  kj::Array<kj::byte> received_ = kj::heapArray<kj::byte>(kBatchBytes);
  bool eof_ = false;
  kj::ForkedPromise<void> sends_ = kj::Promise<void>(kj::READY_NOW).fork();
  kj::Maybe<kj::Promise<void>> shutdown_;
};

// Resolves with the handshake's outcome, or a "timeout" refusal after kTlsHandshakeTimeout.
kj::Promise<kj::Maybe<TlsRefusal>> handshake_within_deadline(TlsStream& stream, kj::Timer& timer) {
  auto deadline = timer.afterDelay(kTlsHandshakeTimeout).then([&stream]() -> kj::Maybe<TlsRefusal> {
    return TlsRefusal{"timeout", "it did not finish its handshake within 10 s", stream.peer()};
  });
  return stream.handshake().exclusiveJoin(kj::mv(deadline));
}

class TlsReceiver final : public kj::ConnectionReceiver, private kj::TaskSet::ErrorHandler {
 public:
  TlsReceiver(kj::Own<kj::ConnectionReceiver> tcp, std::shared_ptr<const TlsContext> tls, kj::Timer& timer,
              std::string listener, TlsRefusalObserver on_refused)
      : tcp_(kj::mv(tcp)), tls_(std::move(tls)), timer_(timer), listener_(std::move(listener)),
        on_refused_(std::move(on_refused)), handshakes_(*this),
        accepting_(accept_loop().eagerlyEvaluate([this](kj::Exception&& e) { fail(kj::mv(e)); })) {}

  kj::Promise<kj::Own<kj::AsyncIoStream>> accept() override {
    if (!ready_.empty()) {
      auto stream = kj::mv(ready_.front());
      ready_.pop_front();
      return kj::mv(stream);
    }
    KJ_IF_MAYBE(failure, failure_) { return kj::cp(*failure); }
    auto next = kj::newPromiseAndFulfiller<kj::Own<kj::AsyncIoStream>>();
    waiting_.push_back(kj::mv(next.fulfiller));
    return kj::mv(next.promise);
  }

  kj::uint getPort() override { return tcp_->getPort(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    tcp_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    tcp_->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* address, kj::uint* length) override { tcp_->getsockname(address, length); }

 private:
  kj::Promise<void> accept_loop() {
    return tcp_->accept().then([this](kj::Own<kj::AsyncIoStream> tcp) {
      handshakes_.add(handshake(kj::mv(tcp)));
      return accept_loop();
    });
  }

  kj::Promise<void> handshake(kj::Own<kj::AsyncIoStream> tcp) {
    auto stream = kj::heap<TlsStream>(kj::mv(tcp), tls_->impl().new_ssl(), TlsContext::Side::kServer);
    auto outcome = handshake_within_deadline(*stream, timer_);
    return outcome.then([this, stream = kj::mv(stream)](kj::Maybe<TlsRefusal> refusal) mutable {
      KJ_IF_MAYBE(refused, refusal) {
        spdlog::warn("{}: refused a connection from {}: {}", listener_, refused->peer, refused->message);
        if (on_refused_) on_refused_(*refused);
        return;
      }
      deliver(kj::mv(stream));
    });
  }

  void deliver(kj::Own<kj::AsyncIoStream> stream) {
    while (!waiting_.empty()) {
      auto fulfiller = kj::mv(waiting_.front());
      waiting_.pop_front();
      if (fulfiller->isWaiting()) {
        fulfiller->fulfill(kj::mv(stream));
        return;
      }
    }
    ready_.push_back(kj::mv(stream));
  }

  void fail(kj::Exception&& e) {
    for (auto& fulfiller : waiting_) fulfiller->reject(kj::cp(e));
    waiting_.clear();
    failure_ = kj::mv(e);
  }

  void taskFailed(kj::Exception&& e) override {
    spdlog::warn("{}: TLS handshake task failed: {}", listener_, e.getDescription().cStr());
  }

  kj::Own<kj::ConnectionReceiver> tcp_;
  std::shared_ptr<const TlsContext> tls_;
  kj::Timer& timer_;
  std::string listener_;
  TlsRefusalObserver on_refused_;
  std::deque<kj::Own<kj::AsyncIoStream>> ready_;  // handshaken, not yet accepted
  std::deque<kj::Own<kj::PromiseFulfiller<kj::Own<kj::AsyncIoStream>>>> waiting_;  // accept() calls
  kj::Maybe<kj::Exception> failure_;  // the TCP listener failed: every accept() fails with it
  kj::TaskSet handshakes_;
  kj::Promise<void> accepting_;
};

}  // namespace

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;

core::Result<std::shared_ptr<TlsContext>> TlsContext::load(Side side, TlsFiles files) {
  auto context = build_context(side, files);
  if (!context.ok()) return context.error();
  auto impl = std::make_unique<Impl>();
  impl->side = side;
  impl->files = std::move(files);
  impl->context = std::move(*context);
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

core::Result<void> TlsContext::reload() {
  auto context = build_context(impl_->side, impl_->files);
  if (!context.ok()) return context.error();
  const std::lock_guard lock(impl_->mutex);
  impl_->context = std::move(*context);
  return {};
}

const TlsFiles& TlsContext::files() const { return impl_->files; }

namespace {

// Makes the handshake check that the server's certificate names `host` (subjectAltName; an IP
// address as an address, a name as a DNS name, also sent as SNI), as any TLS client does: a
// certificate the cluster CA signed for another machine does not pass for this one.
bool expect_name(SSL* ssl, const std::string& host) {
  in6_addr address{};
  const bool is_address =
      inet_pton(AF_INET, host.c_str(), &address) == 1 || inet_pton(AF_INET6, host.c_str(), &address) == 1;
  if (is_address) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
  return SSL_set1_host(ssl, host.c_str()) == 1 && SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
}

}  // namespace

kj::Own<kj::ConnectionReceiver> listen_tls(kj::Own<kj::ConnectionReceiver> tcp,
                                           std::shared_ptr<const TlsContext> tls, kj::Timer& timer,
                                           std::string listener, TlsRefusalObserver on_refused) {
  return kj::heap<TlsReceiver>(kj::mv(tcp), std::move(tls), timer, std::move(listener), std::move(on_refused));
}

kj::Promise<kj::Own<kj::AsyncIoStream>> connect_tls(const TlsContext& tls, kj::Own<kj::AsyncIoStream> tcp,
                                                    kj::Timer& timer, const std::string& host, uint16_t port) {
  auto ssl = tls.impl().new_ssl();
  std::string peer = host + ":" + std::to_string(port);
  if (!tls.files().ca_file.empty() && !expect_name(ssl.get(), host)) {
    return KJ_EXCEPTION(FAILED, "TLS with " + peer + ": cannot check the server's certificate against '" + host +
                                    "': " + openssl_errors());
  }
  auto stream = kj::heap<TlsStream>(kj::mv(tcp), kj::mv(ssl), TlsContext::Side::kClient);
  auto outcome = handshake_within_deadline(*stream, timer);
  return outcome.then([stream = kj::mv(stream), peer = std::move(peer)](
                          kj::Maybe<TlsRefusal> refusal) mutable -> kj::Own<kj::AsyncIoStream> {
    KJ_IF_MAYBE(refused, refusal) {
      kj::throwFatalException(disconnected("TLS handshake with " + peer + " failed: " + refused->message));
    }
    return kj::mv(stream);
  });
}

}  // namespace aegaeon::rpc
