// Workloads for the simulator: the artifact's trace CSVs, or generated multi-model workloads.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::sim {

/// One request of a workload.
struct TraceRequest {
  double arrival_s = 0.0;
  std::int32_t model = 0;  ///< index into Workload::model_names
  std::int32_t input_tokens = 0;
  std::int32_t output_tokens = 0;
};

/// A workload: requests sorted by arrival and the names of the models they address.
struct Workload {
  std::vector<std::string> model_names;  ///< as in the trace (e.g. synth_model_07)
  std::vector<TraceRequest> requests;
  /// Arrival time of the last request (the span the rates refer to).
  [[nodiscard]] double duration_s() const { return requests.empty() ? 0.0 : requests.back().arrival_s; }
};

/// Reads `Request Time,Model Name,Input Length,Output Length` (time as HH:MM:SS.mmm or seconds).
/// Errors name the file, line and field.
/// kBuiltinData ("builtin") names sim/data/traces/synth-40-0.5-1.0-1.0.csv, compiled in: generated
/// workloads draw their (input, output) lengths from it by default.
core::Result<Workload> load_trace(const std::string& path);
/// Reads a trace from `in`; errors name `path`, the line and the field.
core::Result<Workload> parse_trace(std::istream& in, const std::string& path);


/// How to generate a workload.
struct WorkloadSpec {
  std::int32_t models = 40;
  double rate_per_model_rps = 0.1;  ///< mean over models
  double duration_s = 3600.0;
  double zipf_s = 0.0;              ///< popularity ∝ 1/(rank+1)^s; 0 = uniform
  double burstiness_cv = 1.0;       ///< inter-arrival coefficient of variation: 1 = Poisson, >1 bursty (Gamma)
  std::uint64_t seed = 1;
  double input_scale = 1.0;   ///< drawn prompt lengths × this (×2 input workloads)
  double output_scale = 1.0;  ///< drawn output lengths × this
};

/// Generates a workload: per-model Gamma(cv) arrivals, lengths drawn from `lengths` (a trace's
/// (input, output) pairs, ShareGPT-like). Model names are synth_model_<i>.
core::Result<Workload> generate_workload(const WorkloadSpec& spec, const Workload& lengths);

/// Where a command's workload comes from: a trace file, or a generated workload whose lengths
/// are drawn from `lengths_trace`; then arrivals scaled by `rate_scale`.
struct WorkloadSource {
  std::string trace;          ///< artifact trace CSV; empty: generate from `spec`
  std::string lengths_trace;  ///< length source for generated workloads
  WorkloadSpec spec;
  double rate_scale = 1.0;
};

/// Loads or generates the workload a WorkloadSource describes.
core::Result<Workload> make_workload(const WorkloadSource& source);

/// Scales every arrival time by 1/`factor` (factor 2 doubles the rate) — for rate sweeps on a trace.
Workload scale_rate(const Workload& w, double factor);

}  // namespace aegaeon::sim
