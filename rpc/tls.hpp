// TLS for every port, with OpenSSL (Debian's capnproto 0.9.2 ships no kj-tls): HTTPS on the
// OpenAI and admin ports, mutual TLS between controllers and workers. This header is what other
// layers configure; the kj stream adapter lives in tls_stream.hpp, inside rpc/.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/result.hpp"

namespace aegaeon::rpc {

/// PEM files of one side of a connection.
struct TlsFiles {
  std::string cert_file;  ///< this side's certificate (chain)
  std::string key_file;   ///< its private key
  /// When set, the peer must present a certificate this CA signed: mutual TLS on a server (a
  /// client without one is refused), verification of the server's certificate on a client.
  std::string ca_file;
};

/// A peer whose TLS handshake failed, for one log line and one metric sample.
struct TlsRefusal {
  /// not_tls | no_certificate | untrusted_certificate | expired_certificate |
  /// certificate_not_yet_valid | wrong_name | refused_our_certificate | closed | timeout | protocol
  std::string kind;
  std::string message;  ///< in words, with OpenSSL's reason
  std::string peer;     ///< the peer's address, HOST:PORT
};

/// Called on the kj thread for every refused connection.
using TlsRefusalObserver = std::function<void(const TlsRefusal&)>;

/// One side's TLS settings: TLS 1.2 or later, no renegotiation, no compression. Thread-safe:
/// reload() may run on any thread while connections are being accepted; connections already
/// open keep the settings they started with.
class TlsContext {
 public:
  enum class Side { kServer, kClient };

  /// Reads the files; an error names the file and OpenSSL's reason (missing file, not PEM, a
  /// key that does not match the certificate).
  static core::Result<std::shared_ptr<TlsContext>> load(Side side, TlsFiles files);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  /// Reads the files again (a renewed certificate): new connections use them. On failure the
  /// settings in use stay and the error says why.
  core::Result<void> reload();

  [[nodiscard]] const TlsFiles& files() const;

  struct Impl;  ///< opaque; defined in tls.cpp, used by tls_stream.hpp
  [[nodiscard]] Impl& impl() const { return *impl_; }

 private:
  explicit TlsContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::rpc
