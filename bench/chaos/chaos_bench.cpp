// bench_chaos: load with faults arriving at random, for a long time, against a real cluster
// (bench/chaos/README.md).
//
// A controller and N workers (chaos_cluster.hpp) serve the demo models to streaming clients that
// pick (model, prompt, max_tokens) cases at random, greedy. A no-fault phase records each case's
// output token by token (and the latency baseline); then, for --minutes, a fault lands every few
// seconds: SIGKILL of a worker (restarted a little later), SIGSTOP of a worker (SIGCONT later,
// sometimes past the heartbeat timeout), a partition of a worker's host (healed later), a
// controller restart, a client that reads slowly, a client that hangs up mid-stream. At least one
// worker stays healthy. Every stream that completes is compared token by token with its case's
// no-fault output. A request that fails is retried as a client would and counted; a failure is
// explained by a controller restart (its streams end with the process) or by admission control
// shedding load; any other failure, a hang, or a mismatch fails the run. Each process's RSS and
// open files are sampled throughout; open files after the run, load drained, must be where they
// were before the faults.
// Exit status 0 when every criterion holds.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "bench/chaos/chaos_cluster.hpp"
#include "bench/chaos/chaos_load.hpp"
#include "bench/chaos/chaos_options.hpp"
#include "bench/chaos/fault_injector.hpp"
#include "bench/e2e/load_generator.hpp"
#include "bench/statistics.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon::bench::chaos {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// ---- resources ----

struct Sample {
  double at_s;
  std::string process;
  Resources held;
};

// Samples every process's RSS and open files until stopped.
class ResourceSampler {
 public:
  ResourceSampler(ChaosCluster& cluster, Ledger& ledger, double period_s)
      : thread_([this, &cluster, &ledger, period_s] {
          while (!stop_) {
            const double at = ledger.now_s();
            for (const auto& [process, held] : cluster.sample()) {
              std::lock_guard lock(mutex_);
              samples_.push_back({at, process, held});
            }
            for (auto until = Clock::now() + std::chrono::duration<double>(period_s);
                 !stop_ && Clock::now() < until;) {
              std::this_thread::sleep_for(50ms);
            }
          }
        }) {}
  ~ResourceSampler() { finish(); }
  std::vector<Sample> finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return samples_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<Sample> samples_;
  std::thread thread_;
};

// ---- the run ----

// Waits until no worker runs or queues a request (what the controller's /health reports).
bool drained(ChaosCluster& cluster, std::chrono::seconds timeout) {
  for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;
       std::this_thread::sleep_for(250ms)) {
    auto health = json::parse(cluster.health(), nullptr, false);
    if (health.is_discarded()) continue;
    bool idle = true;
    for (const auto& worker : health["workers"])
      idle = idle && worker["running"] == 0 && worker["waiting"] == 0;
    if (idle) return true;
  }
  return false;
}

// Why a failed attempt is expected, or empty when it is not: a controller restart ends the
// streams it carried (the client is connected to it; a slow reader notices only once it has read
// what was sent before, so the attempt's whole life counts), and the new controller takes
// requests once its workers joined again; admission control turns a request away when serving it
// would break the SLO, which it may when faults leave fewer workers for the same load (the proxy
// or the worker answers "overloaded: ..."). Both are retryable.
std::string explain(const Failure& failure,
                    const std::vector<std::pair<double, double>>& controller_outages) {
  constexpr double kJoinGraceSeconds = 5;  // workers' rejoin backoff tops out at 0.5 s here
  if (!failure.retryable) return {};
  if (failure.why.find("overloaded: ") != std::string::npos ||
      failure.why.rfind("HTTP 429", 0) == 0) {
    return "admission control shed load";
  }
  const bool met_a_restart =
      std::any_of(controller_outages.begin(), controller_outages.end(), [&](const auto& outage) {
        return failure.at_s >= outage.first && failure.started_s <= outage.second + kJoinGraceSeconds;
      });
  return met_a_restart ? "a controller restart" : "";
}

void print_latency(const char* phase, const PhaseLatency& latency) {
  std::printf("  %-14s TTFT p50 %.3f s p99 %.3f s   TBT p50 %.4f s p99 %.4f s   (%zu streams)\n",
              phase, percentile(latency.ttft_s, 0.5), percentile(latency.ttft_s, 0.99),
              percentile(latency.tbt_s, 0.5), percentile(latency.tbt_s, 0.99),
              latency.ttft_s.size());
}

Clock::time_point seconds_from_now(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

int run(Options options) {
  if (options.seed == 0)
    options.seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  std::printf(
      "bench_chaos: seed %llu, %d workers, %d streaming clients, %.0f s without faults, then "
      "%.1f min with a fault every %.0f-%.0f s; logs in %s\n",
      static_cast<unsigned long long>(options.seed), options.cluster.workers, options.clients,
      options.baseline_seconds, options.minutes, options.fault_gap_min_s, options.fault_gap_max_s,
      options.cluster.out.c_str());
  ChaosCluster cluster(options.cluster);
  std::printf("cluster up: %s\n", cluster.where().c_str());
  const auto cases = make_cases(served_models(cluster.http_port()));
  Ledger ledger(cases.size(), Clock::now());
  Clients clients(options, cases, cluster.http_port(), ledger, options.seed);
  ResourceSampler sampler(cluster, ledger, options.sample_seconds);

  std::printf("no-fault phase (%zu cases)...\n", cases.size());
  clients.run(seconds_from_now(options.baseline_seconds), false);
  std::mt19937_64 rng(options.seed);
  for (size_t index = 0; index < cases.size(); ++index) {
    if (!ledger.has_reference(index)) clients.request(index, ClientFault::none, false, rng);
  }
  const bool drained_before = drained(cluster, 60s);
  const auto before = cluster.sample();
  const double faults_from_s = ledger.now_s();
  std::printf("no-fault phase done: %s\nfault phase...\n", ledger.progress().c_str());

  FaultInjector injector(options, cluster, clients, ledger, options.seed ^ 0x9e3779b97f4a7c15ULL);
  {
    const auto until = seconds_from_now(options.minutes * 60);
    std::atomic<bool> done{false};
    std::thread progress([&] {
      for (auto next = Clock::now() + 30s; !done; std::this_thread::sleep_for(100ms)) {
        if (Clock::now() < next) continue;
        std::printf("  %6.0f s: %s\n", ledger.now_s() - faults_from_s, ledger.progress().c_str());
        next += 30s;
      }
    });
    std::thread faults([&] { injector.run(until); });
    clients.run(until, true);
    faults.join();
    done = true;
    progress.join();
  }
  const double faults_until_s = ledger.now_s();
  const bool rejoined = cluster.wait_all_joined(120s);
  const bool drained_after = drained(cluster, 60s);
  const auto after = cluster.sample();
  const auto samples = sampler.finish();
  const auto unclean = cluster.stop_all();

  // ---- report ----
  std::ofstream(options.cluster.out / "faults.log") << [&] {
    std::string text;
    for (const auto& line : injector.log_) text += line + "\n";
    return text;
  }();
  {
    std::ofstream csv(options.cluster.out / "resources.csv");
    csv << "seconds,process,pid,rss_kib,open_files\n";
    for (const auto& s : samples) {
      csv << s.at_s << ',' << s.process << ',' << s.held.pid << ',' << s.held.rss_kib << ','
          << s.held.open_files << '\n';
    }
  }
  std::printf("\nfaults injected (%.0f s):", faults_until_s - faults_from_s);
  int total_faults = 0;
  for (const auto& [kind, count] : injector.counts_) {
    std::printf(" %s %d;", kind.c_str(), count);
    total_faults += count;
  }
  std::printf(" %d in all (each one in %s)\n", total_faults,
              (options.cluster.out / "faults.log").c_str());
  std::printf(
      "requests: %zu streams completed, %zu compared token by token with the no-fault output,"
      " %zu mismatched, %zu hung up on purpose\n",
      ledger.completed_, ledger.compared_, ledger.mismatches_, ledger.disconnected_);
  for (const auto& note : ledger.mismatch_notes_) std::printf("  MISMATCH %s\n", note.c_str());

  // Counted by class: the figures in a message ("1.19x the SLO") do not make a class of their own.
  const std::regex figure("[0-9]+\\.[0-9]+");
  std::map<std::string, int> explained, unexplained;
  std::vector<const Failure*> unexplained_failures;
  for (const auto& failure : ledger.failures_) {
    auto explanation = explain(failure, injector.controller_outages_);
    if (explanation.empty()) {
      ++unexplained[failure.why];
      unexplained_failures.push_back(&failure);
    } else {
      ++explained[std::regex_replace(failure.why, figure, "#") + "  <- " + explanation];
    }
  }
  std::printf("failed attempts, retried: %zu\n", ledger.failures_.size());
  for (const auto& [why, count] : explained) std::printf("  %5d  %s\n", count, why.c_str());
  for (const auto& [why, count] : unexplained)
    std::printf("  %5d  %s  UNEXPLAINED\n", count, why.c_str());
  for (size_t i = 0; i < unexplained_failures.size() && i < 20; ++i) {
    std::printf("         UNEXPLAINED: sent at %.1f s, failed at %.1f s: %s\n",
                unexplained_failures[i]->started_s, unexplained_failures[i]->at_s,
                unexplained_failures[i]->why.c_str());
  }
  for (const auto& request : ledger.gave_up_) std::printf("  gave up: %s\n", request.c_str());

  std::printf("latency (greedy streams that completed, slow readers left out):\n");
  print_latency("without faults", ledger.without_faults_);
  print_latency("with faults", ledger.with_faults_);

  // Open files after vs before the faults, load drained both times; RSS growth by least-squares
  // slope over the fault phase's second half, per process that lived through it.
  bool resources_flat = true;
  const bool judge_rss = options.minutes >= 20;
  std::printf("resources (RSS MiB and open files every %.0f s in %s):\n", options.sample_seconds,
              (options.cluster.out / "resources.csv").c_str());
  for (const auto& [process, held_after] : after) {
    const auto& held_before = before.at(process);
    // A process's first minute is its warm-up (models loaded, first allocations), not growth.
    constexpr double kWarmUpSeconds = 60;
    std::vector<std::pair<double, double>> second_half;
    bool lived_through = true;  // the same process, warmed up, over the whole second half
    long peak_rss = 0;
    std::map<pid_t, double> first_seen_s;
    for (const auto& s : samples) {
      if (s.process != process) continue;
      peak_rss = std::max(peak_rss, s.held.rss_kib);
      first_seen_s.emplace(s.held.pid, s.at_s);
      if (s.at_s >= (faults_from_s + faults_until_s) / 2 && s.at_s <= faults_until_s) {
        lived_through =
            lived_through && s.held.pid == held_after.pid &&
            (s.held.pid == held_before.pid || s.at_s - first_seen_s[s.held.pid] >= kWarmUpSeconds);
        second_half.emplace_back(s.at_s, static_cast<double>(s.held.rss_kib) / 1024.0);
      }
    }
    const bool files_ok =
        held_after.open_files <= held_before.open_files + options.open_files_slack;
    const double growth = least_squares_slope(second_half) * 3600;
    const bool rss_ok = !judge_rss || !lived_through || growth <= options.max_rss_growth_mib_per_h;
    resources_flat = resources_flat && files_ok && rss_ok;
    char rss_trend[96] = "restarted shortly before or in the second half";
    if (lived_through)
      std::snprintf(rss_trend, sizeof rss_trend, "%+.1f MiB/h over the second half", growth);
    std::printf(
        "  %-10s open files %d before, %d after%s   RSS %.1f MiB before, %.1f after, peak %.1f; "
        "%s%s  (%s)\n",
        process.c_str(), held_before.open_files, held_after.open_files, files_ok ? "" : " (GREW)",
        static_cast<double>(held_before.rss_kib) / 1024.0,
        static_cast<double>(held_after.rss_kib) / 1024.0, static_cast<double>(peak_rss) / 1024.0,
        rss_trend, rss_ok ? "" : " (GREW)",
        held_after.pid == held_before.pid ? "one process throughout" : "restarted during the run");
  }
  if (!judge_rss) std::printf("  (RSS growth is judged on fault phases of 20 minutes or more)\n");

  struct Criterion {
    const char* what;
    bool held;
  };
  const Criterion criteria[] = {
      {"no mismatched stream", ledger.mismatches_ == 0},
      {"streams compared with faults", ledger.compared_ > 0 && total_faults > 0},
      {"every failure explained", unexplained_failures.empty() && ledger.gave_up_.empty()},
      {"load drained before and after the faults", drained_before && drained_after},
      {"every worker joined again", rejoined},
      {"open files and RSS flat", resources_flat},
      {"every process exited cleanly", unclean.empty()},
  };
  bool pass = true;
  for (const auto& criterion : criteria) {
    std::printf("  [%s] %s\n", criterion.held ? "ok" : "FAILED", criterion.what);
    pass = pass && criterion.held;
  }
  for (const auto& process : unclean) std::printf("  %s\n", process.c_str());
  std::printf("%s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}

}  // namespace
}  // namespace aegaeon::bench::chaos

int main(int argc, char** argv) {
  aegaeon::bench::chaos::Options options;
  auto& cluster = options.cluster;
  std::string out = cluster.out.string();
  CLI::App app{
      "Load with faults arriving at random against a real cluster; every completed stream is "
      "compared token by token with a no-fault run (bench/chaos/README.md)"};
  app.add_option("--minutes", options.minutes, "Length of the fault phase")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 24 * 60.0));
  app.add_option("--baseline-seconds", options.baseline_seconds, "Length of the no-fault phase")
      ->capture_default_str()
      ->check(CLI::Range(5.0, 3600.0));
  app.add_option("--workers", cluster.workers, "Worker processes")
      ->capture_default_str()
      ->check(CLI::Range(2, 8));
  app.add_option("--clients", options.clients, "Concurrent streaming clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--fault-gap-min", options.fault_gap_min_s,
                 "Shortest time between two faults, seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 600.0));
  app.add_option("--fault-gap-max", options.fault_gap_max_s,
                 "Longest time between two faults, seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 600.0));
  app.add_option("--controller-restart-gap", options.controller_restart_gap_s,
                 "Shortest time between two controller restarts, seconds (they happen in the fault "
                 "phase's first 40 %)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0));
  app.add_option("--sample-seconds", options.sample_seconds, "RSS and open-files sampling period")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 600.0));
  app.add_option("--read-timeout", options.read_timeout_s,
                 "A stream silent this long (seconds) counts as hung")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--open-files-slack", options.open_files_slack,
                 "Open files a process may hold after the run beyond those before")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  app.add_option(
         "--max-rss-growth", options.max_rss_growth_mib_per_h,
         "MiB/h of RSS growth allowed over the fault phase's second half (judged from 20 minutes)")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "Random seed of cases and faults (0: from the clock)")
      ->capture_default_str();
  app.add_option("--out", out, "Directory for the processes' logs, faults.log and resources.csv")
      ->capture_default_str();
  app.add_option("--binary", cluster.binary, "aegaeon binary")->capture_default_str();
  app.add_option("--data-dir", cluster.data_dir, "serve.data_dir of the workers (demo models)")
      ->capture_default_str();
  app.add_flag("!--loopback", cluster.netns,
               "Run every process on loopback even as root (no partitions)");
  app.add_flag("!--no-tls", cluster.tls, "Plain TCP between controller and workers");
  CLI11_PARSE(app, argc, argv);
  if (options.fault_gap_max_s < options.fault_gap_min_s) {
    std::fprintf(stderr, "bench_chaos: --fault-gap-max (%g) is below --fault-gap-min (%g)\n",
                 options.fault_gap_max_s, options.fault_gap_min_s);
    return 2;
  }
  cluster.out = out;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines show up while it runs
  try {
    return aegaeon::bench::chaos::run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_chaos: %s\n", e.what());
    return 1;
  }
}
