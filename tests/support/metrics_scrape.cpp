#include "tests/support/metrics_scrape.hpp"

#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "tests/support/http_client.hpp"

namespace aegaeon::testing {

MetricsSnapshot MetricsSnapshot::parse(std::string_view text) {
  MetricsSnapshot snapshot;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    auto brace = line.find('{');
    auto space = line.find(' ');
    std::size_t value_at = 0;
    if (brace != std::string::npos && brace < space) {
      auto close = line.rfind('}');
      if (close == std::string::npos) continue;
      sample.name = line.substr(0, brace);
      sample.labels = line.substr(brace + 1, close - brace - 1);
      value_at = close + 1;
    } else {
      sample.name = line.substr(0, space);
      value_at = space;
    }
    if (value_at >= line.size()) continue;
    sample.value = std::strtod(line.c_str() + value_at, nullptr);
    snapshot.samples_.push_back(std::move(sample));
  }
  return snapshot;
}

double MetricsSnapshot::sum(std::string_view name, std::string_view label) const {
  double total = 0;
  for (const auto& s : samples_) {
    if (s.name == name && (label.empty() || s.labels.find(label) != std::string::npos)) total += s.value;
  }
  return total;
}

core::Result<MetricsSnapshot> scrape_metrics(std::uint16_t port) {
  try {
    auto response = http_request(port, "GET", "/metrics");
    if (response.status != 200) {
      return core::error(core::ErrorCode::kUnavailable, "GET /metrics answered " + std::to_string(response.status));
    }
    return MetricsSnapshot::parse(response.body);
  } catch (const std::runtime_error& e) {
    return core::error(core::ErrorCode::kUnavailable, std::string("GET /metrics: ") + e.what());
  }
}

}  // namespace aegaeon::testing
