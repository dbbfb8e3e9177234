// The clients of a chaos run: what they ask (greedy cases, so that every completion can be
// compared with a no-fault one), how one streaming attempt goes, and the ledger of what they saw.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bench/chaos/chaos_options.hpp"

namespace aegaeon::bench::chaos {

using Clock = std::chrono::steady_clock;

struct Case {
  std::string model;
  std::string prompt;
  int max_tokens = 0;
};

/// Every model with each of 8 prompts, 32 to 128 tokens.
std::vector<Case> make_cases(const std::vector<std::string>& models);

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

/// One streaming completion of `c` against 127.0.0.1:`port`, with the client fault `fault`.
Attempt stream_case(uint16_t port, const Case& c, ClientFault fault, std::mt19937_64& rng,
                    double read_timeout_s);

/// A failed attempt; times in seconds of the ledger's clock.
struct Failure {
  double started_s;  ///< when the attempt was sent
  double at_s;       ///< when it failed
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

  /// Seconds since the run began (the clock of every report).
  [[nodiscard]] double now_s() const {
    return std::chrono::duration<double>(Clock::now() - origin_).count();
  }

  /// A completed stream of case `index`: the first one of a case is its reference (no-fault
  /// phase only), every later one is compared with it token by token.
  void completed(size_t index, const Attempt& attempt, bool faults, bool slow);
  void disconnected();
  /// An attempt sent at `started_s` failed now.
  void failed(const Attempt& attempt, double started_s);
  void gave_up(const Case& c, int attempts);
  bool has_reference(size_t index);
  /// One line of counts for the progress report.
  std::string progress();

  // Read once the clients are done.
  size_t completed_ = 0, compared_ = 0, mismatches_ = 0, disconnected_ = 0;
  std::vector<std::string> mismatch_notes_;
  std::vector<Failure> failures_;
  std::vector<std::string> gave_up_;
  PhaseLatency without_faults_, with_faults_;

 private:
  std::mutex mutex_;
  std::vector<std::optional<Attempt>> references_;
  Clock::time_point origin_;
};

/// Each client streams random cases until `until`; a fault for a client (slow, hang up)
/// applies to its next request.
class Clients {
 public:
  Clients(const Options& options, const std::vector<Case>& cases, uint16_t port, Ledger& ledger,
          uint64_t seed);

  void run(Clock::time_point until, bool faults);
  /// One request of case `index`, retried while it fails with a retryable error.
  void request(size_t index, ClientFault fault, bool faults, std::mt19937_64& rng);
  void inject(int client, ClientFault fault) { faults_[static_cast<size_t>(client)] = fault; }

 private:
  const Options& options_;
  const std::vector<Case>& cases_;
  uint16_t port_;
  Ledger& ledger_;
  std::vector<std::atomic<ClientFault>> faults_;
  std::vector<std::mt19937_64> rngs_;
};

}  // namespace aegaeon::bench::chaos
