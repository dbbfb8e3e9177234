// bench_e2e: the end-to-end benchmark of issue 5. Replays one workload over HTTP against a live
// `aegaeon serve` for each serving policy (aegaeon and the request-level and static baselines),
// at several rates, and reports client-side SLO attainment and goodput with aegaeon's ratio to
// each baseline; plus the model switch latency against a memcpy of the same bytes measured in
// the same run, and the runtime's own cost per generated token (client-side time between
// tokens minus the device's decode-step time from /metrics). Loopback only; bounded in requests
// and time. See bench/e2e/README.md.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "actors/policy/serving_policy.hpp"
#include "actors/policy/slo_tracker.hpp"
#include "bench/e2e/load_generator.hpp"
#include "bench/e2e/thread_cpu.hpp"
#include "sim/workload.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/metrics_scrape.hpp"

namespace aegaeon::bench {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using testing::MetricsSnapshot;

struct Options {
  std::string binary = AEGAEON_BINARY;
  std::string data_dir = AEGAEON_BENCH_DATA_DIR;
  std::string url;  // a running server instead of starting one per policy
  std::vector<std::string> policies = {"aegaeon", "request-level", "static"};
  std::vector<std::string> server_settings;  // extra --set KEY=VALUE for every server
  // Workload: a trace, or generated.
  std::string trace;
  std::string lengths;  // artifact trace whose (input, output) pairs generated requests draw from
  int models = 0;       // generated: how many of the served models (0: all)
  double rate = 0.25;   // generated: requests/s per model at rate scale 1
  double cv = 1.0;      // generated: inter-arrival coefficient of variation (1 = Poisson)
  double duration_s = 30;
  std::uint64_t seed = 1;
  std::pair<int, int> input_tokens{16, 128};   // generated without --lengths: uniform range
  std::pair<int, int> output_tokens{16, 128};
  double length_scale = 1.0;  // multiplies every input and output length (trace or --lengths)
  std::vector<double> rate_scales = {0.5, 1, 2, 4};
  bool probes_only = false;  // skip the sweep: only the switch and per-token probes
  int max_requests = 600;      // per run, after rate scaling
  double ttft_slo_s = 5.0;
  double tbt_slo_s = 0.1;
  int clients = 64;
  double read_timeout_s = 120;
  std::string csv;  // per-request rows
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

// ---------------------------------------------------------------------------------------------
// The server under test.

class Server {
 public:
  // Starts `aegaeon serve` on an ephemeral loopback port.
  Server(const Options& o, const std::string& policy, int devices_per_role) {
    std::vector<std::string> argv = {o.binary, "serve", "--host", "127.0.0.1", "--port", "0"};
    auto set = [&](const std::string& kv) {
      argv.push_back("--set");
      argv.push_back(kv);
    };
    set("serve.data_dir=" + o.data_dir);
    set("serve.policy=" + policy);
    // Rejections would hide what each policy does under load; every policy admits everything.
    set("serve.admission=false");
    set("serve.ttft_slo_ms=" + std::to_string(static_cast<int>(o.ttft_slo_s * 1000)));
    set("serve.tbt_slo_ms=" + std::to_string(static_cast<int>(o.tbt_slo_s * 1000)));
    if (devices_per_role > 0) {
      set("serve.prefill_devices=" + std::to_string(devices_per_role));
      set("serve.decode_devices=" + std::to_string(devices_per_role));
    }
    for (const auto& kv : o.server_settings) set(kv);
    process_ = std::make_unique<testing::ChildProcess>(argv);
    auto match = process_->wait_for_line(std::regex(R"(serving on http://[0-9.]+:([0-9]+))"), std::chrono::seconds(120));
    if (!match) throw std::runtime_error("aegaeon serve did not start:\n" + process_->output());
    port_ = static_cast<std::uint16_t>(std::stoi((*match)[1]));
  }
  explicit Server(std::uint16_t port) : port_(port) {}
  ~Server() {
    if (!process_) return;
    process_->signal(SIGTERM);
    if (!process_->wait(std::chrono::seconds(30))) std::fprintf(stderr, "aegaeon serve did not stop in 30 s; killed\n");
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// The server's process id; -1 for a server the bench did not start (--url).
  [[nodiscard]] pid_t pid() const { return process_ ? process_->pid() : -1; }

 private:
  std::unique_ptr<testing::ChildProcess> process_;
  std::uint16_t port_ = 0;
};

// Prompts of a given token count: words of a fixed text, as many as the model's tokenizer needs
// on average (measured once through POST /tokenize). Each request starts at another word, so no
// two prompts are the same.
class PromptBuilder {
 public:
  PromptBuilder(std::uint16_t port, const std::string& model) {
    static const char* kText =
        "the quick brown fox jumps over a lazy dog while seven models share one device and take "
        "turns between tokens so that every request meets its deadline even when the arrival "
        "rate doubles and the memory holds only two of them at a time";
    std::string text;
    for (std::string word; const char c : std::string(kText) + " ") {
      if (c == ' ') {
        words_.push_back(word);
        word.clear();
      } else {
        word += c;
      }
    }
    for (int k = 0; k < 8; ++k) {
      for (const auto& w : words_) text += w + " ";
    }
    auto response = testing::http_request(port, "POST", "/tokenize",
                                          json{{"model", model}, {"prompt", text}}.dump());
    const double tokens = json::parse(response.body).value("count", 0.0);
    tokens_per_word_ = std::max(tokens / (8.0 * static_cast<double>(words_.size())), 0.1);
  }
  [[nodiscard]] std::string prompt(int tokens, std::size_t start) const {
    const int words = std::max(1, static_cast<int>(tokens / tokens_per_word_ + 0.5));
    std::string text;
    for (int k = 0; k < words; ++k) text += (k ? " " : "") + words_[(start + static_cast<std::size_t>(k)) % words_.size()];
    return text;
  }

 private:
  std::vector<std::string> words_;
  double tokens_per_word_ = 1;
};

// ---------------------------------------------------------------------------------------------
// The workload.

// The workload at `rate_scale`: a trace compressed in time (the sim's scale_rate), a generated
// workload drawn at the scaled rate over the same duration (so higher rates have more requests).
core::Result<sim::Workload> make_workload(const Options& o, int served, double rate_scale) {
  sim::WorkloadSource source;
  source.trace = o.trace;
  source.lengths_trace = o.lengths;
  source.rate_scale = o.trace.empty() ? 1.0 : rate_scale;
  source.spec.models = o.models > 0 ? o.models : served;
  source.spec.rate_per_model_rps = o.rate * (o.trace.empty() ? rate_scale : 1.0);
  source.spec.burstiness_cv = o.cv;
  source.spec.duration_s = o.duration_s;
  source.spec.seed = o.seed;
  if (!o.trace.empty() || !o.lengths.empty()) return sim::make_workload(source);
  // No length source: uniform lengths in the given ranges (ShareGPT's are too long for a CPU).
  sim::Workload lengths;
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int> in(o.input_tokens.first, o.input_tokens.second);
  std::uniform_int_distribution<int> out(o.output_tokens.first, o.output_tokens.second);
  for (int k = 0; k < 4096; ++k) lengths.requests.push_back({0, 0, in(rng), out(rng)});
  return sim::generate_workload(source.spec, lengths);
}

// The requests of one run: cut to max_requests, trace models mapped onto the served ones,
// lengths scaled and clamped.
std::vector<LoadRequest> requests_for(const Options& o, const sim::Workload& w, const std::vector<std::string>& served,
                                      const PromptBuilder& prompts) {
  std::vector<LoadRequest> out;
  for (std::size_t i = 0; i < w.requests.size() && static_cast<int>(out.size()) < o.max_requests; ++i) {
    const auto& r = w.requests[i];
    const int input = std::clamp(static_cast<int>(r.input_tokens * o.length_scale + 0.5), 1, 2048);
    const int output = std::clamp(static_cast<int>(r.output_tokens * o.length_scale + 0.5), 1, 1024);
    out.push_back({r.arrival_s, served[static_cast<std::size_t>(r.model) % served.size()],
                   prompts.prompt(input, i), output});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scoring (PAPER-NOTES "Metrics", the same SloTracker the simulator and the server use).

struct RunScore {
  std::string policy;
  double rate_scale = 1;
  double offered_rps = 0;  // requests / workload span
  std::int64_t requests = 0, failed = 0;
  double qos = 0, req_attainment = 0, goodput_rps = 0;
  double ttft_p50 = 0, ttft_p90 = 0, tpot_p50 = 0, tpot_p90 = 0, late_send_p99 = 0;
  double switches = 0;
};

RunScore score(const std::vector<RequestTimeline>& runs, policy::Slo slo) {
  RunScore s;
  policy::AttainmentAccumulator acc;
  std::vector<double> ttft, tpot, late;
  double span = 0;
  for (const auto& r : runs) {
    span = std::max(span, r.arrival_s);
    late.push_back(r.sent_s - r.arrival_s);
    if (!r.complete || r.token_s.empty()) {
      acc.add_failed();
      ++s.failed;
      continue;
    }
    policy::SloTracker tracker(slo, r.arrival_s);
    for (double t : r.token_s) tracker.on_token(t);
    acc.add(tracker);
    ttft.push_back(tracker.ttft_s());
    if (tracker.tokens() > 1) tpot.push_back(tracker.tpot_s());
  }
  s.requests = acc.requests();
  s.offered_rps = static_cast<double>(runs.size()) / std::max(span, 1e-9);
  s.qos = acc.mean_qos();
  s.req_attainment = acc.request_attainment();
  s.goodput_rps = s.req_attainment * static_cast<double>(s.requests) / std::max(span, 1e-9);
  s.ttft_p50 = percentile(ttft, 0.5);
  s.ttft_p90 = percentile(ttft, 0.9);
  s.tpot_p50 = percentile(tpot, 0.5);
  s.tpot_p90 = percentile(tpot, 0.9);
  s.late_send_p99 = percentile(late, 0.99);
  return s;
}

// Highest offered rate with attainment ≥ 90%, interpolated between sweep points (PAPER-NOTES
// "Goodput"). `bound` says whether the sweep never fell below (≥) or never reached (<) 90%.
struct Sustained {
  double rps = 0;
  const char* bound = "";
};
Sustained sustained_rate(std::vector<RunScore> runs, double RunScore::*metric) {
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.offered_rps < b.offered_rps; });
  constexpr double kTarget = 0.9;
  if (runs.empty() || runs.front().*metric < kTarget) return {runs.empty() ? 0 : runs.front().offered_rps, "<"};
  for (std::size_t k = 0; k + 1 < runs.size(); ++k) {
    const double a = runs[k].*metric, b = runs[k + 1].*metric;
    if (b < kTarget) {
      const double f = (a - kTarget) / (a - b);
      return {runs[k].offered_rps + f * (runs[k + 1].offered_rps - runs[k].offered_rps), ""};
    }
  }
  return {runs.back().offered_rps, ">="};
}

// ---------------------------------------------------------------------------------------------
// Probes: switch latency against memcpy, and the runtime's cost per token.

struct SwitchProbe {
  double copies = 0, adopted = 0, mean_switch_s = 0, bytes_per_copy = 0, memcpy_s = 0;
};

// One memcpy of `src` into `dst` (both touched already: page faults are not part of a switch).
double time_memcpy(const std::vector<std::byte>& src, std::vector<std::byte>& dst) {
  const auto t0 = Clock::now();
  std::memcpy(dst.data(), src.data(), src.size());
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double delta(const MetricsSnapshot& before, const MetricsSnapshot& after, std::string_view name,
             std::string_view label = {}) {
  return after.sum(name, label) - before.sum(name, label);
}

MetricsSnapshot scrape(std::uint16_t port) {
  auto m = testing::scrape_metrics(port);
  if (!m.ok()) throw std::runtime_error(m.error().message);
  return *m;
}

// One request at a time, cycling through the models: nothing is queued, so nothing can be
// prefetched and every switch is a full copy of the weights. A first round learns the bytes a
// switch copies; in the measured rounds a memcpy of as many bytes follows every request, so
// load from other processes hits the switches and their limit alike.
SwitchProbe probe_switches(const Options& o, std::uint16_t port, const std::vector<std::string>& served,
                           const PromptBuilder& prompts) {
  SwitchProbe p;
  if (served.size() < 2) return p;
  auto cycle = [&](const std::function<void()>& after_each) {
    for (std::size_t m = 0; m < served.size(); ++m) {
      stream_request(port, {0, served[m], prompts.prompt(8, m), 2}, Clock::now(), o.read_timeout_s);
      after_each();
    }
  };
  auto first = scrape(port);
  cycle([] {});
  const auto before = scrape(port);
  const double first_copies = delta(first, before, "aegaeon_model_switches_total", "prefetched=\"false\"");
  if (first_copies < 1) return p;
  const auto bytes = static_cast<std::size_t>(delta(first, before, "aegaeon_weights_copy_bytes_total") / first_copies);
  std::vector<std::byte> src(bytes, std::byte{1}), dst(bytes, std::byte{2});
  std::vector<double> memcpy_s;
  for (int round = 0; round < 3; ++round) cycle([&] { memcpy_s.push_back(time_memcpy(src, dst)); });
  const auto after = scrape(port);
  p.copies = delta(before, after, "aegaeon_model_switches_total", "prefetched=\"false\"");
  p.adopted = delta(before, after, "aegaeon_model_switches_total", "prefetched=\"true\"");
  if (p.copies < 1) return p;
  // The histogram also times requests for a model already resident (no copy, ~0 s): divide by
  // the copies, not by its count.
  p.mean_switch_s = delta(before, after, "aegaeon_model_switch_seconds_sum") / p.copies;
  p.bytes_per_copy = delta(before, after, "aegaeon_weights_copy_bytes_total") / p.copies;
  p.memcpy_s = mean(memcpy_s);
  return p;
}

struct OverheadProbe {
  double tokens = 0, client_gap_s = 0, device_step_s = 0;
  // CPU seconds of the server over the probe (when the bench started it): the forward passes
  // (pool threads + the device threads' time inside them) and everything else (the runtime).
  bool have_cpu = false;
  double generated = 0, compute_cpu_s = 0, runtime_cpu_s = 0;
};

// A lone stream (batch of one, its model already resident): every client-side gap between two
// decoded tokens is one device step plus everything around it — decode actor, gpu_worker
// messages, proxy, detokenizer, SSE, kj, loopback TCP, the client's read. Wall-clock gaps grow
// with every thread wake-up a loaded machine delays, so the probe also reads the server's
// per-thread CPU time, which does not.
OverheadProbe probe_overhead(const Options& o, std::uint16_t port, pid_t server_pid, const std::string& model,
                             const PromptBuilder& prompts) {
  OverheadProbe p;
  stream_request(port, {0, model, prompts.prompt(8, 0), 2}, Clock::now(), o.read_timeout_s);
  const auto before = scrape(port);
  const auto cpu_before = read_thread_cpu(server_pid);
  std::vector<double> gaps;
  for (int k = 0; k < 5; ++k) {
    auto t = stream_request(port, {0, model, prompts.prompt(16, 5 + k), 128}, Clock::now(), o.read_timeout_s);
    // Gaps from the second decoded token on: the first one also carries the prefill handoff.
    for (std::size_t i = 2; i < t.token_s.size(); ++i) gaps.push_back(t.token_s[i] - t.token_s[i - 1]);
  }
  const auto cpu_after = read_thread_cpu(server_pid);
  const auto after = scrape(port);
  const double steps = delta(before, after, "aegaeon_decode_step_seconds_count");
  if (steps < 1 || gaps.empty()) return p;
  p.tokens = static_cast<double>(gaps.size());
  p.client_gap_s = mean(gaps);
  p.device_step_s = delta(before, after, "aegaeon_decode_step_seconds_sum") / steps;
  if (!cpu_before.empty() && !cpu_after.empty()) {
    const CpuSplit split = cpu_between(cpu_before, cpu_after);
    const double engine_s = delta(before, after, "aegaeon_device_engine_cpu_seconds_total");
    p.have_cpu = true;
    p.generated = delta(before, after, "aegaeon_generation_tokens_total");
    p.compute_cpu_s = split.compute_s + engine_s;
    p.runtime_cpu_s = split.other_s - engine_s;
  }
  return p;
}

// ---------------------------------------------------------------------------------------------

struct PolicyReport {
  std::string policy;
  int devices_per_role = 0;  // 0: the server's default (1 + 1)
  std::vector<RunScore> runs;
  SwitchProbe switches;
  OverheadProbe overhead;
};

void write_csv_rows(std::ofstream& csv, const std::string& policy, double rate_scale,
                    const std::vector<LoadRequest>& requests, const std::vector<RequestTimeline>& runs) {
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    csv << policy << ',' << rate_scale << ',' << requests[i].model << ',' << r.arrival_s << ',' << r.sent_s << ','
        << r.prompt_tokens << ',' << requests[i].max_tokens << ',' << r.token_s.size() << ','
        << (r.token_s.empty() ? -1 : r.token_s.front() - r.arrival_s) << ','
        << (r.token_s.empty() ? -1 : r.token_s.back() - r.arrival_s) << ',' << r.status << ','
        << (r.complete ? 1 : 0) << '\n';
  }
}

// `devices_per_role`: 0 for the server's default (one prefill and one decode device).
PolicyReport run_policy(const Options& o, const std::string& policy_name, int devices_per_role,
                        std::ofstream* csv) {
  PolicyReport report;
  report.policy = policy_name;
  report.devices_per_role = devices_per_role;
  std::unique_ptr<Server> server;
  if (!o.url.empty()) {
    const std::regex loopback(R"(http://(127\.0\.0\.1|localhost):([0-9]+)/?)");
    std::smatch m;
    if (!std::regex_match(o.url, m, loopback)) throw std::runtime_error("--url must be http://127.0.0.1:PORT (loopback only)");
    server = std::make_unique<Server>(static_cast<std::uint16_t>(std::stoi(m[2])));
  } else {
    server = std::make_unique<Server>(o, policy_name, devices_per_role);
  }
  const auto served = served_models(server->port());
  const std::uint16_t port = server->port();
  PromptBuilder prompts(port, served[0]);
  // Warm-up, not measured: every model answers once.
  for (std::size_t m = 0; m < served.size(); ++m) {
    stream_request(port, {0, served[m], prompts.prompt(8, m), 2}, Clock::now(), o.read_timeout_s);
  }
  const policy::Slo slo{o.ttft_slo_s, o.tbt_slo_s};
  for (double scale : o.probes_only ? std::vector<double>{} : o.rate_scales) {
    auto workload = make_workload(o, static_cast<int>(served.size()), scale);
    if (!workload.ok()) throw std::runtime_error(workload.error().message);
    auto requests = requests_for(o, *workload, served, prompts);
    char label[96];
    std::snprintf(label, sizeof label, "[%s x%.2g]", policy_name.c_str(), scale);
    std::fprintf(stderr, "%s %zu requests over %.0f s\n", label, requests.size(),
                 requests.empty() ? 0.0 : requests.back().arrival_s);
    const auto before = scrape(port);
    auto runs = replay(requests, {port, o.clients, o.read_timeout_s, label});
    auto s = score(runs, slo);
    s.policy = policy_name;
    s.rate_scale = scale;
    s.switches = delta(before, scrape(port), "aegaeon_model_switches_total");
    std::fprintf(stderr, "%s qos %.1f%%  req %.1f%%  failed %lld\n", label, 100 * s.qos, 100 * s.req_attainment,
                 static_cast<long long>(s.failed));
    report.runs.push_back(s);
    if (csv != nullptr) write_csv_rows(*csv, policy_name, scale, requests, runs);
  }
  std::fprintf(stderr, "[%s] probes: switch latency, per-token overhead\n", policy_name.c_str());
  report.switches = probe_switches(o, port, served, prompts);
  report.overhead = probe_overhead(o, port, server->pid(), served[0], prompts);
  return report;
}

// aegaeon's sustained rate over a baseline's, with the bound the sweep allows ("> 2.00x" when
// the baseline missed 90% even at the lowest rate).
std::string ratio_text(const Sustained& a, const Sustained& b) {
  const std::string_view ab = a.bound, bb = b.bound;
  if ((ab == bb && !ab.empty()) || b.rps <= 0) return "n/a (the sweep does not separate them)";
  char text[64];
  const char* bound = ab == "<" ? "< " : bb == "<" ? "> " : ab == ">=" ? ">= " : bb == ">=" ? "<= " : "";
  std::snprintf(text, sizeof text, "%s%.2fx", bound, a.rps / b.rps);
  return text;
}

void print_report(const Options& o, const std::vector<PolicyReport>& reports) {
  std::printf("\nSLO: TTFT %.2f s, TBT %.3f s. qos = the paper's time-based attainment; req = share of requests "
              "with TTFT and TPOT within SLO; goodput = req-attaining requests/s.\n\n", o.ttft_slo_s, o.tbt_slo_s);
  std::printf("%-14s %7s %6s %8s %6s %7s %7s %8s %9s %9s %9s %9s %8s %9s\n", "policy", "dev/role", "scale", "rate/s",
              "reqs", "qos%", "req%", "goodput", "ttft-p50", "ttft-p90", "tpot-p50", "tpot-p90", "switches", "late-p99");
  for (const auto& r : reports) {
    // Static's device count is the bench's choice; the others run on the server's configuration.
    const std::string devices = r.devices_per_role > 0 ? std::to_string(r.devices_per_role) : "config";
    for (const auto& s : r.runs) {
      std::printf("%-14s %7s %6.2g %8.3f %6lld %7.1f %7.1f %8.3f %9.3f %9.3f %9.4f %9.4f %8.0f %9.3f\n",
                  r.policy.c_str(), devices.c_str(), s.rate_scale, s.offered_rps, static_cast<long long>(s.requests), 100 * s.qos,
                  100 * s.req_attainment, s.goodput_rps, s.ttft_p50, s.ttft_p90, s.tpot_p50, s.tpot_p90, s.switches,
                  s.late_send_p99);
    }
  }
  const PolicyReport* aegaeon = nullptr;
  for (const auto& r : reports) {
    if (r.policy == "aegaeon") aegaeon = &r;
  }
  std::printf("\nSustained rate (highest offered rate with attainment >= 90%%, interpolated):\n");
  for (auto [metric, name] : {std::pair{&RunScore::qos, "qos"}, std::pair{&RunScore::req_attainment, "req"}}) {
    for (const auto& r : reports) {
      auto s = sustained_rate(r.runs, metric);
      std::printf("  %-4s %-14s %2s%7.3f req/s", name, r.policy.c_str(), s.bound, s.rps);
      if (aegaeon != nullptr && &r != aegaeon) {
        std::printf("   aegaeon / %s = %s", r.policy.c_str(), ratio_text(sustained_rate(aegaeon->runs, metric), s).c_str());
      }
      std::printf("\n");
    }
  }
  if (aegaeon != nullptr) {
    std::printf("\nPer rate point, aegaeon / baseline (goodput; qos attainment):\n");
    for (const auto& r : reports) {
      if (&r == aegaeon) continue;
      for (std::size_t k = 0; k < r.runs.size() && k < aegaeon->runs.size(); ++k) {
        const auto& a = aegaeon->runs[k];
        const auto& b = r.runs[k];
        std::printf("  x%-5.2g aegaeon / %-14s goodput %6.2fx   qos %6.2fx\n", b.rate_scale, r.policy.c_str(),
                    b.goodput_rps > 0 ? a.goodput_rps / b.goodput_rps : 0.0, b.qos > 0 ? a.qos / b.qos : 0.0);
      }
    }
  }
  std::printf("\nModel switch vs memcpy of the same bytes (sequential requests cycling the models):\n");
  for (const auto& r : reports) {
    const auto& p = r.switches;
    if (p.copies < 1) {
      std::printf("  %-14s no copying switch observed\n", r.policy.c_str());
      continue;
    }
    std::printf("  %-14s %3.0f copies (+%.0f prefetch adoptions) of %.1f MiB: switch %.2f ms, memcpy %.2f ms "
                "(%.2f GiB/s) -> %.2fx the memcpy bound\n", r.policy.c_str(), p.copies, p.adopted,
                p.bytes_per_copy / (1 << 20), 1e3 * p.mean_switch_s, 1e3 * p.memcpy_s,
                p.bytes_per_copy / p.memcpy_s / (1 << 30), p.mean_switch_s / p.memcpy_s);
  }
  std::printf("\nRuntime overhead per generated token (one stream; client gap - device decode step):\n");
  for (const auto& r : reports) {
    const auto& p = r.overhead;
    if (p.tokens < 1) continue;
    std::printf("  %-14s %4.0f gaps: client %.3f ms, device step %.3f ms -> overhead %.1f us/token (target < 50)\n",
                r.policy.c_str(), p.tokens, 1e3 * p.client_gap_s, 1e3 * p.device_step_s,
                1e6 * (p.client_gap_s - p.device_step_s));
  }
  std::printf("\nServer CPU per generated token over the same stream (per-thread CPU time, unaffected by load):\n");
  for (const auto& r : reports) {
    const auto& p = r.overhead;
    if (!p.have_cpu || p.generated < 1) {
      std::printf("  %-14s not measured (a server started with --url)\n", r.policy.c_str());
      continue;
    }
    std::printf("  %-14s %4.0f tokens: compute %.1f us, runtime (actors, HTTP, bookkeeping) %.1f us/token "
                "(target < 50) = %.3f of compute\n", r.policy.c_str(), p.generated, 1e6 * p.compute_cpu_s / p.generated,
                1e6 * p.runtime_cpu_s / p.generated, p.compute_cpu_s > 0 ? p.runtime_cpu_s / p.compute_cpu_s : 0.0);
  }
}

std::pair<int, int> parse_range(const std::string& text) {
  auto colon = text.find(':');
  if (colon == std::string::npos) throw CLI::ValidationError("expected A:B, got " + text);
  const int a = std::stoi(text.substr(0, colon)), b = std::stoi(text.substr(colon + 1));
  if (a < 1 || b < a) throw CLI::ValidationError("expected 1 <= A <= B, got " + text);
  return {a, b};
}

}  // namespace
}  // namespace aegaeon::bench

int main(int argc, char** argv) {
  using namespace aegaeon::bench;
  Options o;
  CLI::App app{"End-to-end benchmark: a trace replayed over HTTP against aegaeon serve under each serving policy"};
  std::string input_range = "16:128", output_range = "16:128";
  app.add_option("--aegaeon", o.binary, "the aegaeon binary")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "where the server keeps its demo models")->capture_default_str();
  app.add_option("--url", o.url, "a running server (http://127.0.0.1:PORT) instead of starting one per policy");
  app.add_option("--policies", o.policies, "serving policies to compare")->delimiter(',')->capture_default_str();
  app.add_option("--set", o.server_settings, "extra server setting KEY=VALUE (repeatable)");
  app.add_option("--trace", o.trace, "artifact trace CSV (Request Time,Model Name,Input Length,Output Length)");
  app.add_option("--lengths", o.lengths, "artifact trace whose lengths generated requests draw from");
  app.add_option("--models", o.models, "generated: models addressed (0: all served)")->capture_default_str();
  app.add_option("--rate", o.rate, "generated: requests/s per model at scale 1")->capture_default_str();
  app.add_option("--cv", o.cv, "generated: inter-arrival CV (1 Poisson, >1 bursty Gamma)")->capture_default_str();
  app.add_option("--duration", o.duration_s, "generated: seconds of arrivals")->capture_default_str();
  app.add_option("--seed", o.seed, "generated: random seed")->capture_default_str();
  app.add_option("--input-tokens", input_range, "generated without --lengths: uniform A:B")->capture_default_str();
  app.add_option("--output-tokens", output_range, "generated without --lengths: uniform A:B")->capture_default_str();
  app.add_option("--length-scale", o.length_scale, "multiplies every length (CPU-sized ShareGPT)")->capture_default_str();
  app.add_option("--rate-scales", o.rate_scales, "arrival-rate multipliers swept")->delimiter(',')->capture_default_str();
  app.add_flag("--probes-only", o.probes_only, "skip the sweep: only the switch-latency and per-token-overhead probes");
  app.add_option("--max-requests", o.max_requests, "most requests per run")->capture_default_str();
  app.add_option("--ttft-slo", o.ttft_slo_s, "seconds (server and scoring)")->capture_default_str();
  app.add_option("--tbt-slo", o.tbt_slo_s, "seconds (server and scoring)")->capture_default_str();
  app.add_option("--clients", o.clients, "client threads (most requests in flight)")->capture_default_str();
  app.add_option("--csv", o.csv, "write one row per request here");
  CLI11_PARSE(app, argc, argv);
  try {
    o.input_tokens = parse_range(input_range);
    o.output_tokens = parse_range(output_range);
    for (const auto& p : o.policies) {
      if (auto parsed = aegaeon::policy::parse_serving_policy(p); !parsed.ok()) throw std::runtime_error(parsed.error().message);
    }
    if (!o.url.empty() && o.policies.size() != 1) {
      throw std::runtime_error("--url measures the one policy that server runs: name it with --policies");
    }
    std::ofstream csv;
    if (!o.csv.empty()) {
      csv.open(o.csv);
      csv << "policy,rate_scale,model,arrival_s,sent_s,prompt_tokens,max_tokens,tokens,ttft_s,e2e_s,status,complete\n";
    }
    // Static needs a prefill and a decode device per model (the server refuses fewer): ask a
    // default server how many models it serves.
    int static_devices = 0;
    if (o.url.empty() && std::find(o.policies.begin(), o.policies.end(), "static") != o.policies.end()) {
      Server probe(o, "aegaeon", 0);
      static_devices = static_cast<int>(served_models(probe.port()).size());
    }
    std::vector<PolicyReport> reports;
    for (const auto& p : o.policies) {
      reports.push_back(run_policy(o, p, p == "static" ? static_devices : 0, o.csv.empty() ? nullptr : &csv));
    }
    print_report(o, reports);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_e2e: %s\n", e.what());
    return 1;
  }
  return 0;
}
