// The Grafana dashboard (deploy/grafana/aegaeon-dashboard.json) and the alerting rules
// (deploy/k8s/monitoring/aegaeon-alerts.yaml) query only metrics that a real `aegaeon serve`
// exports: every metric name in their PromQL is looked up in live /metrics output after requests
// to two models (so per-model, switch and KV series exist).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <fstream>
#include <functional>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tests/integration/serve_process.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon {
namespace {

using json = nlohmann::json;

// The metric names a PromQL expression selects. Label matchers, range selectors, string literals
// and grouping clauses are cut out first; what remains is function and aggregation names
// (followed by "("), keywords, numbers and metric names.
std::set<std::string> metrics_in_promql(std::string expr) {
  for (const char* cut : {R"("(?:[^"\\]|\\.)*")", R"(\{[^}]*\})", R"(\[[^\]]*\])",
                          R"(\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))"}) {
    expr = std::regex_replace(expr, std::regex(cut), " ");
  }
  static const std::set<std::string> kKeywords = {"and", "or", "unless", "bool", "offset", "inf", "nan"};
  static const std::regex kIdentifier(R"([a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?)");
  std::set<std::string> names;
  for (std::sregex_iterator it(expr.begin(), expr.end(), kIdentifier), end; it != end; ++it) {
    if ((*it)[1].matched) continue;  // a function or aggregation call
    std::string name = it->str();
    // An exponent or suffix glued to a number (1e3) is not a name.
    if (it->position() > 0 && std::isdigit(static_cast<unsigned char>(expr[it->position() - 1]))) continue;
    if (!kKeywords.contains(name)) names.insert(name);
  }
  return names;
}

// Every panel query's metrics, panels inside rows included, plus the metrics the template
// variables draw their values from (label_values(metric, label)).
std::set<std::string> dashboard_metrics(const json& dashboard) {
  std::set<std::string> names;
  std::function<void(const json&)> visit_panels = [&](const json& panels) {
    for (const auto& panel : panels) {
      for (const auto& target : panel.value("targets", json::array())) {
        auto found = metrics_in_promql(target.at("expr").get<std::string>());
        EXPECT_FALSE(found.empty()) << "no metric in " << target.at("expr");
        names.insert(found.begin(), found.end());
      }
      visit_panels(panel.value("panels", json::array()));
    }
  };
  visit_panels(dashboard.at("panels"));
  static const std::regex kLabelValues(R"(label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,)");
  for (const auto& variable : dashboard.at("templating").at("list")) {
    if (variable.value("type", "") != "query") continue;
    std::smatch match;
    auto query = variable.at("query").at("query").get<std::string>();
    if (std::regex_search(query, match, kLabelValues)) names.insert(match[1]);
  }
  return names;
}

// The metrics of every alerting rule; each rule's expr is one line (the file says so).
std::set<std::string> alert_metrics(const std::string& rules_text) {
  static const std::regex kExpr(R"(\n\s*expr:\s*([^\n]+))");
  static const std::regex kAlert(R"(\n\s*- alert:)");
  std::set<std::string> names;
  int exprs = 0;
  for (std::sregex_iterator it(rules_text.begin(), rules_text.end(), kExpr), end; it != end; ++it, ++exprs) {
    auto found = metrics_in_promql((*it)[1]);
    names.insert(found.begin(), found.end());
  }
  auto alerts = std::distance(std::sregex_iterator(rules_text.begin(), rules_text.end(), kAlert), std::sregex_iterator());
  EXPECT_EQ(exprs, alerts) << "every alert needs a one-line expr";
  // `up` is written by Prometheus itself for every scrape target.
  names.erase("up");
  return names;
}

// The sample names of a Prometheus text exposition: histograms appear as their _bucket, _sum and
// _count series, exactly the names PromQL selects.
std::set<std::string> exported_samples(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    names.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

TEST(DashboardQueries, ExtractsMetricNamesFromPromql) {
  EXPECT_EQ(metrics_in_promql(R"(histogram_quantile(0.99, sum by (le, model_name) )"
                              R"((rate(a_seconds_bucket{model_name=~"$model"}[$__rate_interval]))))"),
            std::set<std::string>{"a_seconds_bucket"});
  EXPECT_EQ(metrics_in_promql(R"(sum(rate(x_sum[5m])) by (device) / on(device) sum(rate(x_count[5m])) > 1e3)"),
            (std::set<std::string>{"x_count", "x_sum"}));
  EXPECT_EQ(metrics_in_promql(R"(up{job="a{b}"} or absent(other_metric offset 5m))"),
            (std::set<std::string>{"other_metric", "up"}));
}

TEST(Dashboard, EveryQueriedMetricIsExportedByServe) {
  std::ifstream dashboard(AEGAEON_SOURCE_DIR "/deploy/grafana/aegaeon-dashboard.json");
  ASSERT_TRUE(dashboard) << "deploy/grafana/aegaeon-dashboard.json missing";
  auto queried = dashboard_metrics(json::parse(dashboard));
  std::ifstream rules(AEGAEON_SOURCE_DIR "/deploy/k8s/monitoring/aegaeon-alerts.yaml");
  ASSERT_TRUE(rules) << "deploy/k8s/monitoring/aegaeon-alerts.yaml missing";
  auto alerted = alert_metrics(std::string(std::istreambuf_iterator<char>(rules), {}));
  ASSERT_FALSE(queried.empty());
  ASSERT_FALSE(alerted.empty());
  queried.insert(alerted.begin(), alerted.end());

  testing::ServeProcess serve;
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  // Every demo model in turn on the one decode device, whose arena holds fewer of them: model
  // switches, per-model latencies, KV usage.
  auto models = json::parse(testing::http_request(serve.port(), "GET", "/v1/models").body);
  ASSERT_GE(models["data"].size(), 2u) << models;
  for (const auto& model : models["data"]) {
    auto reply = testing::http_request(
        serve.port(), "POST", "/v1/completions",
        json{{"model", model["id"]}, {"prompt", "Hello"}, {"max_tokens", 4}, {"temperature", 0}}.dump());
    ASSERT_EQ(reply.status, 200) << reply.body;
  }
  auto metrics = testing::http_request(serve.port(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  auto exported = exported_samples(metrics.body);
  for (const auto& name : queried) {
    EXPECT_TRUE(exported.contains(name)) << "the dashboard or an alert queries " << name
                                         << ", which /metrics does not export";
  }
}

}  // namespace
}  // namespace aegaeon
