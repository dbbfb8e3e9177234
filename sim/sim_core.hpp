// Internal to bench/sim: the event queue, per-request accounting and the cost environment the
// simulated systems share.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

#include "actors/policy/cost_model.hpp"
#include "actors/policy/slo_tracker.hpp"
#include "sim/model_catalog.hpp"
#include "sim/simulator.hpp"

namespace aegaeon::sim::detail {

/// Costs of one workload model on the simulated device.
struct ModelEnv {
  double weight_bytes = 0;
  double kv_bytes_per_token = 0;
  policy::PrefillCost prefill;
  policy::DecodeCost decode;
  double load_s = 0;              ///< weights host→device
  double kv_s_per_token = 0;      ///< one token of KV host↔device
};

/// The shared cost environment.
struct Env {
  SimConfig config;
  DeviceSpec device;
  double usable_bytes = 0;
  std::vector<ModelEnv> models;  ///< index = workload model
  double max_weight_bytes = 0;
};

/// A timed event; `kind` and `target` are interpreted by the system.
struct Event {
  double t = 0;
  std::uint64_t seq = 0;
  std::int32_t kind = 0;
  std::int64_t target = 0;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

/// Virtual time, the event queue and per-request accounting.
class SimCore {
 public:
  SimCore(const Workload& w, const Env& env);
  /// Schedules an event at `t`.
  void at(double t, std::int32_t kind, std::int64_t target) { queue_.push(Event{t, seq_++, kind, target}); }
  /// Pops the next event (advancing now) or returns false when none are left.
  bool next(Event& e);
  /// Current virtual time.
  [[nodiscard]] double now() const { return now_; }
  /// Request `r` produced a token at now.
  void token(std::int64_t r);
  /// Request `r` will never be served (rejected: admission said no).
  void fail(std::int64_t r, bool rejected);
  /// Device time accounting.
  void add_compute(double s) { compute_s_ += s; }
  void add_switch(double s, bool model_load) { switch_s_ += s; switches_ += model_load ? 1 : 0; }
  /// Scores the run.
  SimResult finish(const std::string& system, std::int32_t devices) const;

  const Workload& workload;
  const Env& env;

 private:
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::uint64_t seq_ = 0;
  double now_ = 0;
  std::int64_t events_ = 0;
  std::vector<policy::SloTracker> trackers_;
  std::vector<std::uint8_t> state_;  // 0 pending, 1 done, 2 rejected, 3 unserved
  std::vector<float> itl_;
  double compute_s_ = 0, switch_s_ = 0;
  std::int64_t switches_ = 0;
  std::int64_t done_ = 0;
  double next_progress_s_ = 0;
};

/// Runs the aegaeon system.
void run_aegaeon(SimCore& core);
/// Runs one of the colocated baselines (dedicated, request-level ± SRTF, static mux).
void run_colocated(SimCore& core);

}  // namespace aegaeon::sim::detail
