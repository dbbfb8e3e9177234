// The faults of a chaos run: one every few seconds, drawn from a shuffled deck, each undone a
// little later; at least one worker stays healthy, and worker 0 (the witness whose RSS and open
// files span the whole run) is never killed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench/chaos/chaos_cluster.hpp"
#include "bench/chaos/chaos_load.hpp"
#include "bench/chaos/chaos_options.hpp"

namespace aegaeon::bench::chaos {

class FaultInjector {
 public:
  FaultInjector(const Options& options, ChaosCluster& cluster, Clients& clients, Ledger& ledger,
                uint64_t seed)
      : options_(options),
        cluster_(cluster),
        clients_(clients),
        ledger_(ledger),
        rng_(seed),
        impaired_until_(static_cast<size_t>(cluster.workers()), Clock::time_point{}) {}

  /// Injects faults until `until`, then repairs what is still broken.
  void run(Clock::time_point until);

  // Read once run() returned.
  /// (start, serving again) of each controller restart, in seconds of the ledger's clock.
  std::vector<std::pair<double, double>> controller_outages_;
  std::map<std::string, int> counts_;  ///< faults by kind
  std::vector<std::string> log_;       ///< one line per fault, with its time

 private:
  struct Repair {
    Clock::time_point due;
    std::function<void()> action;
  };
  enum Kind { kill_worker, stop_worker, partition, restart_controller, slow_client, hang_up };

  Clock::duration gap();
  double uniform(double low, double high);
  Clock::time_point after(double seconds);
  void note(const std::string& kind, const std::string& what);
  void run_due_repairs();
  // A worker fault on `worker`, repaired after `seconds`; the worker counts as impaired until
  // a few seconds after the repair (the time it takes to join again).
  void impair(int worker, double seconds, std::function<void()> repair);
  // The next fault: the first card of a shuffled deck that may be played now (cards that may not
  // are dropped), so that every kind comes round in every deck while the order stays random.
  // A deck holds each worker fault twice and each other fault once.
  Kind draw(const std::vector<int>& healthy, bool controller_may_restart);
  void inject(bool controller_may_restart);

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

}  // namespace aegaeon::bench::chaos
