#include "actors/serving_metrics.hpp"

#include "core/utf8.hpp"

namespace aegaeon::actors {
namespace {

// Latency buckets from 1 ms to ~65 s: TBT SLOs are ~0.1 s, TTFT SLOs ~10 s.
std::vector<double> latency_buckets() { return core::exponential_buckets(0.001, 2, 17); }

}  // namespace

ServingMetrics::ServingMetrics(prometheus::Registry& r)
    : ttft_s(prometheus::BuildHistogram().Name("aegaeon_time_to_first_token_seconds")
                 .Help("Time from request arrival to its first token").Register(r), latency_buckets()),
      inter_token_s(prometheus::BuildHistogram().Name("aegaeon_inter_token_latency_seconds")
                        .Help("Time between consecutive tokens of a request").Register(r), latency_buckets()),
      e2e_s(prometheus::BuildHistogram().Name("aegaeon_e2e_request_latency_seconds")
                .Help("Time from request arrival to its last token").Register(r), latency_buckets()),
      queue_s(prometheus::BuildHistogram().Name("aegaeon_request_queue_time_seconds")
                  .Help("Time from request arrival to the start of its prefill").Register(r), latency_buckets()),
      running(prometheus::BuildGauge().Name("aegaeon_num_requests_running")
                  .Help("Requests that produced a first token and are still generating").Register(r)),
      waiting(prometheus::BuildGauge().Name("aegaeon_num_requests_waiting")
                  .Help("Admitted requests waiting for their first token").Register(r)),
      kv_usage(prometheus::BuildGauge().Name("aegaeon_kv_cache_usage_perc")
                   .Help("Share of a device's KV blocks in use, 0..1").Register(r)),
      prompt_tokens(prometheus::BuildCounter().Name("aegaeon_prompt_tokens_total")
                        .Help("Prompt tokens of admitted requests").Register(r)),
      generation_tokens(prometheus::BuildCounter().Name("aegaeon_generation_tokens_total")
                            .Help("Tokens generated").Register(r)),
      requests(prometheus::BuildCounter().Name("aegaeon_request_success_total")
                   .Help("Finished requests by finish reason (stop, length, cancelled, error, rejected)").Register(r)),
      switch_s(prometheus::BuildHistogram().Name("aegaeon_model_switch_seconds")
                   .Help("Time to make a model resident on a device (copy or adopt a prefetch)")
                   .Register(r), core::exponential_buckets(0.0001, 2, 18)),
      switches(prometheus::BuildCounter().Name("aegaeon_model_switches_total")
                   .Help("Model switches by device and whether a prefetch was adopted").Register(r)),
      kv_swap_bytes(prometheus::BuildCounter().Name("aegaeon_kv_swap_bytes_total")
                        .Help("KV bytes moved between device and host (swap and handoff)").Register(r)),
      weights_copy_bytes(prometheus::BuildCounter().Name("aegaeon_weights_copy_bytes_total")
                             .Help("Weight bytes copied host to device by switches and prefetches").Register(r)),
      slo_attainment(prometheus::BuildGauge().Name("aegaeon_slo_attainment")
                         .Help("Share of finished requests that met both TTFT and TBT SLOs").Register(r)),
      // Against client-side time between tokens this gives the runtime's own cost per token
      // (actors, proxy, HTTP): bench/e2e reports the difference.
      decode_step_s(prometheus::BuildHistogram().Name("aegaeon_decode_step_seconds")
                        .Help("Device time of one decode step (forward and sampling), by device")
                        .Register(r), core::exponential_buckets(0.0001, 2, 18)),
      // The device thread's CPU inside prefill and decode calls; the rest of that thread's CPU
      // and every thread not named aeg-compute/aeg-copy is runtime (bench/e2e splits it so).
      engine_cpu_s(prometheus::BuildCounter().Name("aegaeon_device_engine_cpu_seconds_total")
                       .Help("CPU time a device thread spent inside forward passes (prefill, decode), by device")
                       .Register(r)),
      host_weights_bytes(prometheus::BuildGauge().Name("aegaeon_model_host_weights_bytes")
                             .Help("Bytes of a model's weights in host memory (0 while an operator has it unloaded)")
                             .Register(r)) {}

prometheus::Labels model_labels(const std::string& model_name, prometheus::Labels more) {
  more.emplace("model_name", core::to_valid_utf8(model_name));
  return more;
}

ModelSeries::ModelSeries(ServingMetrics& m, const std::string& model_name)
    : ModelSeries(m, model_labels(model_name)) {}

ModelSeries::ModelSeries(ServingMetrics& m, const prometheus::Labels& model)
    : ttft_s(m.ttft_s.series(model)),
      inter_token_s(m.inter_token_s.series(model)),
      e2e_s(m.e2e_s.series(model)),
      queue_s(m.queue_s.series(model)),
      running(m.running.Add(model)),
      waiting(m.waiting.Add(model)),
      slo_attainment(m.slo_attainment.Add(model)),
      prompt_tokens(m.prompt_tokens.Add(model)),
      generation_tokens(m.generation_tokens.Add(model)) {}

DeviceSeries::DeviceSeries(ServingMetrics& m, const std::string& device)
    : switches_copied(m.switches.Add({{"device", device}, {"prefetched", "false"}})),
      switches_prefetched(m.switches.Add({{"device", device}, {"prefetched", "true"}})),
      weights_copy_bytes(m.weights_copy_bytes.Add({{"device", device}})),
      kv_swap_bytes(m.kv_swap_bytes.Add({{"device", device}, {"direction", "swap"}})),
      kv_handoff_bytes(m.kv_swap_bytes.Add({{"device", device}, {"direction", "handoff"}})),
      switch_s(m.switch_s.series({{"device", device}})),
      kv_usage(m.kv_usage.Add({{"device", device}})),
      engine_cpu_s(m.engine_cpu_s.Add({{"device", device}})) {}

}  // namespace aegaeon::actors
