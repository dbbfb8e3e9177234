// Certificates for TLS tests, made at test time with the openssl CLI (Debian's `openssl`): a CA,
// a server and a client it signed, and the certificates a cluster must refuse (another CA's, an
// expired one, one for another machine).
#pragma once

#include <filesystem>
#include <string>

#include "core/result.hpp"

namespace aegaeon::testing {

/// A certificate and its private key (PEM paths).
struct CertificateFiles {
  std::string cert;
  std::string key;
};

struct TestCertificates {
  std::string ca;                   ///< the trusted CA's certificate
  std::string other_ca;             ///< a second CA nobody trusts by default
  /// CN=localhost, SAN localhost, 127.0.0.1 and 10.213.0.1 (hosts.sh's first host), signed by ca
  CertificateFiles server;
  CertificateFiles server_renewed;  ///< the same names, signed by other_ca (a reload swaps it in)
  CertificateFiles client;          ///< signed by ca
  CertificateFiles stranger;        ///< signed by other_ca
  CertificateFiles expired;         ///< signed by ca, valid only on 2020-01-01
  CertificateFiles elsewhere;       ///< signed by ca for another machine (SAN elsewhere.invalid only)

  /// Makes them all under `dir` (created); an error says which openssl command failed and why.
  static core::Result<TestCertificates> make(const std::filesystem::path& dir);
};

}  // namespace aegaeon::testing
