// bench_cluster: how serving scales with worker processes, and what the process boundary costs.
//
// For `aegaeon serve` (one process) and then for `aegaeon controller` with 1, 2, 4 ...
// `aegaeon worker` processes on this machine, it sends the same burst of streaming requests
// (all at once, round-robin over the demo models, greedy) and measures generated tokens per
// second from the first send to the last token. Scaling is reported against one worker and
// against the ideal min(N, cores) (the machine's cores are the physical limit). A lone stream
// through each topology measures the client-side gap between tokens: the cluster's gap minus
// the all-in-one server's is what the Cap'n Proto hop (worker → controller → client) adds per
// token, measured in the same run. A split topology (one `--role prefill` and one `--role
// decode` worker) runs the same burst, and long prompts through it measure the KV handoff: bytes
// per second the decode worker takes from the prefill worker (the controller's counters) against
// a memcpy of the same bytes in this process, the physical limit of a copy on this machine — by
// shared memory (both on this host, the default), then pulled over RPC through the controller
// (`--kv-transport rpc`), the baseline of that shortcut, and over RPC again with every cluster
// connection mutual TLS (what TLS costs a handoff). A placed topology (two workers whose host
// caches hold the largest demo model or the three others, never all: `serve.host_cache_bytes`)
// runs the same burst, the controller moving models between the caches as the requests come,
// against two workers that hold every model: the throughput that placement keeps while each
// worker holds less than all the models.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/e2e/load_generator.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/metrics_scrape.hpp"
#include "tests/support/test_certificates.hpp"

namespace aegaeon::bench {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kClusterToken = "bench-cluster-secret";

struct Options {
  std::string binary = AEGAEON_BINARY;
  std::string data_dir = AEGAEON_BENCH_DATA_DIR;
  std::vector<int> workers = {1, 2, 4};
  bool pin = true;           // each serving process on one core (taskset), so N workers can use N
  int requests = 32;         // per burst
  int max_tokens = 64;       // per request
  int probe_tokens = 128;    // per lone-stream probe request
  bool split = true;         // also measure a prefill-only + a decode-only worker
  bool placed = true;        // also measure two workers with a host cache limit
  int handoff_prompt_words = 800;  // words per KV-handoff probe prompt (a few tokens each)
  double read_timeout_s = 300;
};

unsigned cores() { return std::max(1u, std::thread::hardware_concurrency()); }

// `argv` run on core `index` mod cores (taskset execs it in place), or as is without --pin.
std::vector<std::string> pinned(const Options& o, int index, std::vector<std::string> argv) {
  if (!o.pin) return argv;
  std::vector<std::string> out = {"taskset", "-c", std::to_string(static_cast<unsigned>(index) % cores())};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// One `aegaeon serve`, or a controller and its workers, on ephemeral loopback ports; stopped
// (SIGTERM, then reaped) when destroyed.
class Topology {
 public:
  static std::unique_ptr<Topology> all_in_one(const Options& o) {
    auto t = std::unique_ptr<Topology>(new Topology("serve"));
    t->processes_.push_back(std::make_unique<testing::ChildProcess>(pinned(
        o, 0, {o.binary, "serve", "--host", "127.0.0.1", "--port", "0", "--set", "serve.data_dir=" + o.data_dir})));
    auto match = t->processes_.back()->wait_for_line(std::regex(R"(serving on http://[0-9.]+:([0-9]+))"),
                                                     std::chrono::seconds(120));
    if (!match) throw std::runtime_error("aegaeon serve did not start:\n" + t->processes_.back()->output());
    t->http_port_ = static_cast<std::uint16_t>(std::stoi((*match)[1]));
    return t;
  }

  /// A controller and `workers` workers; with `roles`, worker i runs roles[i] (--role); every
  /// worker gets `worker_args` too, and every process (controller and workers) `shared_args`.
  static std::unique_ptr<Topology> cluster(const Options& o, int workers, std::vector<std::string> roles = {},
                                           std::vector<std::string> worker_args = {}, std::string name = {},
                                           const std::vector<std::string>& shared_args = {}) {
    if (name.empty()) name = roles.empty() ? "cluster:" + std::to_string(workers) : "split:1+1";
    auto t = std::unique_ptr<Topology>(new Topology(std::move(name)));
    std::vector<std::string> controller_argv = {o.binary,      "controller", "--listen",      "127.0.0.1:0", "--http",
                                                "127.0.0.1:0", "--cluster-token", kClusterToken};
    controller_argv.insert(controller_argv.end(), shared_args.begin(), shared_args.end());
    auto& controller =
        *t->processes_.emplace_back(std::make_unique<testing::ChildProcess>(std::move(controller_argv)));
    auto match = controller.wait_for_line(
        std::regex(R"(workers join [0-9.]+:([0-9]+)(?: \(mutual TLS\))?; serving on http://[0-9.]+:([0-9]+))"),
        std::chrono::seconds(60));
    if (!match) throw std::runtime_error("aegaeon controller did not start:\n" + controller.output());
    const std::string join = "127.0.0.1:" + std::string((*match)[1]);
    t->http_port_ = static_cast<std::uint16_t>(std::stoi((*match)[2]));
    for (int i = 0; i < workers; ++i) {
      std::vector<std::string> argv = {o.binary, "worker", "--join", join, "--name", "bench-worker-" + std::to_string(i),
                                       "--cluster-token", kClusterToken, "--set", "serve.data_dir=" + o.data_dir};
      if (static_cast<std::size_t>(i) < roles.size()) argv.insert(argv.end(), {"--role", roles[static_cast<std::size_t>(i)]});
      argv.insert(argv.end(), worker_args.begin(), worker_args.end());
      argv.insert(argv.end(), shared_args.begin(), shared_args.end());
      t->processes_.push_back(std::make_unique<testing::ChildProcess>(pinned(o, i, std::move(argv))));
    }
    for (int i = 1; i <= workers; ++i) {
      auto& worker = *t->processes_[static_cast<std::size_t>(i)];
      if (!worker.wait_for_line(std::regex(R"(joined controller at \S+ as node [0-9]+)"), std::chrono::seconds(120))) {
        throw std::runtime_error("worker " + std::to_string(i - 1) + " did not join:\n" + worker.output());
      }
    }
    return t;
  }

  ~Topology() {
    // Workers first, so that none of them logs a lost controller on the way out.
    for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) (*it)->signal(SIGTERM);
    for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) {
      if (!(*it)->wait(std::chrono::seconds(30))) std::fprintf(stderr, "%s: a process did not stop in 30 s\n", name_.c_str());
    }
  }

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] std::uint16_t http_port() const { return http_port_; }
  [[nodiscard]] int processes() const { return static_cast<int>(processes_.size()); }

 private:
  explicit Topology(std::string name) : name_(std::move(name)) {}
  std::string name_;
  std::vector<std::unique_ptr<testing::ChildProcess>> processes_;
  std::uint16_t http_port_ = 0;
};

struct Result {
  std::string topology;
  int processes = 0;
  int completed = 0, failed = 0;
  double tokens = 0, makespan_s = 0, ttft_p50_s = 0;
  double gap_ms = 0;  // lone stream: mean client-side gap between tokens
  [[nodiscard]] double tokens_per_s() const { return makespan_s > 0 ? tokens / makespan_s : 0; }
};

// The KV handoff through a split topology, by one transport.
struct HandoffResult {
  std::string transport;  // "shared_memory" or "rpc"
  bool tls = false;       // the cluster's connections are mutual TLS
  double handoffs = 0, bytes = 0, pull_s = 0;
  // Client-side gap between a probe's first token (from the prefill worker) and its second (from
  // the decode worker): export, handoff, import and one decode step, end to end.
  double second_token_gap_s = 0;
  // The same bytes copied in this process: into memory allocated for the copy (what a receiver
  // of a new KV does: page faults included) and into memory already touched.
  double memcpy_fresh_bytes_per_s = 0;
  double memcpy_warm_bytes_per_s = 0;
  [[nodiscard]] double bytes_per_s() const { return pull_s > 0 ? bytes / pull_s : 0; }
};

// Keeps the compiler from dropping a copy nobody reads.
void benchmark_keep(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

// The sum of `port`'s /metrics samples called `name` whose labels contain `label` (e.g.
// `transport="rpc"`; empty: all), 0 when there are none.
double read_counter(std::uint16_t port, const std::string& name, const std::string& label = {}) {
  auto metrics = testing::scrape_metrics(port);
  if (!metrics.ok()) throw std::runtime_error(metrics.error().message);
  return metrics->sum(name, label);
}

// Bytes per second of memcpy of `size` bytes, best of a few repetitions, as the same-run
// physical limit of a copy: into a buffer allocated for it (`fresh`: the first touch of its
// pages costs what it costs any receiver of a new KV) or into one written before.
double memcpy_bytes_per_s(std::size_t size, bool fresh) {
  std::vector<std::byte> from(size, std::byte{1});
  std::vector<std::byte> warm(size, std::byte{0});
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto start = Clock::now();
    if (fresh) {
      // Pages straight from the kernel, as for any buffer larger than malloc keeps around.
      void* to = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (to == MAP_FAILED) throw std::runtime_error("mmap of " + std::to_string(size) + " bytes failed");
      std::memcpy(to, from.data(), size);
      benchmark_keep(to);
      munmap(to, size);
    } else {
      std::memcpy(warm.data(), from.data(), size);
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (s > 0) best = std::max(best, static_cast<double>(size) / s);
  }
  return best;
}

// Long prompts, two tokens each (so every request reaches its decode worker), one at a time on
// every model: the controller's handoff counters of `transport` over the run give the rate.
HandoffResult measure_handoff(const Options& o, const Topology& topology, const std::string& transport,
                              bool tls = false) {
  const std::uint16_t port = topology.http_port();
  const std::string label = "transport=\"" + transport + "\"";
  const double handoffs0 = read_counter(port, "aegaeon_cluster_kv_handoffs_total", label);
  const double bytes0 = read_counter(port, "aegaeon_cluster_kv_handoff_bytes_total", label);
  const double seconds0 = read_counter(port, "aegaeon_cluster_kv_handoff_seconds_total", label);
  std::string prompt;
  for (int i = 0; i < o.handoff_prompt_words; ++i) prompt += "word" + std::to_string(i % 97) + " ";
  double gaps = 0;
  int gap_count = 0;
  for (int round = 0; round < 2; ++round) {
    for (const auto& model : served_models(port)) {
      auto run = stream_request(port, {0, model, prompt, 2}, Clock::now(), o.read_timeout_s);
      if (!run.complete || run.status != 200) {
        throw std::runtime_error("KV-handoff probe on " + model + " failed (HTTP " + std::to_string(run.status) +
                                 "): " + run.error + "; try a smaller --handoff-prompt-words");
      }
      if (run.token_s.size() >= 2) {
        gaps += run.token_s[1] - run.token_s[0];
        ++gap_count;
      }
    }
  }
  HandoffResult r;
  r.transport = transport;
  r.tls = tls;
  r.second_token_gap_s = gap_count > 0 ? gaps / gap_count : 0;
  r.handoffs = read_counter(port, "aegaeon_cluster_kv_handoffs_total", label) - handoffs0;
  r.bytes = read_counter(port, "aegaeon_cluster_kv_handoff_bytes_total", label) - bytes0;
  r.pull_s = read_counter(port, "aegaeon_cluster_kv_handoff_seconds_total", label) - seconds0;
  if (r.handoffs == 0) throw std::runtime_error("no KV handoff went by " + transport);
  const auto each = static_cast<std::size_t>(r.bytes / r.handoffs);
  r.memcpy_fresh_bytes_per_s = memcpy_bytes_per_s(each, true);
  r.memcpy_warm_bytes_per_s = memcpy_bytes_per_s(each, false);
  return r;
}

Result measure(const Options& o, const Topology& topology) {
  Result r;
  r.topology = topology.name();
  r.processes = topology.processes();
  const std::uint16_t port = topology.http_port();
  const auto models = served_models(port);
  // Warm-up, not measured: every model answers once (host caches filled, code paths hot).
  for (const auto& model : models) stream_request(port, {0, model, "Warm up", 2}, Clock::now(), o.read_timeout_s);

  // A lone stream on the first model: the gap between tokens with nothing else running.
  std::vector<double> gaps;
  for (int k = 0; k < 3; ++k) {
    auto t = stream_request(port, {0, models[0], "Probe " + std::to_string(k) + ": once upon a time", o.probe_tokens},
                            Clock::now(), o.read_timeout_s);
    for (std::size_t i = 2; i < t.token_s.size(); ++i) gaps.push_back(t.token_s[i] - t.token_s[i - 1]);
  }
  if (!gaps.empty()) {
    double sum = 0;
    for (double g : gaps) sum += g;
    r.gap_ms = 1e3 * sum / static_cast<double>(gaps.size());
  }

  // The burst: every request due at once, one client thread each.
  std::vector<LoadRequest> burst;
  for (int i = 0; i < o.requests; ++i) {
    burst.push_back({0, models[static_cast<std::size_t>(i) % models.size()],
                     "Request " + std::to_string(i) + ": tell me about the sea", o.max_tokens});
  }
  const auto runs = replay(burst, {port, o.requests, o.read_timeout_s, "[" + topology.name() + "]"});
  std::vector<double> ttft;
  for (const auto& run : runs) {
    if (!run.complete || run.status != 200) {
      ++r.failed;
      continue;
    }
    ++r.completed;
    r.tokens += static_cast<double>(run.token_s.size());
    if (!run.token_s.empty()) {
      r.makespan_s = std::max(r.makespan_s, run.token_s.back());
      ttft.push_back(run.token_s.front() - run.arrival_s);
    }
  }
  r.ttft_p50_s = percentile(ttft, 0.5);
  return r;
}

// The placed topology's host cache limit: room for the largest demo model (its file's bytes
// bound its weights) plus 1 MiB, which is less than all the models take (`all_bytes`).
struct PlacementLimit {
  std::uint64_t cache_bytes = 0;
  std::uint64_t all_bytes = 0;
};
PlacementLimit placement_limit(const Options& o) {
  PlacementLimit limit;
  std::uint64_t largest = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(o.data_dir) / "demo-models-v3")) {
    const auto weights = entry.path() / "model.safetensors";
    if (!std::filesystem::exists(weights)) continue;
    const auto bytes = std::filesystem::file_size(weights);
    largest = std::max<std::uint64_t>(largest, bytes);
    limit.all_bytes += bytes;
  }
  if (largest == 0) throw std::runtime_error("no demo models under " + o.data_dir);
  limit.cache_bytes = largest + (1u << 20);
  return limit;
}

void print_report(const Options& o, const std::vector<Result>& results, const std::vector<HandoffResult>& handoffs,
                  const PlacementLimit& placement) {
  const unsigned cores = aegaeon::bench::cores();
  const Result* one = nullptr;
  const Result* serve = nullptr;
  for (const auto& r : results) {
    if (r.topology == "cluster:1") one = &r;
    if (r.topology == "serve") serve = &r;
  }
  std::printf("\n%u cores%s. Burst: every request at once, greedy; tokens/s from the first send to the last token.\n\n",
              cores, o.pin ? ", each serving process pinned to one" : ", processes not pinned");
  std::printf("%-11s %5s %6s %6s %7s %9s %9s %8s %13s %12s\n", "topology", "procs", "done", "failed", "tokens",
              "makespan", "tokens/s", "ttft-p50", "x(1 worker)", "lone gap ms");
  for (const auto& r : results) {
    char scaling[48] = "";
    if (one != nullptr && one->tokens_per_s() > 0 && r.topology.rfind("cluster:", 0) == 0) {
      const int n = std::stoi(r.topology.substr(8));
      std::snprintf(scaling, sizeof scaling, "%.2fx/%dx", r.tokens_per_s() / one->tokens_per_s(),
                    std::min(n, static_cast<int>(cores)));
    }
    if (one != nullptr && one->tokens_per_s() > 0 && r.topology.rfind("split:", 0) == 0) {
      std::snprintf(scaling, sizeof scaling, "%.2fx", r.tokens_per_s() / one->tokens_per_s());
    }
    std::printf("%-11s %5d %6d %6d %7.0f %8.2fs %9.1f %7.3fs %13s %12.3f\n", r.topology.c_str(), r.processes,
                r.completed, r.failed, r.tokens, r.makespan_s, r.tokens_per_s(), r.ttft_p50_s, scaling, r.gap_ms);
  }
  std::printf("\nx(1 worker): tokens/s over one worker's / the ideal min(N, cores)%s.\n",
              o.pin ? "" : " (unpinned, one worker's two device threads may already use two cores)");
  if (one != nullptr && serve != nullptr && one->gap_ms > 0 && serve->gap_ms > 0) {
    std::printf("RPC cost per token (lone stream, cluster:1 gap - serve gap): %.1f us (%.2fx the all-in-one gap)\n",
                1e3 * (one->gap_ms - serve->gap_ms), one->gap_ms / serve->gap_ms);
  }
  const double mib = 1024.0 * 1024.0;
  for (const HandoffResult& h : handoffs) {
    auto ratio = [&](double limit) { return limit > 0 ? h.bytes_per_s() / limit : 0.0; };
    std::printf("KV handoff (split:1+1) by %s%s%s: %.0f handoffs, %.1f MiB each, at %.1f MiB/s, %.1f ms each; "
                "client gap first -> second token %.1f ms\n",
                h.transport.c_str(), h.tls ? " over mutual TLS" : "",
                h.transport == "rpc" ? " (prefill worker -> controller -> decode worker)" : " (one host, memory file)",
                h.handoffs, h.bytes / h.handoffs / mib, h.bytes_per_s() / mib, 1e3 * h.pull_s / h.handoffs,
                1e3 * h.second_token_gap_s);
    std::printf("  memcpy of the same bytes here: into fresh memory %.1f MiB/s (ratio %.3f), into warm memory %.1f MiB/s "
                "(ratio %.3f)\n",
                h.memcpy_fresh_bytes_per_s / mib, ratio(h.memcpy_fresh_bytes_per_s), h.memcpy_warm_bytes_per_s / mib,
                ratio(h.memcpy_warm_bytes_per_s));
  }
  const HandoffResult* rpc = nullptr;
  const HandoffResult* rpc_tls = nullptr;
  for (const HandoffResult& h : handoffs) {
    if (h.transport == "rpc") (h.tls ? rpc_tls : rpc) = &h;
  }
  if (rpc != nullptr && rpc_tls != nullptr) {
    std::printf("KV handoff over RPC, mutual TLS against plain TCP: %.2fx the time per handoff, %.2fx the client gap "
                "first -> second token\n",
                (rpc_tls->pull_s / rpc_tls->handoffs) / (rpc->pull_s / rpc->handoffs),
                rpc_tls->second_token_gap_s / rpc->second_token_gap_s);
  }
  const Result* two = nullptr;
  const Result* placed = nullptr;
  for (const auto& r : results) {
    if (r.topology == "cluster:2") two = &r;
    if (r.topology == "placed:2") placed = &r;
  }
  if (placed != nullptr) {
    std::printf("placed:2: each worker's host cache %.1f MiB, %.2f of the %.1f MiB all models take; %.1f tokens/s",
                static_cast<double>(placement.cache_bytes) / mib,
                static_cast<double>(placement.cache_bytes) / static_cast<double>(placement.all_bytes),
                static_cast<double>(placement.all_bytes) / mib, placed->tokens_per_s());
    if (two != nullptr && two->tokens_per_s() > 0) {
      std::printf(", %.2fx cluster:2 (every model on both workers)", placed->tokens_per_s() / two->tokens_per_s());
    }
    std::printf("\n");
  }
  if (handoffs.size() == 2 && handoffs[1].bytes_per_s() > 0 && handoffs[0].second_token_gap_s > 0) {
    std::printf("shared memory vs rpc: %.2fx the transfer rate, %.2fx the first -> second token gap\n",
                handoffs[0].bytes_per_s() / handoffs[1].bytes_per_s(),
                handoffs[0].second_token_gap_s / handoffs[1].second_token_gap_s);
  }
}

std::vector<int> parse_counts(const std::string& text) {
  std::vector<int> counts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int n = 0;
    try {
      n = std::stoi(item);
    } catch (const std::exception&) {
      n = 0;
    }
    if (n < 1 || n > 16) throw CLI::ValidationError("--workers", "'" + item + "' is not a worker count in 1..16");
    counts.push_back(n);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return counts;
}

}  // namespace
}  // namespace aegaeon::bench

int main(int argc, char** argv) {
  using namespace aegaeon::bench;
  Options o;
  std::string workers = "1,2,4";
  CLI::App app{"Cluster scaling benchmark: a burst of streaming requests against aegaeon serve and against a "
               "controller with N worker processes on this machine (loopback only)"};
  app.add_option("--aegaeon", o.binary, "the aegaeon binary")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "where the processes keep the demo models")->capture_default_str();
  app.add_option("--workers", workers, "worker counts to measure, comma-separated")->capture_default_str();
  app.add_option("--requests", o.requests, "requests per burst (all sent at once)")->check(CLI::Range(1, 512))
      ->capture_default_str();
  app.add_option("--max-tokens", o.max_tokens, "tokens per burst request")->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_flag("--pin,!--no-pin", o.pin, "run each serving process on one core (taskset), default on")
      ->capture_default_str();
  app.add_option("--probe-tokens", o.probe_tokens, "tokens per lone-stream probe request")->check(CLI::Range(4, 4096))
      ->capture_default_str();
  app.add_flag("--split,!--no-split", o.split,
               "also measure a prefill-only + a decode-only worker (burst and KV handoff), default on")
      ->capture_default_str();
  app.add_flag("--placed,!--no-placed", o.placed,
               "also measure 2 workers whose host caches cannot hold every model (placement), default on")
      ->capture_default_str();
  app.add_option("--handoff-prompt-words", o.handoff_prompt_words, "words per KV-handoff probe prompt")
      ->check(CLI::Range(16, 2500))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    o.workers = parse_counts(workers);
    std::vector<Result> results;
    std::fprintf(stderr, "[serve] starting\n");
    results.push_back(measure(o, *Topology::all_in_one(o)));
    for (int n : o.workers) {
      std::fprintf(stderr, "[cluster:%d] starting a controller and %d worker(s)\n", n, n);
      results.push_back(measure(o, *Topology::cluster(o, n)));
    }
    std::vector<HandoffResult> handoffs;
    if (o.split) {
      std::fprintf(stderr, "[split:1+1] starting a controller, a prefill-only and a decode-only worker\n");
      auto split = Topology::cluster(o, 2, {"prefill", "decode"});
      results.push_back(measure(o, *split));
      handoffs.push_back(measure_handoff(o, *split, "shared_memory"));
      split.reset();
      std::fprintf(stderr, "[split:1+1] again, the decode worker pulling the KV over RPC (--kv-transport rpc)\n");
      handoffs.push_back(measure_handoff(o, *Topology::cluster(o, 2, {"prefill", "decode"}, {"--kv-transport", "rpc"}),
                                         "rpc"));
      // The same over mutual TLS: one certificate (the CA's, no usage limits) for every process.
      const auto dir = std::filesystem::temp_directory_path() / ("aegaeon-bench-cluster-tls-" + std::to_string(getpid()));
      auto certs = aegaeon::testing::TestCertificates::make(dir);
      if (!certs.ok()) throw std::runtime_error(certs.error().message);
      std::fprintf(stderr, "[split:1+1] again over RPC, every cluster connection mutual TLS\n");
      handoffs.push_back(measure_handoff(
          o,
          *Topology::cluster(o, 2, {"prefill", "decode"}, {"--kv-transport", "rpc"}, "split:1+1 tls",
                             {"--set", "cluster.tls_ca_file=" + certs->ca, "--set",
                              "cluster.tls_cert_file=" + certs->server.cert, "--set",
                              "cluster.tls_key_file=" + certs->server.key}),
          "rpc", /*tls=*/true));
      std::filesystem::remove_all(dir);
    }
    PlacementLimit placement;
    if (o.placed) {
      placement = placement_limit(o);  // the demo models exist: the topologies above made them
      std::fprintf(stderr, "[placed:2] starting a controller and 2 workers with serve.host_cache_bytes=%llu\n",
                   static_cast<unsigned long long>(placement.cache_bytes));
      results.push_back(measure(
          o, *Topology::cluster(o, 2, {}, {"--set", "serve.host_cache_bytes=" + std::to_string(placement.cache_bytes)},
                                "placed:2")));
    }
    print_report(o, results, handoffs, placement);
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cluster: %s\n", e.what());
    return 1;
  }
  return 0;
}
