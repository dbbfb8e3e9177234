#include "tests/support/test_certificates.hpp"

#include <fstream>
#include <vector>

#include "tests/support/child_process.hpp"

namespace aegaeon::testing {
namespace {

using Command = std::vector<std::string>;

core::Result<void> run(const Command& command) {
  auto [code, output] = run_command(command, {}, std::chrono::seconds(30));
  if (code == 0) return {};
  std::string line;
  for (const auto& word : command) line += word + " ";
  return core::error(core::ErrorCode::kInternal, line + "exited with " + std::to_string(code) + ": " + output);
}

void write_file(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

core::Result<TestCertificates> TestCertificates::make(const std::filesystem::path& dir) {
  const auto openssl = find_on_path("openssl");
  if (!openssl) return core::error(core::ErrorCode::kNotFound, "openssl is not on PATH (Debian package 'openssl')");
  std::filesystem::create_directories(dir);
  auto at = [&dir](const std::string& name) { return (dir / name).string(); };
  const Command new_key = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"};

  auto make_ca = [&](const std::string& name) -> core::Result<void> {
    Command command = {*openssl, "req", "-x509"};
    command.insert(command.end(), new_key.begin(), new_key.end());
    command.insert(command.end(), {"-keyout", at(name + ".key"), "-out", at(name + ".pem"), "-days", "2", "-subj",
                                   "/CN=aegaeon test " + name});
    return run(command);
  };
  // A key and a signing request, then the CA's signature (`openssl ca` when the validity must be
  // in the past, which `openssl x509 -req` cannot express).
  // 10.213.0.1 is deploy/netns/hosts.sh's first host, where the netns suites run the controller.
  write_file(dir / "san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:10.213.0.1\n");
  write_file(dir / "elsewhere.ext", "subjectAltName=DNS:elsewhere.invalid\n");
  write_file(dir / "index.txt", "");
  write_file(dir / "ca.cnf",
             "[ca]\ndefault_ca=test\n[test]\ndatabase=" + at("index.txt") + "\nnew_certs_dir=" + dir.string() +
                 "\nserial=" + at("serial") + "\ndefault_md=sha256\npolicy=any\n[any]\ncommonName=supplied\n");
  write_file(dir / "serial", "1000\n");
  auto make_leaf = [&](const std::string& name, const std::string& ca, const std::string& subject, bool expired,
                       const std::string& names) -> core::Result<CertificateFiles> {
    Command request = {*openssl, "req"};
    request.insert(request.end(), new_key.begin(), new_key.end());
    request.insert(request.end(), {"-keyout", at(name + ".key"), "-out", at(name + ".csr"), "-subj", subject});
    if (auto made = run(request); !made.ok()) return made.error();
    const Command sign =
        expired ? Command{*openssl, "ca", "-batch", "-notext", "-config", at("ca.cnf"), "-cert", at(ca + ".pem"),
                          "-keyfile", at(ca + ".key"), "-in", at(name + ".csr"), "-out", at(name + ".pem"),
                          "-startdate", "20200101000000Z", "-enddate", "20200102000000Z"}
                : Command{*openssl, "x509", "-req", "-in", at(name + ".csr"), "-CA", at(ca + ".pem"), "-CAkey",
                          at(ca + ".key"), "-CAcreateserial", "-out", at(name + ".pem"), "-days", "2", "-extfile",
                          at(names)};
    if (auto signed_ = run(sign); !signed_.ok()) return signed_.error();
    return CertificateFiles{at(name + ".pem"), at(name + ".key")};
  };

  TestCertificates made;
  for (const char* ca : {"ca", "other_ca"}) {
    if (auto ok = make_ca(ca); !ok.ok()) return ok.error();
  }
  made.ca = at("ca.pem");
  made.other_ca = at("other_ca.pem");
  struct Leaf {
    CertificateFiles* files;
    const char* name;
    const char* ca;
    const char* subject;
    bool expired;
    const char* names = "san.ext";  // the subjectAltName extension file
  };
  for (const Leaf& leaf : {Leaf{&made.server, "server", "ca", "/CN=localhost", false},
                           Leaf{&made.server_renewed, "server_renewed", "other_ca", "/CN=localhost", false},
                           Leaf{&made.client, "client", "ca", "/CN=worker", false},
                           Leaf{&made.stranger, "stranger", "other_ca", "/CN=stranger", false},
                           Leaf{&made.expired, "expired", "ca", "/CN=expired", true},
                           Leaf{&made.elsewhere, "elsewhere", "ca", "/CN=elsewhere.invalid", false, "elsewhere.ext"}}) {
    auto files = make_leaf(leaf.name, leaf.ca, leaf.subject, leaf.expired, leaf.names);
    if (!files.ok()) return files.error();
    *leaf.files = std::move(*files);
  }
  return made;
}

}  // namespace aegaeon::testing
