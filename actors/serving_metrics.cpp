#include "actors/serving_metrics.hpp"

namespace aegaeon::actors {
namespace {

// Latency buckets from 1 ms to ~65 s: TBT SLOs are ~0.1 s, TTFT SLOs ~10 s.
std::vector<double> latency_buckets() { return core::exponential_buckets(0.001, 2, 17); }

}  // namespace

ServingMetrics::ServingMetrics(core::Registry& r)
    : ttft_s(core::build_histogram().name("aegaeon_time_to_first_token_seconds")
                 .help("Time from request arrival to its first token").buckets(latency_buckets()).register_on(r)),
      inter_token_s(core::build_histogram().name("aegaeon_inter_token_latency_seconds")
                        .help("Time between consecutive tokens of a request").buckets(latency_buckets()).register_on(r)),
      e2e_s(core::build_histogram().name("aegaeon_e2e_request_latency_seconds")
                .help("Time from request arrival to its last token").buckets(latency_buckets()).register_on(r)),
      queue_s(core::build_histogram().name("aegaeon_request_queue_time_seconds")
                  .help("Time from request arrival to the start of its prefill").buckets(latency_buckets()).register_on(r)),
      running(core::build_gauge().name("aegaeon_num_requests_running")
                  .help("Requests that produced a first token and are still generating").register_on(r)),
      waiting(core::build_gauge().name("aegaeon_num_requests_waiting")
                  .help("Admitted requests waiting for their first token").register_on(r)),
      kv_usage(core::build_gauge().name("aegaeon_kv_cache_usage_perc")
                   .help("Share of a device's KV blocks in use, 0..1").register_on(r)),
      prompt_tokens(core::build_counter().name("aegaeon_prompt_tokens_total")
                        .help("Prompt tokens of admitted requests").register_on(r)),
      generation_tokens(core::build_counter().name("aegaeon_generation_tokens_total")
                            .help("Tokens generated").register_on(r)),
      requests(core::build_counter().name("aegaeon_request_success_total")
                   .help("Finished requests by finish reason (stop, length, cancelled, error, rejected)").register_on(r)),
      switch_s(core::build_histogram().name("aegaeon_model_switch_seconds")
                   .help("Time to make a model resident on a device (copy or adopt a prefetch)")
                   .buckets(core::exponential_buckets(0.0001, 2, 18)).register_on(r)),
      switches(core::build_counter().name("aegaeon_model_switches_total")
                   .help("Model switches by device and whether a prefetch was adopted").register_on(r)),
      kv_swap_bytes(core::build_counter().name("aegaeon_kv_swap_bytes_total")
                        .help("KV bytes moved between device and host (swap and handoff)").register_on(r)),
      weights_copy_bytes(core::build_counter().name("aegaeon_weights_copy_bytes_total")
                             .help("Weight bytes copied host to device by switches and prefetches").register_on(r)),
      slo_attainment(core::build_gauge().name("aegaeon_slo_attainment")
                         .help("Share of finished requests that met both TTFT and TBT SLOs").register_on(r)),
      // Against client-side time between tokens this gives the runtime's own cost per token
      // (actors, proxy, HTTP): bench/e2e reports the difference.
      decode_step_s(core::build_histogram().name("aegaeon_decode_step_seconds")
                        .help("Device time of one decode step (forward and sampling), by device")
                        .buckets(core::exponential_buckets(0.0001, 2, 18)).register_on(r)),
      // The device thread's CPU inside prefill and decode calls; the rest of that thread's CPU
      // and every thread not named aeg-compute/aeg-copy is runtime (bench/e2e splits it so).
      engine_cpu_s(core::build_counter().name("aegaeon_device_engine_cpu_seconds_total")
                       .help("CPU time a device thread spent inside forward passes (prefill, decode), by device")
                       .register_on(r)),
      host_weights_bytes(core::build_gauge().name("aegaeon_model_host_weights_bytes")
                             .help("Bytes of a model's weights in host memory (0 while an operator has it unloaded)")
                             .register_on(r)) {}

ModelSeries::ModelSeries(ServingMetrics& m, const std::string& model_name)
    : ttft_s(m.ttft_s.add({{"model_name", model_name}})),
      inter_token_s(m.inter_token_s.add({{"model_name", model_name}})),
      e2e_s(m.e2e_s.add({{"model_name", model_name}})),
      queue_s(m.queue_s.add({{"model_name", model_name}})),
      running(m.running.add({{"model_name", model_name}})),
      waiting(m.waiting.add({{"model_name", model_name}})),
      slo_attainment(m.slo_attainment.add({{"model_name", model_name}})),
      prompt_tokens(m.prompt_tokens.add({{"model_name", model_name}})),
      generation_tokens(m.generation_tokens.add({{"model_name", model_name}})) {}

}  // namespace aegaeon::actors
