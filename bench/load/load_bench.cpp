// bench_load: load and soak of a real `aegaeon serve` on loopback. N streaming clients cycle
// through every served model (so the decode device switches models between tokens) for a
// baseline phase, then for the soak phase with hostile clients alongside: slowloris connections
// that trickle header bytes and clients sending oversized header blocks. Reports errors by class
// (only 429s from admission control are allowed), TTFT/TBT percentiles per phase and the soak's
// p99 as a ratio of the baseline's (the hostile clients must not block normal ones), and the
// server's RSS over time with its growth per hour from a least-squares slope.
// Exit status: 0 when every criterion holds, 1 otherwise. bench/load/README.md has the figures.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "bench/statistics.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"

namespace {

using aegaeon::bench::least_squares_slope;
using aegaeon::bench::percentile;
using aegaeon::testing::ChildProcess;
using aegaeon::testing::HttpConnection;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string binary = AEGAEON_BINARY;
  std::string config;    // optional --config for the server; default: the embedded demo
  std::string data_dir;  // where the demo models are synthesized; default: the server's own
  int clients = 16;
  double minutes = 2;          // soak phase
  double warmup_seconds = 10;  // same clients, not measured: first allocations and switches
  double baseline_seconds = 30;
  int max_tokens = 32;
  int slowloris = 8;           // connections trickling header bytes
  int oversized = 2;           // clients sending header blocks over http.max_header_bytes
  double sample_seconds = 5;   // RSS sampling period
  double max_p99_ratio = 2.0;  // soak p99 / baseline p99 above this fails the run
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What one phase of streaming clients observed.
struct PhaseStats {
  std::mutex mutex;
  std::vector<double> ttft_s;
  std::vector<double> tbt_s;
  // "ok", "429", "stopped at once" (sampled the end of text first: an empty completion, as
  // valid as any), anything else is an error class
  std::map<std::string, long> outcomes;
  long token_chunks = 0;

  void record(const std::string& outcome, double ttft, const std::vector<double>& gaps) {
    std::lock_guard lock(mutex);
    ++outcomes[outcome];
    if (outcome != "ok") return;
    ttft_s.push_back(ttft);
    tbt_s.insert(tbt_s.end(), gaps.begin(), gaps.end());
    token_chunks += static_cast<long>(gaps.size()) + 1;
  }
};

// One streaming completion; returns its outcome class and fills TTFT and the gaps between token
// chunks (the finishing chunk, which carries no token, is not counted).
std::string stream_once(uint16_t port, const std::string& model, int max_tokens, double& ttft,
                        std::vector<double>& gaps) {
  HttpConnection connection(port);
  auto start = Clock::now();
  connection.send_request("POST", "/v1/completions",
                          json{{"model", model}, {"prompt", "Once upon a time"},
                               {"max_tokens", max_tokens}, {"stream", true}}.dump(),
                          {{"Content-Type", "application/json"}});
  auto head = connection.read_head(60s);
  if (head.status == 429) {
    // Honour Retry-After (capped), as a well-behaved client does.
    int retry = std::stoi(head.header("retry-after").value_or("1"));
    std::this_thread::sleep_for(std::chrono::seconds(std::clamp(retry, 0, 1)));
    return "429";
  }
  if (head.status != 200) return "http " + std::to_string(head.status);
  auto last = start;
  bool first = true;
  std::string finish_reason;
  while (auto event = connection.read_event(60s)) {
    if (*event == "[DONE]") {
      if (!first) return "ok";
      return finish_reason == "stop" ? "stopped at once" : "stream without tokens";
    }
    auto chunk = json::parse(*event, nullptr, false);
    if (chunk.is_discarded() || chunk.contains("error")) return "stream error";
    if (const auto& reason = chunk["choices"][0]["finish_reason"]; !reason.is_null()) {
      if (reason.is_string()) finish_reason = reason.get<std::string>();
      continue;
    }
    auto now = Clock::now();
    if (first) {
      ttft = std::chrono::duration<double>(now - start).count();
    } else {
      gaps.push_back(std::chrono::duration<double>(now - last).count());
    }
    first = false;
    last = now;
  }
  return "stream cut before [DONE]";
}

void streaming_client(uint16_t port, const std::vector<std::string>& models, int index,
                      int max_tokens, Clock::time_point deadline, PhaseStats& stats) {
  for (size_t n = static_cast<size_t>(index); Clock::now() < deadline; ++n) {
    double ttft = 0;
    std::vector<double> gaps;
    std::string outcome;
    try {
      outcome = stream_once(port, models[n % models.size()], max_tokens, ttft, gaps);
    } catch (const std::exception& e) {
      outcome = std::string(e.what()).find("timed out") != std::string::npos ? "timeout" : "connection error";
    }
    stats.record(outcome, ttft, gaps);
  }
}

void run_phase(uint16_t port, const std::vector<std::string>& models, const Options& options, double seconds,
               PhaseStats& stats) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> clients;
  for (int i = 0; i < options.clients; ++i) {
    clients.emplace_back(streaming_client, port, std::cref(models), i, options.max_tokens, deadline, std::ref(stats));
  }
  for (auto& client : clients) client.join();
}

// The hostile clients' tallies.
struct HostileStats {
  std::atomic<long> slowloris_connections{0};
  std::atomic<long> slowloris_closed_by_server{0};
  std::mutex mutex;
  std::vector<double> slowloris_held_s;        // how long the server tolerated one connection
  std::map<std::string, long> oversized;       // response status or how the server refused
};

// Opens a connection, sends a request line and then one header line a second, forever; when the
// server gives up on it (kj's header timeout), starts over.
void slowloris_client(uint16_t port, const std::atomic<bool>& stop, HostileStats& stats) {
  while (!stop) {
    auto opened = Clock::now();
    try {
      HttpConnection connection(port);
      ++stats.slowloris_connections;
      connection.send_raw("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
      for (int i = 0; !stop; ++i) {
        std::this_thread::sleep_for(1s);
        connection.send_raw("X-Slow-" + std::to_string(i) + ": x\r\n");
      }
    } catch (const std::exception&) {
      ++stats.slowloris_closed_by_server;
      std::lock_guard lock(stats.mutex);
      stats.slowloris_held_s.push_back(seconds_since(opened));
    }
  }
}

// Sends requests whose header block exceeds http.max_header_bytes (64 KiB by default).
void oversized_header_client(uint16_t port, const std::atomic<bool>& stop, HostileStats& stats) {
  const std::string huge(128 << 10, 'a');
  while (!stop) {
    std::string outcome;
    try {
      HttpConnection connection(port);
      connection.send_request("GET", "/v1/models", {}, {{"X-Huge", huge}});
      outcome = "http " + std::to_string(connection.read_head(10s).status);
    } catch (const std::exception& e) {
      // The server may answer 431 and close before reading everything: the send then fails.
      outcome = std::string(e.what()).find("timed out") != std::string::npos ? "timeout" : "closed mid-request";
    }
    {
      std::lock_guard lock(stats.mutex);
      ++stats.oversized[outcome];
    }
    std::this_thread::sleep_for(20ms);
  }
}

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

void print_phase(const char* name, PhaseStats& stats, double seconds) {
  std::printf("%s (%.0f s):\n  outcomes:", name, seconds);
  for (const auto& [outcome, count] : stats.outcomes) std::printf(" %s=%ld", outcome.c_str(), count);
  std::printf("\n  TTFT p50 %.3f s  p99 %.3f s   TBT p50 %.4f s  p99 %.4f s   %.1f token chunks/s\n",
              percentile(stats.ttft_s, 0.5), percentile(stats.ttft_s, 0.99), percentile(stats.tbt_s, 0.5),
              percentile(stats.tbt_s, 0.99), static_cast<double>(stats.token_chunks) / seconds);
}

// Errors other than intended 429s, by class.
long unexpected_errors(const PhaseStats& stats) {
  long errors = 0;
  for (const auto& [outcome, count] : stats.outcomes) {
    if (outcome != "ok" && outcome != "429" && outcome != "stopped at once") errors += count;
  }
  return errors;
}

int run(const Options& options) {
  std::vector<std::string> argv = {options.binary, "serve", "--port", "0"};
  if (!options.config.empty()) argv.insert(argv.end(), {"--config", options.config});
  if (!options.data_dir.empty()) argv.insert(argv.end(), {"--set", "serve.data_dir=" + options.data_dir});
  ChildProcess server(argv);
  auto match = server.wait_for_line(std::regex(R"(serving on http://[0-9.]+:([0-9]+))"), 300s);
  if (!match) {
    std::fprintf(stderr, "bench_load: the server did not start:\n%s\n", server.output().c_str());
    return 1;
  }
  auto port = static_cast<uint16_t>(std::stoi((*match)[1]));

  std::vector<std::string> models;
  auto listed = json::parse(aegaeon::testing::http_request(port, "GET", "/v1/models").body, nullptr, false);
  if (listed.is_object() && listed["data"].is_array()) {
    for (const auto& model : listed["data"]) models.push_back(model["id"]);
  }
  if (models.empty()) {
    std::fprintf(stderr, "bench_load: GET /v1/models listed no model: %s\n", listed.dump().c_str());
    return 1;
  }
  // Keep reading the server's output so its logging never blocks on a full pipe.
  std::atomic<bool> stop_drain{false};
  std::thread drain([&] {
    static const std::regex kNever("$^");
    while (!stop_drain) {
      server.wait_for_line(kNever, 200ms);
      std::this_thread::sleep_for(50ms);  // at end of output wait_for_line returns at once
    }
  });

  std::printf("bench_load: %s on port %u, models:", options.binary.c_str(), port);
  for (const auto& m : models) std::printf(" %s", m.c_str());
  std::printf("\n  %d streaming clients, max_tokens %d; warm-up %.0f s, baseline %.0f s, then %.1f min with %d slowloris"
              " and %d oversized-header clients\n", options.clients, options.max_tokens, options.warmup_seconds,
              options.baseline_seconds,
              options.minutes, options.slowloris, options.oversized);
  std::printf("warm-up...\n");
  PhaseStats warmup;  // a failing server shows up in the measured phases
  run_phase(port, models, options, options.warmup_seconds, warmup);

  std::printf("baseline phase...\n");
  PhaseStats baseline;
  run_phase(port, models, options, options.baseline_seconds, baseline);

  // The soak: RSS sampling and hostile clients run alongside the streaming clients.
  std::atomic<bool> stop_side{false};
  HostileStats hostile;
  std::vector<std::pair<double, double>> rss;  // (seconds into the soak, RSS MiB)
  auto soak_start = Clock::now();
  std::thread sampler([&] {
    while (!stop_side) {
      rss.emplace_back(seconds_since(soak_start), static_cast<double>(rss_kib(server.pid())) / 1024.0);
      for (auto until = Clock::now() + std::chrono::duration<double>(options.sample_seconds);
           !stop_side && Clock::now() < until;) {
        std::this_thread::sleep_for(50ms);
      }
    }
  });
  std::vector<std::thread> side;
  for (int i = 0; i < options.slowloris; ++i) side.emplace_back(slowloris_client, port, std::cref(stop_side), std::ref(hostile));
  for (int i = 0; i < options.oversized; ++i) side.emplace_back(oversized_header_client, port, std::cref(stop_side), std::ref(hostile));
  std::printf("soak phase...\n");
  PhaseStats soak;
  run_phase(port, models, options, options.minutes * 60, soak);
  stop_side = true;
  for (auto& t : side) t.join();
  sampler.join();

  print_phase("baseline, no hostile clients", baseline, options.baseline_seconds);
  print_phase("soak, with hostile clients", soak, options.minutes * 60);
  double ttft_ratio = percentile(soak.ttft_s, 0.99) / std::max(percentile(baseline.ttft_s, 0.99), 1e-9);
  double tbt_ratio = percentile(soak.tbt_s, 0.99) / std::max(percentile(baseline.tbt_s, 0.99), 1e-9);
  std::printf("  p99 soak/baseline: TTFT x%.2f, TBT x%.2f (limit x%.2f)\n", ttft_ratio, tbt_ratio, options.max_p99_ratio);
  std::printf("hostile clients: slowloris %ld connections, %ld closed by the server (held p50 %.1f s, max %.1f s);"
              " oversized headers:", hostile.slowloris_connections.load(), hostile.slowloris_closed_by_server.load(),
              percentile(hostile.slowloris_held_s, 0.5), percentile(hostile.slowloris_held_s, 1.0));
  for (const auto& [outcome, count] : hostile.oversized) std::printf(" %s=%ld", outcome.c_str(), count);
  std::printf("\nserver RSS (MiB) every %.0f s:", options.sample_seconds);
  for (const auto& [t, mib] : rss) std::printf(" %.1f", mib);
  // The second half excludes the allocations a fresh process makes while it warms up.
  std::vector<std::pair<double, double>> steady(rss.begin() + static_cast<long>(rss.size() / 2), rss.end());
  std::printf("\n  growth: %+.1f MiB/h over the soak, %+.1f MiB/h over its second half (least-squares slope)\n",
              least_squares_slope(rss) * 3600, least_squares_slope(steady) * 3600);

  stop_drain = true;
  drain.join();
  server.signal(SIGTERM);
  auto code = server.wait(30s);

  long errors = unexpected_errors(baseline) + unexpected_errors(soak);
  bool ok = errors == 0 && !soak.ttft_s.empty() && ttft_ratio <= options.max_p99_ratio &&
            tbt_ratio <= options.max_p99_ratio && code == 0;
  std::printf("%s: %ld unexpected errors, server exit %d\n", ok ? "PASS" : "FAIL", errors, code.value_or(-1));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"Load and soak of a real `aegaeon serve` on loopback (bench/load/README.md)"};
  app.add_option("--binary", options.binary, "aegaeon binary")->capture_default_str();
  app.add_option("--config", options.config, "Server configuration (default: the embedded demo)");
  app.add_option("--data-dir", options.data_dir, "serve.data_dir for the demo models");
  app.add_option("--clients", options.clients, "Concurrent streaming clients")->capture_default_str()->check(CLI::Range(1, 512));
  app.add_option("--minutes", options.minutes, "Soak phase length")->capture_default_str()->check(CLI::Range(0.05, 120.0));
  app.add_option("--warmup-seconds", options.warmup_seconds, "Unmeasured warm-up with the same clients")->capture_default_str()->check(CLI::Range(0.0, 600.0));
  app.add_option("--baseline-seconds", options.baseline_seconds, "Baseline phase length")->capture_default_str()->check(CLI::Range(1.0, 3600.0));
  app.add_option("--max-tokens", options.max_tokens, "max_tokens per request")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--slowloris", options.slowloris, "Slowloris connections")->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--oversized", options.oversized, "Oversized-header clients")->capture_default_str()->check(CLI::Range(0, 64));
  app.add_option("--sample-seconds", options.sample_seconds, "RSS sampling period")->capture_default_str()->check(CLI::Range(0.1, 600.0));
  app.add_option("--max-p99-ratio", options.max_p99_ratio, "Fail when soak p99 exceeds baseline p99 by this factor")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines show up while it runs
  return run(options);
}
