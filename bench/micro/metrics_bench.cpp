// Cost of updating metrics (prometheus-cpp) on the hot path (one per generated token, per
// request), single threaded and contended by two threads on the same series, against two
// baselines measured in the same run: a relaxed atomic fetch_add (the floor for a shared
// counter) and a mutex-protected increment. And the cost of a /metrics scrape against copying
// its samples out of the registry.
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>

#include "core/metrics.hpp"
#include "ratio_reporter.hpp"

namespace aegaeon::bench {
namespace {

void baseline_atomic(benchmark::State& state) {
  static std::atomic<std::uint64_t> value{0};
  for (auto _ : state) value.fetch_add(1, std::memory_order_relaxed);
  benchmark::DoNotOptimize(value.load());
}

void baseline_mutex(benchmark::State& state) {
  static std::mutex mutex;
  static std::uint64_t value = 0;
  for (auto _ : state) {
    const std::lock_guard<std::mutex> lock(mutex);
    ++value;
    benchmark::ClobberMemory();
  }
}

// One registry shared by every benchmark thread, as in a server.
prometheus::Registry& registry() {
  static prometheus::Registry instance;
  return instance;
}

void counter_increment(benchmark::State& state) {
  static prometheus::Counter& counter = prometheus::BuildCounter()
                                            .Name("bench_tokens_total")
                                            .Help("Tokens")
                                            .Register(registry())
                                            .Add({{"model_name", "m"}});
  for (auto _ : state) counter.Increment();
}

void counter_increment_fractional(benchmark::State& state) {
  static prometheus::Counter& counter = prometheus::BuildCounter()
                                            .Name("bench_busy_seconds_total")
                                            .Help("Busy time")
                                            .Register(registry())
                                            .Add({{"model_name", "m"}});
  for (auto _ : state) counter.Increment(0.001);
}

void gauge_increment(benchmark::State& state) {
  static prometheus::Gauge& gauge = prometheus::BuildGauge()
                                        .Name("bench_in_flight")
                                        .Help("In flight")
                                        .Register(registry())
                                        .Add({{"model_name", "m"}});
  for (auto _ : state) gauge.Increment();
}

void histogram_observe(benchmark::State& state) {
  static prometheus::Histogram& histogram = prometheus::BuildHistogram()
                                                .Name("bench_latency_seconds")
                                                .Help("Latency")
                                                .Register(registry())
                                                .Add({{"model_name", "m"}}, core::exponential_buckets(0.001, 2, 14));
  std::array<double, 64> values{};
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.0005 * static_cast<double>(i * i);
  std::size_t i = 0;
  for (auto _ : state) histogram.Observe(values[i++ & 63]);
}

void family_add_lookup(benchmark::State& state) {
  static prometheus::Family<prometheus::Counter>& family =
      prometheus::BuildCounter().Name("bench_requests_total").Help("Requests").Register(registry());
  const prometheus::Labels labels = {{"model_name", "qwen2.5-7b"}, {"code", "200"}};
  for (auto _ : state) family.Add(labels).Increment();
}

// A scrape of a serving process's registry: 8 models, each with 4 latency histograms (17
// buckets), 4 counters and 3 gauges, plus 16 devices' step histograms and CPU counters (~54 KB).
const prometheus::Registry& serving_like_registry() {
  static const auto* const registry = [] {
    auto* r = new prometheus::Registry;
    auto model = [](int m) { return prometheus::Labels{{"model_name", "model-" + std::to_string(m)}}; };
    auto device = [](int d) { return prometheus::Labels{{"device", "decode-" + std::to_string(d)}}; };
    for (int f = 0; f < 4; ++f) {
      const core::HistogramFamily family(
          prometheus::BuildHistogram().Name("h" + std::to_string(f) + "_seconds").Help("h").Register(*r),
          core::exponential_buckets(0.001, 2, 17));
      for (int m = 0; m < 8; ++m) family.series(model(m)).Observe(0.01 * m);
    }
    for (int f = 0; f < 4; ++f) {
      auto& family = prometheus::BuildCounter().Name("c" + std::to_string(f) + "_total").Help("c").Register(*r);
      for (int m = 0; m < 8; ++m) family.Add(model(m)).Increment(m);
    }
    for (int f = 0; f < 3; ++f) {
      auto& family = prometheus::BuildGauge().Name("g" + std::to_string(f)).Help("g").Register(*r);
      for (int m = 0; m < 8; ++m) family.Add(model(m)).Set(m);
    }
    const core::HistogramFamily steps(prometheus::BuildHistogram().Name("step_seconds").Help("s").Register(*r),
                                      core::exponential_buckets(0.0001, 2, 18));
    auto& cpu = prometheus::BuildCounter().Name("cpu_seconds_total").Help("c").Register(*r);
    for (int d = 0; d < 16; ++d) {
      steps.series(device(d)).Observe(0.01);
      cpu.Add(device(d)).Increment(1.5);
    }
    return r;
  }();
  return *registry;
}

// Copying every sample out of the registry (under each family's lock): the part of a scrape
// that is not text.
void scrape_collect(benchmark::State& state) {
  const auto& registry = serving_like_registry();
  for (auto _ : state) benchmark::DoNotOptimize(registry.Collect());
}

void scrape_serialize(benchmark::State& state) {
  const auto& registry = serving_like_registry();
  std::size_t bytes = 0;
  for (auto _ : state) bytes += core::serialize_metrics(registry).size();
  state.counters["bytes"] = static_cast<double>(bytes) / static_cast<double>(state.iterations());
}

#define AEGAEON_METRICS_BENCH(function, name) \
  BENCHMARK(function)->Name("metrics/" name)->Threads(1)->Threads(2)

// Baselines first: the reporter divides later runs by them.
AEGAEON_METRICS_BENCH(baseline_atomic, "baseline_atomic");
AEGAEON_METRICS_BENCH(baseline_mutex, "baseline_mutex");
AEGAEON_METRICS_BENCH(counter_increment, "counter_increment");
AEGAEON_METRICS_BENCH(counter_increment_fractional, "counter_increment_fractional");
AEGAEON_METRICS_BENCH(gauge_increment, "gauge_increment");
AEGAEON_METRICS_BENCH(histogram_observe, "histogram_observe");
AEGAEON_METRICS_BENCH(family_add_lookup, "family_add_lookup");
BENCHMARK(scrape_collect)->Name("scrape/baseline_collect");
BENCHMARK(scrape_serialize)->Name("scrape/serialize");

}  // namespace
}  // namespace aegaeon::bench

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--benchmark_format=json") == 0) json = true;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::unique_ptr<benchmark::BenchmarkReporter> inner;
  if (json) {
    inner = std::make_unique<benchmark::JSONReporter>();
  } else {
    inner = std::make_unique<benchmark::ConsoleReporter>();
  }
  aegaeon::bench::RatioReporter reporter(std::move(inner));
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
