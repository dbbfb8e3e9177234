// What core/metrics adds around prometheus-cpp: bucket layouts, histogram families that keep
// their bounds, and the /metrics body. (The registry, families and the text format itself are
// prometheus-cpp's; promtool checks the serving families in tests/actors/serving_metrics_test.)
#include "core/metrics.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace aegaeon::core {
namespace {

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

TEST(Metrics, ExponentialBuckets) {
  EXPECT_EQ(exponential_buckets(0.001, 2, 4), (std::vector<double>{0.001, 0.002, 0.004, 0.008}));
  EXPECT_EQ(exponential_buckets(1, 10, 0), std::vector<double>{});
}

TEST(Metrics, HistogramFamilySeriesUseTheFamilyBounds) {
  prometheus::Registry registry;
  const HistogramFamily latency(
      prometheus::BuildHistogram().Name("test_latency_seconds").Help("Latency").Register(registry),
      exponential_buckets(0.5, 2, 3));
  prometheus::Histogram& fast = latency.series({{"model_name", "a"}});
  EXPECT_EQ(&fast, &latency.series({{"model_name", "a"}})) << "one series per label set";
  fast.Observe(0.7);
  fast.Observe(3.0);
  latency.series({{"model_name", "b"}}).Observe(0.1);

  const std::string text = serialize_metrics(registry);
  EXPECT_NE(text.find("# TYPE test_latency_seconds histogram"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(test_latency_seconds_bucket{model_name="a",le="0.5"} 0)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(test_latency_seconds_bucket{model_name="a",le="1"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(test_latency_seconds_bucket{model_name="a",le="2"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(test_latency_seconds_bucket{model_name="a",le="+Inf"} 2)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(test_latency_seconds_count{model_name="b"} 1)"), std::string::npos) << text;
  EXPECT_EQ(count_of(text, "_bucket{model_name=\"b\""), 4U) << "three bounds and +Inf:\n" << text;
}

TEST(Metrics, SerializeCountersAndGauges) {
  prometheus::Registry registry;
  auto& tokens = prometheus::BuildCounter().Name("test_tokens_total").Help("Tokens").Register(registry);
  tokens.Add({{"model_name", "a"}}).Increment(3);
  prometheus::BuildGauge().Name("test_waiting").Help("Waiting").Register(registry).Add({}).Set(2.5);
  const std::string text = serialize_metrics(registry);
  EXPECT_NE(text.find("# HELP test_tokens_total Tokens\n# TYPE test_tokens_total counter\n"
                      "test_tokens_total{model_name=\"a\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("test_waiting 2.5\n"), std::string::npos) << text;
}

// The hot paths update series from several threads while a scrape reads them: totals stay exact.
TEST(Metrics, ExactTotalsUnderConcurrentUpdatesAndScrapes) {
  prometheus::Registry registry;
  auto& counter = prometheus::BuildCounter().Name("test_updates_total").Help("Updates").Register(registry).Add({});
  const HistogramFamily latency(prometheus::BuildHistogram().Name("test_step_seconds").Help("Steps").Register(registry),
                                exponential_buckets(0.001, 2, 8));
  auto& steps = latency.series({});
  constexpr int kThreads = 4;
  constexpr int kUpdates = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kUpdates; ++i) {
        counter.Increment();
        steps.Observe(0.002 * (i % 7));
      }
    });
  }
  for (int scrape = 0; scrape < 20; ++scrape) EXPECT_FALSE(serialize_metrics(registry).empty());
  for (auto& thread : threads) thread.join();
  const std::string text = serialize_metrics(registry);
  const std::string total = std::to_string(kThreads * kUpdates);
  EXPECT_NE(text.find("test_updates_total " + total + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("test_step_seconds_count " + total + "\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace aegaeon::core
