// Cost of updating core metrics on the hot path (one per generated token, per request), single
// threaded and contended by two threads on the same series, against two baselines measured in
// the same run: a relaxed atomic fetch_add (the floor for a shared counter) and a
// mutex-protected increment (what a locking registry would cost).
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

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
core::Registry& registry() {
  static core::Registry instance;
  return instance;
}

void counter_increment(benchmark::State& state) {
  static core::Counter& counter = core::build_counter()
                                      .name("bench_tokens_total")
                                      .help("Tokens")
                                      .register_on(registry())
                                      .add({{"model_name", "m"}});
  for (auto _ : state) counter.increment();
}

void counter_increment_fractional(benchmark::State& state) {
  static core::Counter& counter = core::build_counter()
                                      .name("bench_busy_seconds_total")
                                      .help("Busy time")
                                      .register_on(registry())
                                      .add({{"model_name", "m"}});
  for (auto _ : state) counter.increment(0.001);  // the CAS path
}

void gauge_increment(benchmark::State& state) {
  static core::Gauge& gauge = core::build_gauge()
                                  .name("bench_in_flight")
                                  .help("In flight")
                                  .register_on(registry())
                                  .add({{"model_name", "m"}});
  for (auto _ : state) gauge.increment();
}

void histogram_observe(benchmark::State& state) {
  static core::Histogram& histogram = core::build_histogram()
                                          .name("bench_latency_seconds")
                                          .help("Latency")
                                          .buckets(core::exponential_buckets(0.001, 2, 14))
                                          .register_on(registry())
                                          .add({{"model_name", "m"}});
  // Values spread over every bucket, precomputed so the loop measures observe() only.
  std::array<double, 64> values{};
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.0005 * static_cast<double>(i * i);
  std::size_t i = 0;
  for (auto _ : state) histogram.observe(values[i++ & 63]);
}

// Looking a series up by labels on every update: what callers avoid by keeping the reference.
void family_add_lookup(benchmark::State& state) {
  static core::Family<core::Counter>& family =
      core::build_counter().name("bench_requests_total").help("Requests").register_on(registry());
  const core::Labels labels = {{"model_name", "qwen2.5-7b"}, {"code", "200"}};
  for (auto _ : state) family.add(labels).increment();
}

// The same updates through prometheus-cpp 1.0.1 (Debian's prometheus-cpp-dev), measured in the
// same run as the hand-written registry above, before it is replaced.
prometheus::Registry& prometheus_registry() {
  static prometheus::Registry instance;
  return instance;
}

void prometheus_counter_increment(benchmark::State& state) {
  static prometheus::Counter& counter = prometheus::BuildCounter()
                                            .Name("bench_tokens_total")
                                            .Help("Tokens")
                                            .Register(prometheus_registry())
                                            .Add({{"model_name", "m"}});
  for (auto _ : state) counter.Increment();
}

void prometheus_counter_increment_fractional(benchmark::State& state) {
  static prometheus::Counter& counter = prometheus::BuildCounter()
                                            .Name("bench_busy_seconds_total")
                                            .Help("Busy time")
                                            .Register(prometheus_registry())
                                            .Add({{"model_name", "m"}});
  for (auto _ : state) counter.Increment(0.001);
}

void prometheus_gauge_increment(benchmark::State& state) {
  static prometheus::Gauge& gauge = prometheus::BuildGauge()
                                        .Name("bench_in_flight")
                                        .Help("In flight")
                                        .Register(prometheus_registry())
                                        .Add({{"model_name", "m"}});
  for (auto _ : state) gauge.Increment();
}

void prometheus_histogram_observe(benchmark::State& state) {
  static prometheus::Histogram& histogram = prometheus::BuildHistogram()
                                                .Name("bench_latency_seconds")
                                                .Help("Latency")
                                                .Register(prometheus_registry())
                                                .Add({{"model_name", "m"}}, core::exponential_buckets(0.001, 2, 14));
  std::array<double, 64> values{};
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.0005 * static_cast<double>(i * i);
  std::size_t i = 0;
  for (auto _ : state) histogram.Observe(values[i++ & 63]);
}

void prometheus_family_add_lookup(benchmark::State& state) {
  static prometheus::Family<prometheus::Counter>& family =
      prometheus::BuildCounter().Name("bench_requests_total").Help("Requests").Register(prometheus_registry());
  const prometheus::Labels labels = {{"model_name", "qwen2.5-7b"}, {"code", "200"}};
  for (auto _ : state) family.Add(labels).Increment();
}

// A scrape of a serving process's registry: 8 models, each with 4 latency histograms (17
// buckets), 4 counters and 3 gauges, plus 16 devices' step histograms and counters.
constexpr int kScrapeModels = 8;
constexpr int kScrapeDevices = 16;

void scrape_hand_written(benchmark::State& state) {
  core::Registry r;
  for (int f = 0; f < 4; ++f) {
    auto& family = core::build_histogram().name("h" + std::to_string(f) + "_seconds").help("h")
                       .buckets(core::exponential_buckets(0.001, 2, 17)).register_on(r);
    for (int m = 0; m < kScrapeModels; ++m) family.add({{"model_name", "model-" + std::to_string(m)}}).observe(0.01 * m);
  }
  for (int f = 0; f < 4; ++f) {
    auto& family = core::build_counter().name("c" + std::to_string(f) + "_total").help("c").register_on(r);
    for (int m = 0; m < kScrapeModels; ++m) family.add({{"model_name", "model-" + std::to_string(m)}}).increment(m);
  }
  for (int f = 0; f < 3; ++f) {
    auto& family = core::build_gauge().name("g" + std::to_string(f)).help("g").register_on(r);
    for (int m = 0; m < kScrapeModels; ++m) family.add({{"model_name", "model-" + std::to_string(m)}}).set(m);
  }
  auto& steps = core::build_histogram().name("step_seconds").help("s")
                    .buckets(core::exponential_buckets(0.0001, 2, 18)).register_on(r);
  auto& cpu = core::build_counter().name("cpu_seconds_total").help("c").register_on(r);
  for (int d = 0; d < kScrapeDevices; ++d) {
    steps.add({{"device", "decode-" + std::to_string(d)}}).observe(0.01);
    cpu.add({{"device", "decode-" + std::to_string(d)}}).increment(1.5);
  }
  std::size_t bytes = 0;
  for (auto _ : state) bytes += r.serialize().size();
  state.counters["bytes"] = static_cast<double>(bytes) / static_cast<double>(state.iterations());
}

void scrape_prometheus_cpp(benchmark::State& state) {
  prometheus::Registry r;
  for (int f = 0; f < 4; ++f) {
    auto& family = prometheus::BuildHistogram().Name("h" + std::to_string(f) + "_seconds").Help("h").Register(r);
    for (int m = 0; m < kScrapeModels; ++m) {
      family.Add({{"model_name", "model-" + std::to_string(m)}}, core::exponential_buckets(0.001, 2, 17)).Observe(0.01 * m);
    }
  }
  for (int f = 0; f < 4; ++f) {
    auto& family = prometheus::BuildCounter().Name("c" + std::to_string(f) + "_total").Help("c").Register(r);
    for (int m = 0; m < kScrapeModels; ++m) family.Add({{"model_name", "model-" + std::to_string(m)}}).Increment(m);
  }
  for (int f = 0; f < 3; ++f) {
    auto& family = prometheus::BuildGauge().Name("g" + std::to_string(f)).Help("g").Register(r);
    for (int m = 0; m < kScrapeModels; ++m) family.Add({{"model_name", "model-" + std::to_string(m)}}).Set(m);
  }
  auto& steps = prometheus::BuildHistogram().Name("step_seconds").Help("s").Register(r);
  auto& cpu = prometheus::BuildCounter().Name("cpu_seconds_total").Help("c").Register(r);
  for (int d = 0; d < kScrapeDevices; ++d) {
    steps.Add({{"device", "decode-" + std::to_string(d)}}, core::exponential_buckets(0.0001, 2, 18)).Observe(0.01);
    cpu.Add({{"device", "decode-" + std::to_string(d)}}).Increment(1.5);
  }
  const prometheus::TextSerializer serializer;
  std::size_t bytes = 0;
  for (auto _ : state) bytes += serializer.Serialize(r.Collect()).size();
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
AEGAEON_METRICS_BENCH(prometheus_counter_increment, "prometheus_counter_increment");
AEGAEON_METRICS_BENCH(prometheus_counter_increment_fractional, "prometheus_counter_increment_fractional");
AEGAEON_METRICS_BENCH(prometheus_gauge_increment, "prometheus_gauge_increment");
AEGAEON_METRICS_BENCH(prometheus_histogram_observe, "prometheus_histogram_observe");
AEGAEON_METRICS_BENCH(prometheus_family_add_lookup, "prometheus_family_add_lookup");
// Scrapes: the hand-written exposition is the baseline prometheus-cpp's is divided by.
BENCHMARK(scrape_hand_written)->Name("scrape/baseline_hand_written");
BENCHMARK(scrape_prometheus_cpp)->Name("scrape/prometheus_cpp");

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
