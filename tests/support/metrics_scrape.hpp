// A scrape of a server's Prometheus /metrics, reduced to what tests and benchmarks read: sums of
// a family's samples over label sets, compared before and after a phase. The one reader of the
// exposition text outside core/metrics.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::testing {

/// Every sample of one exposition.
class MetricsSnapshot {
 public:
  /// Parses Prometheus text format 0.0.4 (comments skipped; timestamps ignored).
  static MetricsSnapshot parse(std::string_view text);
  /// Σ of the samples called `name` whose label block contains `label` (e.g.
  /// `prefetched="false"`; empty: every sample).
  [[nodiscard]] double sum(std::string_view name, std::string_view label = {}) const;

 private:
  struct Sample {
    std::string name;
    std::string labels;  // the text between the braces, as exposed
    double value = 0;
  };
  std::vector<Sample> samples_;
};

/// GET /metrics from the server on 127.0.0.1:`port`.
core::Result<MetricsSnapshot> scrape_metrics(std::uint16_t port);

}  // namespace aegaeon::testing
