// The serving families as a scrape shows them: every family registered, series looked up once,
// and an exposition promtool accepts even when a model's name is not valid UTF-8.
#include "actors/serving_metrics.hpp"

#include <gtest/gtest.h>

#include <string>

#include "core/metrics.hpp"
#include "tests/support/child_process.hpp"

namespace aegaeon::actors {
namespace {

TEST(ServingMetrics, SeriesAreLookedUpOnceAndShowInTheScrape) {
  prometheus::Registry registry;
  ServingMetrics metrics(registry);
  ModelSeries model(metrics, "qwen");
  DeviceSeries device(metrics, "decode-0");
  EXPECT_EQ(&model.generation_tokens, &metrics.generation_tokens.Add(model_labels("qwen")));
  EXPECT_EQ(&device.switch_s, &metrics.switch_s.series({{"device", "decode-0"}}));
  model.generation_tokens.Increment(5);
  model.ttft_s.Observe(0.25);
  device.switches_prefetched.Increment();
  device.kv_usage.Set(0.5);

  const std::string text = core::serialize_metrics(registry);
  EXPECT_NE(text.find("aegaeon_generation_tokens_total{model_name=\"qwen\"} 5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("aegaeon_time_to_first_token_seconds_count{model_name=\"qwen\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("aegaeon_model_switches_total{device=\"decode-0\",prefetched=\"true\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("aegaeon_kv_cache_usage_perc{device=\"decode-0\"} 0.5\n"), std::string::npos) << text;
}

TEST(ServingMetrics, ExpositionPassesPromtoolWithAnInvalidUtf8ModelName) {
  const auto promtool = testing::find_on_path("promtool");
  if (!promtool) GTEST_SKIP() << "promtool not installed (Debian package 'prometheus')";
  prometheus::Registry registry;
  ServingMetrics metrics(registry);
  ModelSeries good(metrics, "llama-3.1-8b");
  ModelSeries bad(metrics, std::string("folder-\xff\xfe", 9));
  DeviceSeries device(metrics, "decode-0");
  good.inter_token_s.Observe(0.02);
  bad.prompt_tokens.Increment(12);
  device.engine_cpu_s.Increment(0.75);

  const std::string text = core::serialize_metrics(registry);
  auto [code, output] = testing::run_command({*promtool, "check", "metrics"}, text);
  EXPECT_EQ(code, 0) << output << "\n--- metrics ---\n" << text;
  EXPECT_EQ(output, "") << "promtool's linter should have nothing to say:\n" << text;
}

}  // namespace
}  // namespace aegaeon::actors
