// `aegaeon serve` as a user runs it: a real process, real HTTP, promtool on the real /metrics,
// graceful shutdown on signals, clear errors for bad configuration, and HTTPS with a certificate
// renewed on SIGHUP.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/integration/serve_process.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/metrics_scrape.hpp"
#include "tests/support/test_certificates.hpp"

namespace aegaeon {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::ServeProcess;

TEST(ServeProcess, AnswersHealthAndMetricsThenStopsOnSigterm) {
  ServeProcess serve;
  ASSERT_NE(serve.port(), 0) << serve.process().output();

  auto health = testing::http_request(serve.port(), "GET", "/health");
  EXPECT_EQ(health.status, 200);
  auto body = nlohmann::json::parse(health.body);
  EXPECT_EQ(body["status"], "ok");

  auto metrics = testing::http_request(serve.port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  // The /health request above was counted.
  EXPECT_NE(metrics.body.find(R"(aegaeon_http_requests_total{code="200",route="/health"} 1)"),
            std::string::npos)
      << metrics.body;

  EXPECT_EQ(testing::http_request(serve.port(), "GET", "/nope").status, 404);

  serve.process().signal(SIGTERM);
  auto code = serve.process().wait(10s);
  ASSERT_TRUE(code.has_value()) << "did not stop within 10 s of SIGTERM";
  EXPECT_EQ(*code, 0) << serve.process().output();
  EXPECT_NE(serve.process().output().find("stopped cleanly"), std::string::npos);
}

TEST(ServeProcess, MetricsPassPromtool) {
  auto promtool = testing::find_on_path("promtool");
  if (!promtool) GTEST_SKIP() << "promtool not installed (Debian package 'prometheus')";
  ServeProcess serve;
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  testing::http_request(serve.port(), "GET", "/health");
  testing::http_request(serve.port(), "GET", "/missing");
  auto metrics = testing::http_request(serve.port(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  auto [code, output] = testing::run_command({*promtool, "check", "metrics"}, metrics.body);
  EXPECT_EQ(code, 0) << output << "\n--- metrics ---\n" << metrics.body;
  serve.process().signal(SIGINT);
  EXPECT_EQ(serve.process().wait(10s), 0);
}

TEST(ServeProcess, BadConfigNamesFileAndKey) {
  auto path = std::filesystem::temp_directory_path() / "aegaeon-serve-test-bad.yaml";
  std::ofstream(path) << "http:\n  port: many\n";
  auto [code, output] = testing::run_command({AEGAEON_BINARY, "serve", "--config", path.string()});
  EXPECT_EQ(code, 2) << output;
  EXPECT_NE(output.find(path.filename().string()), std::string::npos) << output;
  EXPECT_NE(output.find("http.port"), std::string::npos) << output;
  std::filesystem::remove(path);

  auto [set_code, set_output] =
      testing::run_command({AEGAEON_BINARY, "serve", "--set", "log.level=loud"});
  EXPECT_EQ(set_code, 2) << set_output;
  EXPECT_NE(set_output.find("log.level"), std::string::npos) << set_output;
}

TEST(ServeProcess, StartsWithTheShippedExampleConfig) {
  // Every key in the example config must exist in the schema, or serve refuses to start.
  ServeProcess serve({"--config", AEGAEON_SOURCE_DIR "/deploy/config/aegaeon.yaml"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  EXPECT_EQ(testing::http_request(serve.port(), "GET", "/health").status, 200);
}

TEST(ServeProcess, PortInUseIsAClearError) {
  ServeProcess first;
  ASSERT_NE(first.port(), 0);
  auto [code, output] = testing::run_command(
      {AEGAEON_BINARY, "serve", "--port", std::to_string(first.port()), "--set",
       "serve.data_dir=" AEGAEON_TEST_DATA_DIR},
      {}, 60s);
  EXPECT_NE(code, 0);
  EXPECT_NE(output.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())),
            std::string::npos)
      << output;
}

// aegaeon serve holds every model: a host cache limit they exceed stops it at start, naming the
// key and both sizes; one they fit lets it serve.
TEST(ServeProcess, AHostCacheLimitBelowTheModelsIsAClearError) {
  auto [code, output] = testing::run_command({AEGAEON_BINARY, "serve", "--port", "0", "--set",
                                              "serve.data_dir=" AEGAEON_TEST_DATA_DIR, "--set",
                                              "serve.host_cache_bytes=1MiB"},
                                             {}, 60s);
  EXPECT_EQ(code, 2) << output;
  EXPECT_NE(output.find("serve.host_cache_bytes: the models' weights take"), std::string::npos) << output;
  EXPECT_NE(output.find("more than the limit of 1048576"), std::string::npos) << output;

  ServeProcess roomy({"--set", "serve.host_cache_bytes=1GiB"});
  ASSERT_NE(roomy.port(), 0) << roomy.process().output();
}

// HTTPS as an operator sets it up: certificates from the openssl CLI, curl as the client, a plain
// HTTP client refused and counted, the certificate renewed in place and reloaded on SIGHUP.
TEST(ServeProcess, ServesHttpsAndReloadsItsCertificateOnSighup) {
  const auto curl = testing::find_on_path("curl");
  if (!curl) GTEST_SKIP() << "curl is not on PATH (Debian package 'curl')";
  const auto dir = std::filesystem::temp_directory_path() / ("aegaeon-serve-https-" + std::to_string(::getpid()));
  auto certs = testing::TestCertificates::make(dir);
  ASSERT_TRUE(certs.ok()) << certs.error().message;
  const std::string cert = (dir / "live.pem").string();
  const std::string key = (dir / "live.key").string();
  auto install = [&](const testing::CertificateFiles& from) {
    std::filesystem::copy_file(from.cert, cert, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(from.key, key, std::filesystem::copy_options::overwrite_existing);
  };
  install(certs->server);

  ServeProcess serve({"--set", "http.tls_cert_file=" + cert, "--set", "http.tls_key_file=" + key});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  const std::string base = "https://127.0.0.1:" + std::to_string(serve.port());
  auto get = [&](const std::string& path, const std::string& ca, const std::string& body = {}) {
    std::vector<std::string> argv = {*curl, "-sS", "--fail-with-body", "--max-time", "60", "--cacert", ca};
    if (!body.empty()) argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    argv.push_back(base + path);
    return testing::run_command(argv, {}, 70s);
  };

  auto [code, answer] = get("/v1/completions", certs->ca,
                            R"({"model":"demo-xs","prompt":"Hello","max_tokens":4,"temperature":0})");
  ASSERT_EQ(code, 0) << answer;
  EXPECT_EQ(nlohmann::json::parse(answer)["usage"]["completion_tokens"], 4) << answer;

  // Plain HTTP on the HTTPS port gets no answer, and the refusal shows in /metrics.
  int plain_status = 0;
  try {
    plain_status = testing::http_request(serve.port(), "GET", "/health", {}, {}, 5s).status;
  } catch (const std::runtime_error&) {
  }
  EXPECT_NE(plain_status, 200);
  auto [metrics_code, metrics] = get("/metrics", certs->ca);
  ASSERT_EQ(metrics_code, 0) << metrics;
  EXPECT_GE(testing::MetricsSnapshot::parse(metrics).sum("aegaeon_tls_handshake_failures_total",
                                                          R"(listener="http",reason="not_tls")"),
            1)
      << metrics;

  // Renewed by another CA and reloaded on SIGHUP: new connections get the new certificate.
  install(certs->server_renewed);
  serve.process().signal(SIGHUP);
  ASSERT_TRUE(serve.process().wait_for_line(std::regex("SIGHUP: reloaded"), 10s)) << serve.process().output();
  auto [renewed, health] = get("/health", certs->other_ca);
  EXPECT_EQ(renewed, 0) << health;
  EXPECT_EQ(get("/health", certs->ca).first, 60) << "the old certificate is still served";

  serve.process().signal(SIGTERM);
  EXPECT_EQ(serve.process().wait(10s), 0) << serve.process().output();
  std::filesystem::remove_all(dir);
}

TEST(ServeProcess, HalfATlsPairIsAClearError) {
  auto [code, output] = testing::run_command(
      {AEGAEON_BINARY, "serve", "--port", "0", "--set", "http.tls_cert_file=/etc/ssl/certs/none.pem"}, {}, 60s);
  EXPECT_EQ(code, 2) << output;
  EXPECT_NE(output.find("http.tls_key_file is not set"), std::string::npos) << output;

  auto [missing, missing_output] =
      testing::run_command({AEGAEON_BINARY, "serve", "--port", "0", "--set", "http.tls_cert_file=/nonexistent/a.pem",
                            "--set", "http.tls_key_file=/nonexistent/a.key"},
                           {}, 60s);
  EXPECT_EQ(missing, 2) << missing_output;
  EXPECT_NE(missing_output.find("/nonexistent/a.pem"), std::string::npos) << missing_output;
}

TEST(AegaeonCli, VersionAndHelp) {
  auto [code, output] = testing::run_command({AEGAEON_BINARY, "version"});
  EXPECT_EQ(code, 0);
  EXPECT_NE(output.find("aegaeon "), std::string::npos);
  auto [help_code, help] = testing::run_command({AEGAEON_BINARY, "serve", "--help"});
  EXPECT_EQ(help_code, 0);
  EXPECT_NE(help.find("--config"), std::string::npos);
  auto [bad_code, bad] = testing::run_command({AEGAEON_BINARY, "frobnicate"});
  EXPECT_NE(bad_code, 0);
}

}  // namespace
}  // namespace aegaeon
