#include "bench/chaos/fault_injector.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <thread>

namespace aegaeon::bench::chaos {

using namespace std::chrono_literals;

void FaultInjector::run(Clock::time_point until) {
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

Clock::duration FaultInjector::gap() {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::uniform_real_distribution<double>(
          options_.fault_gap_min_s, options_.fault_gap_max_s)(rng_)));
}

double FaultInjector::uniform(double low, double high) {
  return std::uniform_real_distribution<double>(low, high)(rng_);
}

Clock::time_point FaultInjector::after(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void FaultInjector::note(const std::string& kind, const std::string& what) {
  ++counts_[kind];
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%8.1f s  ", ledger_.now_s());
  log_.push_back(stamp + what);
}

void FaultInjector::run_due_repairs() {
  const auto now = Clock::now();
  auto due = std::stable_partition(repairs_.begin(), repairs_.end(),
                                   [&](const Repair& r) { return r.due > now; });
  std::vector<Repair> ready(std::make_move_iterator(due), std::make_move_iterator(repairs_.end()));
  repairs_.erase(due, repairs_.end());
  for (auto& repair : ready) repair.action();
}

void FaultInjector::impair(int worker, double seconds, std::function<void()> repair) {
  constexpr double kRejoinSeconds = 5;
  impaired_until_[static_cast<size_t>(worker)] = after(seconds + kRejoinSeconds);
  repairs_.push_back({after(seconds), std::move(repair)});
}

FaultInjector::Kind FaultInjector::draw(const std::vector<int>& healthy,
                                        bool controller_may_restart) {
  const auto now = Clock::now();
  auto playable = [&](Kind kind) {
    switch (kind) {
      case kill_worker:
        return healthy.size() >= 2 &&
               std::any_of(healthy.begin(), healthy.end(), [](int w) { return w != 0; });
      case stop_worker:
        return healthy.size() >= 2;
      case partition:
        return healthy.size() >= 2 && cluster_.can_partition();
      case restart_controller:
        return controller_may_restart &&
               (last_controller_restart_ == Clock::time_point{} ||
                now - last_controller_restart_ >=
                    std::chrono::duration<double>(options_.controller_restart_gap_s));
      case slow_client:
      case hang_up:
        return true;
    }
    return false;
  };
  while (true) {
    if (deck_.empty()) {
      deck_ = {kill_worker, kill_worker,        stop_worker, stop_worker, partition,
               partition,   restart_controller, slow_client, hang_up};
      std::shuffle(deck_.begin(), deck_.end(), rng_);
    }
    const Kind kind = deck_.back();
    deck_.pop_back();
    if (playable(kind)) return kind;
  }
}

void FaultInjector::inject(bool controller_may_restart) {
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
      std::copy_if(healthy.begin(), healthy.end(), std::back_inserter(killable),
                   [](int w) { return w != 0; });
      const int w = pick(killable);
      const double down = uniform(1, 4);
      cluster_.kill_worker(w);
      impair(w, down, [this, w] { cluster_.restart_worker(w); });
      std::snprintf(what, sizeof what, "SIGKILL %s, restarted after %.1f s",
                    ChaosCluster::worker_name(w).c_str(), down);
      note("worker killed", what);
      break;
    }
    case stop_worker: {
      const int w = pick(healthy);
      const double stopped = uniform(0.5, 6);
      cluster_.stop_worker(w);
      impair(w, stopped, [this, w] { cluster_.continue_worker(w); });
      std::snprintf(what, sizeof what, "SIGSTOP %s for %.1f s",
                    ChaosCluster::worker_name(w).c_str(), stopped);
      note("worker stopped", what);
      break;
    }
    case partition: {
      const int w = pick(healthy);
      const double cut = uniform(1, 8);
      cluster_.cut(w);
      impair(w, cut, [this, w] { cluster_.heal(w); });
      std::snprintf(what, sizeof what, "partition %s's host for %.1f s",
                    ChaosCluster::worker_name(w).c_str(), cut);
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

}  // namespace aegaeon::bench::chaos
