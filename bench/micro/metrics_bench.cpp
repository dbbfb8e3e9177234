// Cost of updating core metrics on the hot path (one per generated token, per request), single
// threaded and contended by two threads on the same series, against two baselines measured in
// the same run: a relaxed atomic fetch_add (the floor for a shared counter) and a
// mutex-protected increment (what a locking registry would cost).
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
