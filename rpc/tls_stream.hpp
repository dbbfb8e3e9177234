// The kj side of TLS (only rpc/*.cpp include this): a listener that hands out connections once
// their handshake succeeded, and the client handshake. Both run on the kj thread.
#pragma once

#include <kj/async-io.h>
#include <kj/async.h>

#include <cstdint>
#include <memory>
#include <string>

#include "rpc/tls.hpp"

namespace aegaeon::rpc {

/// How long a peer may take to finish its handshake before it is dropped (a connection that
/// never speaks must not hold a socket for ever).
inline constexpr kj::Duration kTlsHandshakeTimeout = 10 * kj::SECONDS;

/// Accepts TCP connections from `tcp` and hands them out from accept() once their TLS handshake
/// succeeded. Handshakes run side by side, so a slow or silent peer delays no one else; a failed
/// one is logged (naming `listener`, the peer and the reason), passed to `on_refused`, and the
/// listener goes on accepting.
kj::Own<kj::ConnectionReceiver> listen_tls(kj::Own<kj::ConnectionReceiver> tcp,
                                           std::shared_ptr<const TlsContext> tls, kj::Timer& timer,
                                           std::string listener, TlsRefusalObserver on_refused);

/// The client handshake over a new connection to `host`:`port`. When `tls` has a CA, the server's
/// certificate must be signed by it and name `host` (a DNS name or an IP address in its
/// subjectAltName). Rejects with the reason in words when it does not or the handshake fails.
kj::Promise<kj::Own<kj::AsyncIoStream>> connect_tls(const TlsContext& tls, kj::Own<kj::AsyncIoStream> tcp,
                                                    kj::Timer& timer, const std::string& host, uint16_t port);

}  // namespace aegaeon::rpc
