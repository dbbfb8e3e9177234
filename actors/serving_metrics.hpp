// The serving metrics (vLLM-compatible names with the aegaeon_ prefix, label model_name, plus
// the switch-specific ones), registered once and updated lock-free by the actors.
#pragma once

#include <string>

#include "core/metrics.hpp"

namespace aegaeon::actors {

/// Every family the serving roles update. Borrowed references; the Registry outlives it.
struct ServingMetrics {
  explicit ServingMetrics(core::Registry& registry);

  core::Family<core::Histogram>& ttft_s;
  core::Family<core::Histogram>& inter_token_s;
  core::Family<core::Histogram>& e2e_s;
  core::Family<core::Histogram>& queue_s;
  core::Family<core::Gauge>& running;
  core::Family<core::Gauge>& waiting;
  core::Family<core::Gauge>& kv_usage;
  core::Family<core::Counter>& prompt_tokens;
  core::Family<core::Counter>& generation_tokens;
  core::Family<core::Counter>& requests;          ///< by model_name and finished_reason
  core::Family<core::Histogram>& switch_s;
  core::Family<core::Counter>& switches;
  core::Family<core::Counter>& kv_swap_bytes;
  core::Family<core::Counter>& weights_copy_bytes;
  core::Family<core::Gauge>& slo_attainment;
  core::Family<core::Histogram>& decode_step_s;   ///< device compute per decode step, by device
  core::Family<core::Counter>& engine_cpu_s;      ///< device-thread CPU inside forward passes
  core::Family<core::Gauge>& host_weights_bytes;  ///< a model's weights in host memory, by model
};

/// One model's series of the families the proxy updates per token and per request, looked up
/// once: a lookup by labels builds a label map and takes the family's lock, which no token
/// should pay for.
struct ModelSeries {
  ModelSeries(ServingMetrics& metrics, const std::string& model_name);

  core::Histogram& ttft_s;
  core::Histogram& inter_token_s;
  core::Histogram& e2e_s;
  core::Histogram& queue_s;
  core::Gauge& running;
  core::Gauge& waiting;
  core::Gauge& slo_attainment;
  core::Counter& prompt_tokens;
  core::Counter& generation_tokens;
};

}  // namespace aegaeon::actors
