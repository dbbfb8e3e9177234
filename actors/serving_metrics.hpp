// The serving metrics (vLLM-compatible names with the aegaeon_ prefix, label model_name, plus
// the switch-specific ones), registered once and updated by the actors through series they
// looked up once (ModelSeries, DeviceSeries).
#pragma once

#include <string>

#include "core/metrics.hpp"

namespace aegaeon::actors {

/// Every family the serving roles update. Borrowed references; the Registry outlives it.
struct ServingMetrics {
  explicit ServingMetrics(prometheus::Registry& registry);

  core::HistogramFamily ttft_s;
  core::HistogramFamily inter_token_s;
  core::HistogramFamily e2e_s;
  core::HistogramFamily queue_s;
  prometheus::Family<prometheus::Gauge>& running;
  prometheus::Family<prometheus::Gauge>& waiting;
  prometheus::Family<prometheus::Gauge>& kv_usage;
  prometheus::Family<prometheus::Counter>& prompt_tokens;
  prometheus::Family<prometheus::Counter>& generation_tokens;
  prometheus::Family<prometheus::Counter>& requests;  ///< by model_name and finished_reason
  core::HistogramFamily switch_s;
  prometheus::Family<prometheus::Counter>& switches;
  prometheus::Family<prometheus::Counter>& kv_swap_bytes;
  prometheus::Family<prometheus::Counter>& weights_copy_bytes;
  prometheus::Family<prometheus::Gauge>& slo_attainment;
  core::HistogramFamily decode_step_s;                     ///< device compute per decode step, by device
  prometheus::Family<prometheus::Counter>& engine_cpu_s;  ///< device-thread CPU inside forward passes
  prometheus::Family<prometheus::Gauge>& host_weights_bytes;  ///< a model's weights in host memory
};

/// The label set {model_name: name} plus `more`, the name made valid UTF-8 (a folder's name need
/// not be; the exposition must be).
prometheus::Labels model_labels(const std::string& model_name, prometheus::Labels more = {});

/// One model's series of the families the proxy updates per token and per request, looked up
/// once.
struct ModelSeries {
  ModelSeries(ServingMetrics& metrics, const std::string& model_name);

  prometheus::Histogram& ttft_s;
  prometheus::Histogram& inter_token_s;
  prometheus::Histogram& e2e_s;
  prometheus::Histogram& queue_s;
  prometheus::Gauge& running;
  prometheus::Gauge& waiting;
  prometheus::Gauge& slo_attainment;
  prometheus::Counter& prompt_tokens;
  prometheus::Counter& generation_tokens;

 private:
  ModelSeries(ServingMetrics& metrics, const prometheus::Labels& model);
};

/// One device's series of the families its gpu_worker updates after every command.
struct DeviceSeries {
  DeviceSeries(ServingMetrics& metrics, const std::string& device_name);

  prometheus::Counter& switches_copied;     ///< switches that copied the weights
  prometheus::Counter& switches_prefetched; ///< switches that adopted a finished prefetch
  prometheus::Counter& weights_copy_bytes;
  prometheus::Counter& kv_swap_bytes;       ///< to and from the host slab
  prometheus::Counter& kv_handoff_bytes;    ///< prefill → decode handoffs
  prometheus::Histogram& switch_s;
  prometheus::Gauge& kv_usage;
  prometheus::Counter& engine_cpu_s;
};

}  // namespace aegaeon::actors
