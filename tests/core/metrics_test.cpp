#include "core/metrics.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <vector>

namespace aegaeon::core {
namespace {

TEST(MetricsNames, MetricNameValidation) {
  EXPECT_TRUE(is_valid_metric_name("aegaeon:http_requests_total"));
  EXPECT_TRUE(is_valid_metric_name("_x"));
  EXPECT_TRUE(is_valid_metric_name(":x9"));
  EXPECT_FALSE(is_valid_metric_name(""));
  EXPECT_FALSE(is_valid_metric_name("9x"));
  EXPECT_FALSE(is_valid_metric_name("a-b"));
  EXPECT_FALSE(is_valid_metric_name("a b"));
  EXPECT_FALSE(is_valid_metric_name("caf\xc3\xa9"));
}

TEST(MetricsNames, LabelNameValidation) {
  EXPECT_TRUE(is_valid_label_name("model_name"));
  EXPECT_TRUE(is_valid_label_name("_x"));
  EXPECT_TRUE(is_valid_label_name("A9"));
  EXPECT_FALSE(is_valid_label_name(""));
  EXPECT_FALSE(is_valid_label_name("a:b"));
  EXPECT_FALSE(is_valid_label_name("__name"));
  EXPECT_FALSE(is_valid_label_name("9a"));
  EXPECT_FALSE(is_valid_label_name("a-b"));
}

TEST(MetricsFormat, Values) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(-0.0), "0");
  EXPECT_EQ(format_metric_value(42), "42");
  EXPECT_EQ(format_metric_value(-7), "-7");
  EXPECT_EQ(format_metric_value(123456789012345.0), "123456789012345");
  EXPECT_EQ(format_metric_value(0.1), "0.1");
  EXPECT_EQ(format_metric_value(2.5), "2.5");
  EXPECT_EQ(format_metric_value(1e20), "1e+20");
  EXPECT_EQ(format_metric_value(1e-9), "1e-09");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  // Round trip: the shortest form parses back to the same double.
  const double third = 1.0 / 3.0;
  EXPECT_EQ(std::strtod(format_metric_value(third).c_str(), nullptr), third);
}

TEST(MetricsExposition, CounterExactText) {
  Registry registry;
  auto& requests = build_counter()
                       .name("aegaeon:http_requests_total")
                       .help("HTTP requests by path and status")
                       .register_on(registry);
  requests.add({{"path", "/health"}, {"code", "200"}}).increment();
  requests.add({{"path", "/health"}, {"code", "200"}}).increment(2);
  requests.add({{"path", "/v1/completions"}, {"code", "429"}}).increment(0.5);
  EXPECT_EQ(registry.serialize(),
            "# HELP aegaeon:http_requests_total HTTP requests by path and status\n"
            "# TYPE aegaeon:http_requests_total counter\n"
            "aegaeon:http_requests_total{code=\"200\",path=\"/health\"} 3\n"
            "aegaeon:http_requests_total{code=\"429\",path=\"/v1/completions\"} 0.5\n");
}

TEST(MetricsExposition, CounterGetsTotalSuffix) {
  Registry registry;
  auto& tokens = build_counter().name("tokens").help("Tokens").register_on(registry);
  EXPECT_EQ(tokens.name(), "tokens_total");
  tokens.add({}).increment(5);
  EXPECT_EQ(registry.serialize(),
            "# HELP tokens_total Tokens\n# TYPE tokens_total counter\ntokens_total 5\n");
  // Asking again by either spelling finds the same family.
  EXPECT_EQ(&build_counter().name("tokens").help("x").register_on(registry), &tokens);
  EXPECT_EQ(&build_counter().name("tokens_total").help("x").register_on(registry), &tokens);
}

TEST(MetricsExposition, CounterIgnoresNegativeAndNaN) {
  Counter counter;
  counter.increment(3);
  counter.increment(-1);
  counter.increment(std::nan(""));
  counter.increment(0.25);
  EXPECT_DOUBLE_EQ(counter.value(), 3.25);
}

TEST(MetricsExposition, GaugeExactText) {
  Registry registry;
  auto& queue = build_gauge()
                    .name("aegaeon:queue_length")
                    .help("Requests waiting")
                    .labels({{"instance", "prefill-0"}})
                    .register_on(registry);
  Gauge& gauge = queue.add({{"model_name", "qwen"}});
  gauge.set(10);
  gauge.increment();
  gauge.decrement(3.5);
  EXPECT_DOUBLE_EQ(gauge.value(), 7.5);
  queue.add({{"model_name", "llama"}}).set(-std::numeric_limits<double>::infinity());
  EXPECT_EQ(registry.serialize(),
            "# HELP aegaeon:queue_length Requests waiting\n"
            "# TYPE aegaeon:queue_length gauge\n"
            "aegaeon:queue_length{instance=\"prefill-0\",model_name=\"llama\"} -Inf\n"
            "aegaeon:queue_length{instance=\"prefill-0\",model_name=\"qwen\"} 7.5\n");
}

TEST(MetricsExposition, HistogramExactText) {
  Registry registry;
  auto& ttft = build_histogram()
                   .name("aegaeon:time_to_first_token_seconds")
                   .help("TTFT")
                   .buckets({0.01, 0.1, 1})
                   .register_on(registry);
  Histogram& h = ttft.add({{"model_name", "m"}});
  for (const double v : {0.0078125, 0.0078125, 0.0625, 0.5, 4.0}) h.observe(v);  // exact sum
  EXPECT_EQ(registry.serialize(),
            "# HELP aegaeon:time_to_first_token_seconds TTFT\n"
            "# TYPE aegaeon:time_to_first_token_seconds histogram\n"
            "aegaeon:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.01\"} 2\n"
            "aegaeon:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.1\"} 3\n"
            "aegaeon:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"1\"} 4\n"
            "aegaeon:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 5\n"
            "aegaeon:time_to_first_token_seconds_sum{model_name=\"m\"} 4.578125\n"
            "aegaeon:time_to_first_token_seconds_count{model_name=\"m\"} 5\n");
}

TEST(MetricsExposition, HistogramWithoutLabelsAndExplicitInf) {
  Registry registry;
  auto& family = build_histogram()
                     .name("sizes")
                     .help("Sizes")
                     .buckets({1, 2, std::numeric_limits<double>::infinity()})
                     .register_on(registry);
  EXPECT_EQ(family.bounds(), (std::vector<double>{1, 2}));
  family.add({}).observe(2);
  family.add({}).observe(std::nan(""));  // counted in +Inf only; sum becomes NaN
  EXPECT_EQ(registry.serialize(),
            "# HELP sizes Sizes\n# TYPE sizes histogram\n"
            "sizes_bucket{le=\"1\"} 0\n"
            "sizes_bucket{le=\"2\"} 1\n"
            "sizes_bucket{le=\"+Inf\"} 2\n"
            "sizes_sum NaN\n"
            "sizes_count 2\n");
}

TEST(MetricsExposition, HistogramBucketEdges) {
  Histogram h({1, 2, 3});
  for (const double v : {-5.0, 1.0, 1.0000001, 2.0, 3.0, 3.5}) h.observe(v);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.counts, (std::vector<std::uint64_t>{2, 2, 1, 1}));
  EXPECT_EQ(s.count, 6U);
  EXPECT_NEAR(s.sum, 5.5000001, 1e-9);
}

TEST(MetricsExposition, DefaultAndInfOnlyBuckets) {
  Registry registry;
  EXPECT_EQ(build_histogram().name("d").help("D").register_on(registry).bounds(),
            default_buckets());
  auto& inf_only = build_histogram()
                       .name("i")
                       .help("I")
                       .buckets({std::numeric_limits<double>::infinity()})
                       .register_on(registry);
  EXPECT_TRUE(inf_only.bounds().empty());
  inf_only.add({}).observe(3);
  EXPECT_NE(registry.serialize().find(
                "# TYPE i histogram\ni_bucket{le=\"+Inf\"} 1\ni_sum 3\ni_count 1\n"),
            std::string::npos)
      << registry.serialize();
}

TEST(MetricsExposition, BucketHelpers) {
  EXPECT_EQ(exponential_buckets(0.001, 10, 4), (std::vector<double>{0.001, 0.01, 0.1, 1}));
  EXPECT_EQ(linear_buckets(1, 2, 3), (std::vector<double>{1, 3, 5}));
}

TEST(MetricsExposition, FamiliesSortedAndEmptyFamilyHasHeaderOnly) {
  Registry registry;
  (void)build_gauge().name("zeta").help("Z").register_on(registry);
  build_gauge().name("alpha").help("A").register_on(registry).add({}).set(1);
  EXPECT_EQ(registry.serialize(),
            "# HELP alpha A\n# TYPE alpha gauge\nalpha 1\n"
            "# HELP zeta Z\n# TYPE zeta gauge\n");
}

TEST(MetricsEscaping, LabelValuesAndHelp) {
  Registry registry;
  auto& family = build_gauge()
                     .name("escaped")
                     .help("Back\\slash and\nnewline and \"quotes\"")
                     .register_on(registry);
  family.add({{"v", "a\\b\"c\nd"}}).set(1);
  EXPECT_EQ(registry.serialize(),
            "# HELP escaped Back\\\\slash and\\nnewline and \"quotes\"\n"
            "# TYPE escaped gauge\n"
            "escaped{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(MetricsEscaping, InvalidUtf8LabelValueIsReplaced) {
  Registry registry;
  auto& family = build_gauge().name("g").help("G").register_on(registry);
  Gauge& gauge = family.add({{"model_name", "bad\xff"}});
  gauge.set(1);
  EXPECT_EQ(&family.add({{"model_name", "bad\xff"}}), &gauge);  // same series when asked again
  EXPECT_EQ(&family.add({{"model_name", "bad\xEF\xBF\xBD"}}), &gauge);
  EXPECT_EQ(registry.serialize(),
            "# HELP g G\n# TYPE g gauge\ng{model_name=\"bad\xEF\xBF\xBD\"} 1\n");
}

TEST(MetricsRegistry, SameLabelsSameObjectAndStableAddresses) {
  Registry registry;
  auto& family = build_counter().name("c_total").help("C").register_on(registry);
  Counter& first = family.add({{"a", "1"}});
  for (int i = 0; i < 1000; ++i) (void)family.add({{"a", std::to_string(i + 2)}});
  EXPECT_EQ(&family.add({{"a", "1"}}), &first);
  EXPECT_EQ(family.size(), 1001U);
}

TEST(MetricsRegistry, DuplicateFamilySameTypeReturnsExisting) {
  Registry registry;
  auto& a = build_histogram().name("h").help("H").buckets({1, 2}).register_on(registry);
  auto& b = build_histogram().name("h").help("other help").buckets({1, 2}).register_on(registry);
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(b.help(), "H");
}

TEST(MetricsRegistry, Errors) {
  Registry registry;
  (void)build_counter().name("requests_total").help("R").register_on(registry);
  (void)build_histogram().name("latency_seconds").help("L").buckets({1}).register_on(registry);

  const auto expect_error = [](const auto& result, ErrorCode code, const std::string& text) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, code);
    EXPECT_NE(result.error().message.find(text), std::string::npos) << result.error().message;
  };
  expect_error(build_gauge().name("bad name").help("x").try_register_on(registry),
               ErrorCode::kInvalidArgument, "metric 'bad name': invalid metric name");
  expect_error(build_gauge().name("").help("x").try_register_on(registry),
               ErrorCode::kInvalidArgument, "invalid metric name");
  expect_error(build_gauge().name("no_help").try_register_on(registry), ErrorCode::kInvalidArgument,
               "metric 'no_help': help text is empty");
  expect_error(build_gauge().name("requests_total").help("x").try_register_on(registry),
               ErrorCode::kAlreadyExists,
               "metric 'requests_total' is already registered as a counter, not a gauge");
  expect_error(
      build_counter().name("requests").help("x").labels({{"a", "b"}}).try_register_on(registry),
      ErrorCode::kAlreadyExists, "already registered with constant labels {}");
  expect_error(
      build_histogram().name("latency_seconds").help("L").buckets({2}).try_register_on(registry),
      ErrorCode::kAlreadyExists, "other bucket bounds");
  expect_error(build_gauge().name("latency_seconds_count").help("x").try_register_on(registry),
               ErrorCode::kAlreadyExists,
               "series name 'latency_seconds_count' is already exposed by the histogram "
               "'latency_seconds'");
  expect_error(build_histogram().name("h2").help("x").buckets({1, 1}).try_register_on(registry),
               ErrorCode::kInvalidArgument, "strictly increasing, got 1 at index 1");
  expect_error(
      build_histogram().name("h3").help("x").buckets({std::nan("")}).try_register_on(registry),
      ErrorCode::kInvalidArgument, "got NaN at index 0");
  expect_error(build_gauge().name("g").help("x").labels({{"__x", "1"}}).try_register_on(registry),
               ErrorCode::kInvalidArgument, "constant label '__x'");
  expect_error(
      build_histogram().name("h4").help("x").labels({{"le", "1"}}).try_register_on(registry),
      ErrorCode::kInvalidArgument, "constant label 'le'");

  auto& gauges =
      build_gauge().name("gauges").help("G").labels({{"node", "n0"}}).register_on(registry);
  expect_error(gauges.try_add({{"a:b", "1"}}), ErrorCode::kInvalidArgument,
               "metric 'gauges': label 'a:b': invalid label name");
  expect_error(gauges.try_add({{"__reserved", "1"}}), ErrorCode::kInvalidArgument,
               "label '__reserved': invalid label name");
  expect_error(gauges.try_add({{"node", "n1"}}), ErrorCode::kInvalidArgument,
               "label 'node': already a constant label");
  auto& histograms = build_histogram().name("hist").help("H").register_on(registry);
  expect_error(histograms.try_add({{"le", "1"}}), ErrorCode::kInvalidArgument, "'le' is reserved");
  EXPECT_EQ(gauges.size(), 0U);
}

TEST(MetricsRegistryDeathTest, RegisterOnAbortsWithMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry registry;
  EXPECT_DEATH((void)build_gauge().name("1bad").help("x").register_on(registry),
               "metric '1bad': invalid metric name");
}

TEST(MetricsRegistry, ScrapeHookSetsGauge) {
  Registry registry;
  Gauge& resident = build_gauge().name("resident").help("R").register_on(registry).add({});
  int scrapes = 0;
  registry.on_scrape([&] { resident.set(++scrapes * 10); });
  EXPECT_NE(registry.serialize().find("resident 10\n"), std::string::npos);
  EXPECT_NE(registry.serialize().find("resident 20\n"), std::string::npos);
}

TEST(MetricsConcurrency, ExactTotalsUnderContention) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  Registry registry;
  Counter& counter = build_counter().name("hits").help("H").register_on(registry).add({});
  Counter& fractional = build_counter().name("frac").help("F").register_on(registry).add({});
  Gauge& gauge = build_gauge().name("level").help("L").register_on(registry).add({});
  Histogram& histogram =
      build_histogram().name("obs").help("O").buckets({1, 2}).register_on(registry).add({});
  auto& family = build_counter().name("per_thread").help("P").register_on(registry);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.increment();
        fractional.increment(0.5);  // exact in binary, so the total is exact too
        gauge.increment(2);
        gauge.decrement(1);
        histogram.observe(static_cast<double>(i % 3));  // 0, 1, 2 → buckets 1, 1, 2
        family.add({{"t", std::to_string(t % 2)}}).increment();
      }
    });
  }
  // Scrape while writers run: must not crash or tear a line.
  for (int i = 0; i < 20; ++i) {
    const std::string text = registry.serialize();
    EXPECT_EQ(text.back(), '\n');
  }
  for (auto& thread : threads) thread.join();

  const double total = static_cast<double>(kThreads) * kPerThread;
  EXPECT_EQ(counter.value(), total);
  EXPECT_EQ(fractional.value(), total * 0.5);
  EXPECT_EQ(gauge.value(), total);
  const Histogram::Snapshot s = histogram.snapshot();
  EXPECT_EQ(s.count, static_cast<std::uint64_t>(total));
  std::uint64_t in_second = 0;
  for (int i = 0; i < kPerThread; ++i) in_second += (i % 3 == 2) ? 1 : 0;
  EXPECT_EQ(s.counts[1], in_second * kThreads);
  EXPECT_EQ(s.counts[0], static_cast<std::uint64_t>(total) - in_second * kThreads);
  EXPECT_EQ(family.size(), 2U);
  EXPECT_EQ(family.add({{"t", "0"}}).value() + family.add({{"t", "1"}}).value(), total);
}

// Output of `promtool check metrics` on `text` and its exit status (0 clean, 3 lint problems
// only, 1 a parse error); promtool comes from the Debian package 'prometheus'.
struct PromtoolRun {
  int exit_code = -1;
  std::string output;
};
PromtoolRun run_promtool(const std::string& text, const std::string& tag) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("aegaeon_promtool_" + tag + "_" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream file(path);
    file << text;
  }
  PromtoolRun run;
  const std::string command = "promtool check metrics < " + path.string() + " 2>&1";
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) run.output += buffer;
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::filesystem::remove(path);
  return run;
}

bool have_promtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

// Counters, gauges and histograms with labels, escaping, NaN and constant labels.
void fill_registry(Registry& registry, const std::string& prefix) {
  auto& requests = build_counter()
                       .name(prefix + "http_requests_total")
                       .help("HTTP requests by path and status")
                       .register_on(registry);
  requests.add({{"path", "/health"}, {"code", "200"}}).increment(7);
  requests.add({{"path", "/v1/chat/completions"}, {"code", "400"}}).increment();
  auto& resident = build_gauge()
                       .name(prefix + "resident_models")
                       .help("Models resident on a device, \"quoted\" \\ and\nsplit")
                       .labels({{"node", "n0"}})
                       .register_on(registry);
  resident.add({{"device", "cpu:0"}}).set(3);
  resident.add({{"device", "weird \"v\\al\nue\""}}).set(std::nan(""));
  auto& ttft = build_histogram()
                   .name(prefix + "time_to_first_token_seconds")
                   .help("Time to first token")
                   .buckets(exponential_buckets(0.001, 4, 8))
                   .register_on(registry);
  for (const char* model : {"qwen2.5-7b", "llama-2-13b"}) {
    Histogram& h = ttft.add({{"model_name", model}});
    for (int i = 0; i < 50; ++i) h.observe(0.0007 * i * i);
  }
  (void)build_histogram()
      .name(prefix + "unused_seconds")
      .help("No samples yet")
      .register_on(registry);
  build_gauge()
      .name(prefix + "kv_cache_usage_ratio")
      .help("Share of KV blocks in use")
      .register_on(registry)
      .add({})
      .set(0.125);
}

TEST(MetricsPromtool, AcceptsExposition) {
  if (!have_promtool()) GTEST_SKIP() << "promtool is not on PATH (Debian package 'prometheus')";
  Registry registry;
  fill_registry(registry, "aegaeon_");
  const std::string text = registry.serialize();
  const PromtoolRun run = run_promtool(text, "clean");
  EXPECT_EQ(run.exit_code, 0) << "promtool output:\n" << run.output << "\nexposition:\n" << text;
  EXPECT_EQ(run.output, "") << text;
}

// vLLM-style names ("vllm:time_to_first_token_seconds") are valid and parse, but promtool's
// linter flags the colon (reserved for recording rules); that must be the only complaint.
TEST(MetricsPromtool, ColonNamesParseAndOnlyLintTheColon) {
  if (!have_promtool()) GTEST_SKIP() << "promtool is not on PATH (Debian package 'prometheus')";
  Registry registry;
  fill_registry(registry, "aegaeon:");
  const std::string text = registry.serialize();
  const PromtoolRun run = run_promtool(text, "colon");
  EXPECT_EQ(run.exit_code, 3) << run.output;
  std::size_t lines = 0;
  for (std::size_t start = 0; start < run.output.size();) {
    const std::size_t end = run.output.find('\n', start);
    const std::string line = run.output.substr(start, end - start);
    EXPECT_TRUE(line.ends_with("metric names should not contain ':'")) << line;
    ++lines;
    start = end == std::string::npos ? run.output.size() : end + 1;
  }
  EXPECT_EQ(lines, 4U) << run.output;  // the family without samples is not linted
}

}  // namespace
}  // namespace aegaeon::core
