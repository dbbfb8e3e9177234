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
// explained only by a controller restart (its streams end with the process); any other failure,
// a hang, or a mismatch fails the run. Each process's RSS and open files are sampled throughout;
// open files after the run, load drained, must be where they were before the faults.
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
#include "tests/support/http_client.hpp"

namespace aegaeon::bench::chaos {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  ClusterOptions cluster{AEGAEON_BINARY, AEGAEON_BENCH_DATA_DIR, "chaos-run"};
  int clients = 32;
  double minutes = 30;             // the fault phase
  double baseline_seconds = 60;    // the no-fault phase
  double fault_gap_min_s = 2;      // between two faults
  double fault_gap_max_s = 6;
  double controller_restart_gap_s = 120;  // at least this long between controller restarts
  double sample_seconds = 5;
  double read_timeout_s = 60;      // a stream silent this long is hung
  int max_attempts = 30;           // per request, before the client gives up
  int open_files_slack = 8;        // open files after the run may exceed those before by this much
  double max_rss_growth_mib_per_h = 64;  // judged only on a fault phase of 20 minutes or more
  uint64_t seed = 0;               // 0: from the clock (printed, so a run can be repeated)
};

// ---- what the clients ask -----------------------------------------------------------------------

struct Case {
  std::string model;
  std::string prompt;
  int max_tokens = 0;
};

std::vector<Case> make_cases(const std::vector<std::string>& models) {
  static const char* kPrompts[] = {"Once upon a time", "The cluster keeps serving", "Tokens flow between hosts",
                                   "Hello there", "A fault every few seconds", "In the beginning",
                                   "The quick brown fox", "Models switch between tokens"};
  static const int kMaxTokens[] = {32, 64, 96, 128};
  std::vector<Case> cases;
  for (size_t m = 0; m < models.size(); ++m) {
    for (size_t p = 0; p < std::size(kPrompts); ++p) {
      cases.push_back({models[m], kPrompts[p], kMaxTokens[(m + p) % std::size(kMaxTokens)]});
    }
  }
  return cases;
}

enum class ClientFault { none, slow, disconnect };

// One streaming attempt as the client saw it.
struct Attempt {
  enum class End { completed, disconnected, failed } end = End::failed;
  std::string failure;  // why it failed ("hung: ..." when no frame came in time)
  bool retryable = false;
  double retry_after_s = 0.2;
  std::vector<std::string> tokens;
  std::string finish_reason;
  double ttft_s = 0;
  std::vector<double> gaps_s;
};

Attempt stream_case(uint16_t port, const Case& c, ClientFault fault, std::mt19937_64& rng, double read_timeout_s) {
  Attempt attempt;
  const auto timeout = std::chrono::milliseconds(static_cast<long>(read_timeout_s * 1000));
  const json body = {{"model", c.model}, {"prompt", c.prompt}, {"max_tokens", c.max_tokens}, {"temperature", 0},
                     {"stream", true}, {"logprobs", 0}};
  try {
    testing::HttpConnection connection(port);
    const auto start = Clock::now();
    connection.send_request("POST", "/v1/completions", body.dump(), {{"Content-Type", "application/json"}});
    auto head = connection.read_head(timeout);
    if (head.status != 200) {
      connection.read_body(head, timeout);
      attempt.failure = "HTTP " + std::to_string(head.status);
      attempt.retryable = head.status == 429 || head.status == 503;
      attempt.retry_after_s = std::clamp(std::stod(head.header("retry-after").value_or("0.2")), 0.1, 1.0);
      auto error = json::parse(head.body, nullptr, false);
      if (!error.is_discarded() && error.contains("error")) attempt.failure += ": " + error["error"].value("message", "");
      return attempt;
    }
    const int hang_up_after = std::uniform_int_distribution<int>(1, 8)(rng);
    auto last = start;
    while (true) {
      if (fault == ClientFault::slow) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 400)(rng)));
      }
      auto event = connection.read_event(timeout);
      if (!event) {
        attempt.failure = "stream cut before [DONE]";
        attempt.retryable = true;
        return attempt;
      }
      if (*event == "[DONE]") break;
      auto chunk = json::parse(*event, nullptr, false);
      if (chunk.is_discarded() || chunk.contains("error")) {
        attempt.failure = "error event: " + (chunk.is_discarded() ? *event : chunk["error"].value("message", ""));
        attempt.retryable = true;
        return attempt;
      }
      const auto& choice = chunk["choices"][0];
      if (choice["finish_reason"].is_string()) attempt.finish_reason = choice["finish_reason"];
      if (!choice["logprobs"].is_object()) continue;  // the finishing frame
      const auto now = Clock::now();
      const double since_last = std::chrono::duration<double>(now - last).count();
      (attempt.tokens.empty() ? attempt.ttft_s : attempt.gaps_s.emplace_back()) = since_last;
      for (const auto& token : choice["logprobs"]["tokens"]) attempt.tokens.push_back(token);
      last = now;
      if (fault == ClientFault::disconnect && static_cast<int>(attempt.tokens.size()) >= hang_up_after) {
        connection.close();
        attempt.end = Attempt::End::disconnected;
        return attempt;
      }
    }
    attempt.end = Attempt::End::completed;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.find("timed out") != std::string::npos) {
      attempt.failure = "hung: no frame for " + std::to_string(static_cast<int>(read_timeout_s)) + " s";
    } else {
      // "connect to 127.0.0.1:PORT failed: REASON" -> "connect failed: REASON"
      const auto reason = what.find("failed: ");
      attempt.failure = what.rfind("connect", 0) == 0 && reason != std::string::npos
                            ? "connect failed: " + what.substr(reason + 8)
                            : "connection lost: " + what;
      attempt.retryable = true;
    }
  }
  return attempt;
}

// ---- what happened --------------------------------------------------------------------------------

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5))];
}

// Least-squares slope of y over x.
double slope(const std::vector<std::pair<double, double>>& points) {
  if (points.size() < 2) return 0;
  double n = static_cast<double>(points.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double denominator = n * sxx - sx * sx;
  return denominator == 0 ? 0 : (n * sxy - sx * sy) / denominator;
}

struct Failure {
  double at_s;
  std::string why;
  bool retryable;
};

struct PhaseLatency {
  std::vector<double> ttft_s;
  std::vector<double> tbt_s;
};

// Everything the clients report, under one lock.
class Ledger {
 public:
  Ledger(size_t cases, Clock::time_point origin) : references_(cases), origin_(origin) {}

  double now_s() const { return std::chrono::duration<double>(Clock::now() - origin_).count(); }

  // A completed stream of case `index`: the first one of a case is its reference (no-fault phase
  // only), every later one is compared with it token by token.
  void completed(size_t index, const Attempt& attempt, bool faults, bool slow) {
    std::lock_guard lock(mutex_);
    ++completed_;
    auto& reference = references_[index];
    if (!reference && !faults) {
      reference = attempt;
    } else if (reference) {
      ++compared_;
      if (attempt.tokens != reference->tokens || attempt.finish_reason != reference->finish_reason) {
        ++mismatches_;
        if (mismatch_notes_.size() < 10) mismatch_notes_.push_back(describe_mismatch(index, *reference, attempt));
      }
    }
    if (slow) return;  // a slow reader's gaps are its own
    auto& latency = faults ? with_faults_ : without_faults_;
    latency.ttft_s.push_back(attempt.ttft_s);
    latency.tbt_s.insert(latency.tbt_s.end(), attempt.gaps_s.begin(), attempt.gaps_s.end());
  }
  void disconnected() {
    std::lock_guard lock(mutex_);
    ++disconnected_;
  }
  void failed(const Attempt& attempt) {
    std::lock_guard lock(mutex_);
    failures_.push_back({now_s(), attempt.failure, attempt.retryable});
  }
  void gave_up(const Case& c, int attempts) {
    std::lock_guard lock(mutex_);
    gave_up_.push_back(c.model + " '" + c.prompt + "' after " + std::to_string(attempts) + " attempts");
  }
  bool has_reference(size_t index) {
    std::lock_guard lock(mutex_);
    return references_[index].has_value();
  }
  std::string progress() {
    std::lock_guard lock(mutex_);
    char line[200];
    std::snprintf(line, sizeof line, "%zu completed, %zu compared, %zu mismatched, %zu failed attempts, %zu hang-ups",
                  completed_, compared_, mismatches_, failures_.size(), disconnected_);
    return line;
  }

  // Read once the clients are done.
  size_t completed_ = 0, compared_ = 0, mismatches_ = 0, disconnected_ = 0;
  std::vector<std::string> mismatch_notes_;
  std::vector<Failure> failures_;
  std::vector<std::string> gave_up_;
  PhaseLatency without_faults_, with_faults_;

 private:
  std::string describe_mismatch(size_t index, const Attempt& reference, const Attempt& got) const {
    size_t at = 0;
    while (at < reference.tokens.size() && at < got.tokens.size() && reference.tokens[at] == got.tokens[at]) ++at;
    auto token = [](const std::vector<std::string>& tokens, size_t i) {
      return i < tokens.size() ? json(tokens[i]).dump() : std::string("(end)");
    };
    return "case " + std::to_string(index) + ": token " + std::to_string(at) + " is " + token(got.tokens, at) +
           ", no-fault " + token(reference.tokens, at) + " (" + std::to_string(got.tokens.size()) + " vs " +
           std::to_string(reference.tokens.size()) + " tokens, finish " + got.finish_reason + " vs " +
           reference.finish_reason + ")";
  }

  std::mutex mutex_;
  std::vector<std::optional<Attempt>> references_;
  Clock::time_point origin_;
};

// ---- the clients ----------------------------------------------------------------------------------

// Each client streams random cases until `until`; a fault for a client (slow, hang up) applies to
// its next request.
class Clients {
 public:
  Clients(const Options& options, const std::vector<Case>& cases, uint16_t port, Ledger& ledger, uint64_t seed)
      : options_(options), cases_(cases), port_(port), ledger_(ledger), faults_(options.clients) {
    for (int i = 0; i < options.clients; ++i) rngs_.emplace_back(seed + static_cast<uint64_t>(i) * 7919);
  }

  void run(Clock::time_point until, bool faults) {
    std::vector<std::thread> threads;
    for (int i = 0; i < options_.clients; ++i) {
      threads.emplace_back([this, i, until, faults] {
        while (Clock::now() < until) {
          const size_t index = std::uniform_int_distribution<size_t>(0, cases_.size() - 1)(rngs_[i]);
          request(index, faults_[i].exchange(ClientFault::none), faults, rngs_[i]);
        }
      });
    }
    for (auto& thread : threads) thread.join();
  }

  // One request of case `index`, retried while it fails with a retryable error.
  void request(size_t index, ClientFault fault, bool faults, std::mt19937_64& rng) {
    const Case& c = cases_[index];
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      Attempt got = stream_case(port_, c, fault, rng, options_.read_timeout_s);
      switch (got.end) {
        case Attempt::End::completed:
          ledger_.completed(index, got, faults, fault == ClientFault::slow);
          return;
        case Attempt::End::disconnected:
          ledger_.disconnected();
          return;
        case Attempt::End::failed:
          ledger_.failed(got);
          if (!got.retryable) return;
          std::this_thread::sleep_for(std::chrono::duration<double>(got.retry_after_s));
      }
    }
    ledger_.gave_up(c, options_.max_attempts);
  }

  void inject(int client, ClientFault fault) { faults_[client] = fault; }

 private:
  const Options& options_;
  const std::vector<Case>& cases_;
  uint16_t port_;
  Ledger& ledger_;
  std::vector<std::atomic<ClientFault>> faults_;
  std::vector<std::mt19937_64> rngs_;
};

// ---- the faults -----------------------------------------------------------------------------------

// Injects a fault every few seconds and undoes it later; keeps at least one worker healthy and
// never kills worker 0 (the witness whose RSS and open files span the whole run).
class FaultInjector {
 public:
  FaultInjector(const Options& options, ChaosCluster& cluster, Clients& clients, Ledger& ledger, uint64_t seed)
      : options_(options), cluster_(cluster), clients_(clients), ledger_(ledger), rng_(seed),
        impaired_until_(static_cast<size_t>(cluster.workers()), Clock::time_point{}) {}

  void run(Clock::time_point until) {
    // The controller restarts only in the first 40 %: the last one then lives through the
    // second half (warm-up included), where RSS growth is judged.
    const auto start = Clock::now();
    const auto restarts_end = start + (until - start) * 2 / 5;
    auto next = Clock::now() + gap();
    while (Clock::now() < until) {
      run_due_repairs();
      if (Clock::now() >= next) {
        inject(Clock::now() < restarts_end);
        next = Clock::now() + gap();
      }
      std::this_thread::sleep_for(50ms);
    }
    for (auto& repair : repairs_) repair.due = Clock::now();
    run_due_repairs();
  }

  // (start, serving again) of each controller restart, in seconds of the ledger's clock.
  std::vector<std::pair<double, double>> controller_outages_;
  std::map<std::string, int> counts_;
  std::vector<std::string> log_;

 private:
  struct Repair {
    Clock::time_point due;
    std::function<void()> action;
  };

  Clock::duration gap() {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
        std::uniform_real_distribution<double>(options_.fault_gap_min_s, options_.fault_gap_max_s)(rng_)));
  }
  double uniform(double low, double high) { return std::uniform_real_distribution<double>(low, high)(rng_); }
  Clock::time_point after(double seconds) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  void note(const std::string& kind, const std::string& what) {
    ++counts_[kind];
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%8.1f s  ", ledger_.now_s());
    log_.push_back(stamp + what);
  }

  void run_due_repairs() {
    const auto now = Clock::now();
    auto due = std::stable_partition(repairs_.begin(), repairs_.end(), [&](const Repair& r) { return r.due > now; });
    std::vector<Repair> ready(std::make_move_iterator(due), std::make_move_iterator(repairs_.end()));
    repairs_.erase(due, repairs_.end());
    for (auto& repair : ready) repair.action();
  }

  // A worker fault on `worker`, repaired after `seconds`; the worker counts as impaired until
  // a few seconds after the repair (the time it takes to join again).
  void impair(int worker, double seconds, std::function<void()> repair) {
    constexpr double kRejoinSeconds = 5;
    impaired_until_[static_cast<size_t>(worker)] = after(seconds + kRejoinSeconds);
    repairs_.push_back({after(seconds), std::move(repair)});
  }

  enum Kind { kill_worker, stop_worker, partition, restart_controller, slow_client, hang_up };

  // The next fault: the first card of a shuffled deck that may be played now (cards that may not
  // are dropped), so that every kind comes round in every deck while the order stays random.
  // A deck holds each worker fault twice and each other fault once.
  Kind draw(const std::vector<int>& healthy, bool controller_may_restart) {
    const auto now = Clock::now();
    auto playable = [&](Kind kind) {
      switch (kind) {
        case kill_worker:
          return healthy.size() >= 2 && std::any_of(healthy.begin(), healthy.end(), [](int w) { return w != 0; });
        case stop_worker: return healthy.size() >= 2;
        case partition: return healthy.size() >= 2 && cluster_.can_partition();
        case restart_controller:
          return controller_may_restart &&
                 (last_controller_restart_ == Clock::time_point{} ||
                  now - last_controller_restart_ >= std::chrono::duration<double>(options_.controller_restart_gap_s));
        case slow_client:
        case hang_up: return true;
      }
      return false;
    };
    while (true) {
      if (deck_.empty()) {
        deck_ = {kill_worker, kill_worker, stop_worker, stop_worker, partition, partition, restart_controller,
                 slow_client, hang_up};
        std::shuffle(deck_.begin(), deck_.end(), rng_);
      }
      const Kind kind = deck_.back();
      deck_.pop_back();
      if (playable(kind)) return kind;
    }
  }

  void inject(bool controller_may_restart) {
    const auto now = Clock::now();
    std::vector<int> healthy;
    for (int w = 0; w < cluster_.workers(); ++w) {
      if (impaired_until_[static_cast<size_t>(w)] <= now) healthy.push_back(w);
    }
    auto pick = [&](const std::vector<int>& from) {
      return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng_)];
    };
    const Kind kind = draw(healthy, controller_may_restart);
    char what[160];
    switch (kind) {
      case kill_worker: {
        std::vector<int> killable;
        std::copy_if(healthy.begin(), healthy.end(), std::back_inserter(killable), [](int w) { return w != 0; });
        const int w = pick(killable);
        const double down = uniform(1, 4);
        cluster_.kill_worker(w);
        impair(w, down, [this, w] { cluster_.restart_worker(w); });
        std::snprintf(what, sizeof what, "SIGKILL %s, restarted after %.1f s", ChaosCluster::worker_name(w).c_str(), down);
        note("worker killed", what);
        break;
      }
      case stop_worker: {
        const int w = pick(healthy);
        const double stopped = uniform(0.5, 6);
        cluster_.stop_worker(w);
        impair(w, stopped, [this, w] { cluster_.continue_worker(w); });
        std::snprintf(what, sizeof what, "SIGSTOP %s for %.1f s", ChaosCluster::worker_name(w).c_str(), stopped);
        note("worker stopped", what);
        break;
      }
      case partition: {
        const int w = pick(healthy);
        const double cut = uniform(1, 8);
        cluster_.cut(w);
        impair(w, cut, [this, w] { cluster_.heal(w); });
        std::snprintf(what, sizeof what, "partition %s's host for %.1f s", ChaosCluster::worker_name(w).c_str(), cut);
        note("host partitioned", what);
        break;
      }
      case restart_controller: {
        const double start = ledger_.now_s();
        cluster_.kill_controller();
        std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0.5, 2)));
        cluster_.restart_controller();
        controller_outages_.emplace_back(start, ledger_.now_s());
        last_controller_restart_ = Clock::now();
        std::snprintf(what, sizeof what, "controller SIGKILL and restart, serving again after %.1f s",
                      ledger_.now_s() - start);
        note("controller restarted", what);
        break;
      }
      case slow_client:
      case hang_up: {
        const int client = std::uniform_int_distribution<int>(0, options_.clients - 1)(rng_);
        clients_.inject(client, kind == slow_client ? ClientFault::slow : ClientFault::disconnect);
        std::snprintf(what, sizeof what, "client %d's next stream %s", client,
                      kind == slow_client ? "reads slowly" : "hangs up mid-stream");
        note(kind == slow_client ? "slow client" : "client hung up", what);
        break;
      }
    }
  }

  const Options& options_;
  ChaosCluster& cluster_;
  Clients& clients_;
  Ledger& ledger_;
  std::mt19937_64 rng_;
  std::vector<Clock::time_point> impaired_until_;
  std::vector<Repair> repairs_;
  std::vector<Kind> deck_;
  Clock::time_point last_controller_restart_{};
};

// ---- resources ------------------------------------------------------------------------------------

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
            for (auto until = Clock::now() + std::chrono::duration<double>(period_s); !stop_ && Clock::now() < until;) {
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

// ---- the run --------------------------------------------------------------------------------------

std::vector<std::string> served_models(uint16_t port) {
  std::vector<std::string> models;
  auto list = json::parse(testing::http_request(port, "GET", "/v1/models").body, nullptr, false);
  if (!list.is_discarded()) {
    for (const auto& model : list["data"]) models.push_back(model["id"]);
  }
  if (models.empty()) throw std::runtime_error("GET /v1/models lists no model");
  return models;
}

// Waits until no worker runs or queues a request (what the controller's /health reports).
bool drained(ChaosCluster& cluster, std::chrono::seconds timeout) {
  for (auto deadline = Clock::now() + timeout; Clock::now() < deadline; std::this_thread::sleep_for(250ms)) {
    auto health = json::parse(cluster.health(), nullptr, false);
    if (health.is_discarded()) continue;
    bool idle = true;
    for (const auto& worker : health["workers"]) idle = idle && worker["running"] == 0 && worker["waiting"] == 0;
    if (idle) return true;
  }
  return false;
}

// Why a failed attempt is expected, or empty when it is not: a controller restart ends the
// streams it carried (the client is connected to it); admission control turns a request away
// when serving it would break the SLO, which it may when faults leave fewer workers for the same
// load (the proxy or the worker answers "overloaded: ..."). Both are retryable.
std::string explain(const Failure& failure, const std::vector<std::pair<double, double>>& controller_outages) {
  constexpr double kRestartGraceSeconds = 5;  // clients notice a restart a little late
  if (!failure.retryable) return {};
  if (failure.why.find("overloaded: ") != std::string::npos || failure.why.rfind("HTTP 429", 0) == 0) {
    return "admission control shed load";
  }
  const bool during_restart = std::any_of(controller_outages.begin(), controller_outages.end(), [&](const auto& outage) {
    return failure.at_s >= outage.first && failure.at_s <= outage.second + kRestartGraceSeconds;
  });
  return during_restart ? "a controller restart: its streams end with it, and it takes requests again once its "
                          "workers joined"
                        : "";
}

void print_latency(const char* phase, const PhaseLatency& latency) {
  std::printf("  %-14s TTFT p50 %.3f s p99 %.3f s   TBT p50 %.4f s p99 %.4f s   (%zu streams)\n", phase,
              percentile(latency.ttft_s, 0.5), percentile(latency.ttft_s, 0.99), percentile(latency.tbt_s, 0.5),
              percentile(latency.tbt_s, 0.99), latency.ttft_s.size());
}

Clock::time_point seconds_from_now(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

int run(Options options) {
  if (options.seed == 0) options.seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  std::printf("bench_chaos: seed %llu, %d workers, %d streaming clients, %.0f s without faults, then %.1f min with"
              " a fault every %.0f-%.0f s; logs in %s\n",
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
      csv << s.at_s << ',' << s.process << ',' << s.held.pid << ',' << s.held.rss_kib << ',' << s.held.open_files << '\n';
    }
  }
  std::printf("\nfaults injected (%.0f s):", faults_until_s - faults_from_s);
  int total_faults = 0;
  for (const auto& [kind, count] : injector.counts_) {
    std::printf(" %s %d;", kind.c_str(), count);
    total_faults += count;
  }
  std::printf(" %d in all (each one in %s)\n", total_faults, (options.cluster.out / "faults.log").c_str());
  std::printf("requests: %zu streams completed, %zu compared token by token with the no-fault output,"
              " %zu mismatched, %zu hung up on purpose\n",
              ledger.completed_, ledger.compared_, ledger.mismatches_, ledger.disconnected_);
  for (const auto& note : ledger.mismatch_notes_) std::printf("  MISMATCH %s\n", note.c_str());

  // Counted by class: the figures in a message ("1.19x the SLO") do not make a class of their own.
  auto failure_class = [](const std::string& why) { return std::regex_replace(why, std::regex("[0-9]+\\.[0-9]+"), "#"); };
  std::map<std::string, int> explained, unexplained;
  for (const auto& failure : ledger.failures_) {
    auto explanation = explain(failure, injector.controller_outages_);
    if (explanation.empty()) {
      ++unexplained[failure.why];
    } else {
      ++explained[failure_class(failure.why) + "  <- " + explanation];
    }
  }
  std::printf("failed attempts, retried: %zu\n", ledger.failures_.size());
  for (const auto& [why, count] : explained) std::printf("  %5d  %s\n", count, why.c_str());
  for (const auto& [why, count] : unexplained) std::printf("  %5d  %s  UNEXPLAINED\n", count, why.c_str());
  int listed = 0;
  for (const auto& failure : ledger.failures_) {
    if (listed < 20 && explain(failure, injector.controller_outages_).empty()) {
      std::printf("         UNEXPLAINED at %.1f s: %s\n", failure.at_s, failure.why.c_str());
      ++listed;
    }
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
        lived_through = lived_through && s.held.pid == held_after.pid &&
                        (s.held.pid == held_before.pid || s.at_s - first_seen_s[s.held.pid] >= kWarmUpSeconds);
        second_half.emplace_back(s.at_s, static_cast<double>(s.held.rss_kib) / 1024.0);
      }
    }
    const bool files_ok = held_after.open_files <= held_before.open_files + options.open_files_slack;
    const double growth = slope(second_half) * 3600;
    const bool rss_ok = !judge_rss || !lived_through || growth <= options.max_rss_growth_mib_per_h;
    resources_flat = resources_flat && files_ok && rss_ok;
    char rss_trend[96] = "restarted shortly before or in the second half";
    if (lived_through) std::snprintf(rss_trend, sizeof rss_trend, "%+.1f MiB/h over the second half", growth);
    std::printf("  %-10s open files %d before, %d after%s   RSS %.1f MiB before, %.1f after, peak %.1f; %s%s  (%s)\n",
                process.c_str(), held_before.open_files, held_after.open_files, files_ok ? "" : " (GREW)",
                static_cast<double>(held_before.rss_kib) / 1024.0, static_cast<double>(held_after.rss_kib) / 1024.0,
                static_cast<double>(peak_rss) / 1024.0, rss_trend, rss_ok ? "" : " (GREW)",
                held_after.pid == held_before.pid ? "one process throughout" : "restarted during the run");
  }
  if (!judge_rss) std::printf("  (RSS growth is judged on fault phases of 20 minutes or more)\n");

  int unexplained_count = 0;
  for (const auto& [why, count] : unexplained) unexplained_count += count;
  struct Criterion {
    const char* what;
    bool held;
  };
  const Criterion criteria[] = {
      {"no mismatched stream", ledger.mismatches_ == 0},
      {"streams compared with faults", ledger.compared_ > 0 && total_faults > 0},
      {"every failure explained", unexplained_count == 0 && ledger.gave_up_.empty()},
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
  CLI::App app{"Load with faults arriving at random against a real cluster; every completed stream is compared "
               "token by token with a no-fault run (bench/chaos/README.md)"};
  app.add_option("--minutes", options.minutes, "Length of the fault phase")->capture_default_str()->check(CLI::Range(0.1, 24 * 60.0));
  app.add_option("--baseline-seconds", options.baseline_seconds, "Length of the no-fault phase")->capture_default_str()->check(CLI::Range(5.0, 3600.0));
  app.add_option("--workers", cluster.workers, "Worker processes")->capture_default_str()->check(CLI::Range(2, 8));
  app.add_option("--clients", options.clients, "Concurrent streaming clients")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--fault-gap-min", options.fault_gap_min_s, "Shortest time between two faults, seconds")->capture_default_str()->check(CLI::Range(0.1, 600.0));
  app.add_option("--fault-gap-max", options.fault_gap_max_s, "Longest time between two faults, seconds")->capture_default_str()->check(CLI::Range(0.1, 600.0));
  app.add_option("--controller-restart-gap", options.controller_restart_gap_s, "Shortest time between two controller restarts, seconds (they happen in the fault phase's first 40 %)")->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  app.add_option("--sample-seconds", options.sample_seconds, "RSS and open-files sampling period")->capture_default_str()->check(CLI::Range(0.5, 600.0));
  app.add_option("--read-timeout", options.read_timeout_s, "A stream silent this long (seconds) counts as hung")->capture_default_str()->check(CLI::Range(1.0, 3600.0));
  app.add_option("--open-files-slack", options.open_files_slack, "Open files a process may hold after the run beyond those before")->capture_default_str()->check(CLI::Range(0, 10000));
  app.add_option("--max-rss-growth", options.max_rss_growth_mib_per_h, "MiB/h of RSS growth allowed over the fault phase's second half (judged from 20 minutes)")->capture_default_str();
  app.add_option("--seed", options.seed, "Random seed of cases and faults (0: from the clock)")->capture_default_str();
  app.add_option("--out", out, "Directory for the processes' logs, faults.log and resources.csv")->capture_default_str();
  app.add_option("--binary", cluster.binary, "aegaeon binary")->capture_default_str();
  app.add_option("--data-dir", cluster.data_dir, "serve.data_dir of the workers (demo models)")->capture_default_str();
  app.add_flag("!--loopback", cluster.netns, "Run every process on loopback even as root (no partitions)");
  app.add_flag("!--no-tls", cluster.tls, "Plain TCP between controller and workers");
  CLI11_PARSE(app, argc, argv);
  if (options.fault_gap_max_s < options.fault_gap_min_s) {
    std::fprintf(stderr, "bench_chaos: --fault-gap-max (%g) is below --fault-gap-min (%g)\n", options.fault_gap_max_s,
                 options.fault_gap_min_s);
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
