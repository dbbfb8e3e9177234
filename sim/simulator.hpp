// The simulator's entry point: run one serving system (aegaeon or a baseline) over a workload
// in virtual time and score it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "actors/policy/admission.hpp"
#include "actors/policy/request.hpp"
#include "sim/profile_table.hpp"
#include "sim/workload.hpp"
#include "core/result.hpp"

namespace aegaeon::sim {

/// Which serving system to simulate.
enum class SystemKind {
  kAegaeon,           ///< token-level: grouped-FCFS prefill + weighted round-robin decode
  kDedicated,         ///< one model per device, never switches (models beyond devices are unserved)
  kRequestLevel,      ///< ServerlessLLM-like: a device serves one model until idle, LRU, FCFS
  kRequestLevelSrtf,  ///< the same with shortest-remaining-first ordering
  kStaticMux,         ///< MuxServe-like: models packed into device memory, time-shared, no switching
};

/// Stable name of a system ("aegaeon", "dedicated", "request-level", "request-level-srtf", "static-mux").
std::string to_string(SystemKind kind);
/// Parses a system name; the error lists the valid names.
core::Result<SystemKind> parse_system(const std::string& name);

/// What to simulate.
struct SimConfig {
  SystemKind system = SystemKind::kAegaeon;
  std::string device = "H800";
  std::int32_t devices = 16;
  /// aegaeon: prefill instances; the rest decode (and, with elastic memory, prefill the models they
  /// hold). One serves the prompts of models no decode device holds; the paper used 6 of 16.
  std::int32_t prefill_devices = 1;
  policy::Slo slo;
  /// Share of the nominal host→device bandwidth a weight or KV copy reaches (the artifact
  /// assumed 0.15; aegaeon's pinned, chunked copies aim near 1).
  double h2d_efficiency = 0.8;
  double memory_fraction = 0.9;  ///< device memory usable for weights + KV
  bool prefetch = true;
  /// aegaeon: several models resident per device with elastic KV (DecodeInstanceConfig::
  /// memory_bytes), cost-aware dispatch; false: the paper's one model and one batch per device.
  bool elastic_memory = true;
  /// aegaeon: a new decode batch gets its turn right after the running one (false: next round).
  bool immediate_turns = true;
  /// aegaeon: decode rounds last at most half the TTFT SLO (DecodeRoundConfig::max_round_s).
  bool bounded_rounds = true;
  /// aegaeon with elastic memory and one prefill device: that device prefills only while the
  /// weights of the models in demand plus the KV in use exceed what the devices hold, and decodes
  /// otherwise (an online prefill/decode split; false: the split stays as configured).
  bool adaptive_split = true;
  /// Every system: a prompt still waiting at its TTFT deadline is turned away (429) instead of
  /// started late; aegaeon's elastic devices also start a prompt only when a decode device will
  /// take it within the TBT SLO, and the paper's devices predict TTFT and α at arrival
  /// (decide_admission). On by default, as in `aegaeon serve`.
  policy::AdmissionConfig admission;
  std::int32_t max_batch_size = 128;
  std::int32_t prefill_max_group = 8;
  bool progress = false;  ///< print progress to stderr
};

/// Mean and percentiles of a latency, seconds.
struct LatencyStats {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};

/// The fate of one request.
struct RequestOutcome {
  std::int32_t model = 0;
  double arrival_s = 0;
  std::int32_t input_tokens = 0, output_tokens = 0;
  bool served = false;    ///< produced all its tokens
  bool rejected = false;  ///< admission control said 429
  double ttft_s = 0, tpot_s = 0, e2e_s = 0, max_itl_s = 0, qos = 0;
  bool met_slo = false;   ///< request-level: TTFT and TPOT within SLO
};

/// Everything a run measured.
struct SimResult {
  std::string system;
  std::vector<RequestOutcome> requests;
  double mean_qos = 0;            ///< paper's attainment (unserved/rejected count 0)
  double request_attainment = 0;  ///< field's attainment
  double duration_s = 0;          ///< workload span (first to last arrival)
  double makespan_s = 0;          ///< until the last token
  double goodput_rps = 0;         ///< requests meeting their SLO per second of workload
  double tokens_per_s = 0;
  double utilization = 0;         ///< compute-busy device time / (devices · makespan)
  double switch_share = 0;        ///< device time spent loading weights or swapping KV
  std::int64_t switches = 0;      ///< model loads
  double switches_per_s = 0;
  std::int64_t rejected = 0, unserved = 0;
  LatencyStats ttft, tpot, itl;
  std::int64_t events = 0;
  double wall_s = 0;
};

/// Runs `config.system` over `workload` with costs fitted from `profiles`.
core::Result<SimResult> simulate(const Workload& workload, const SimConfig& config, const ProfileTable& profiles);

/// The result as JSON (per-request rows only when `per_request`).
std::string to_json(const SimResult& result, const SimConfig& config, bool per_request);
/// A short human table of several results.
std::string format_table(const std::vector<SimResult>& results);

}  // namespace aegaeon::sim
