// Metrics are prometheus-cpp's (its core library: Registry, Family, Counter, Gauge, Histogram and
// the Build* builders, used directly). This header adds the little aegaeon needs around them:
// the /metrics response body, bucket layouts, and histogram families that keep their buckets.
//
// Update a series through the reference Family::Add returned once (a lookup by labels hashes
// the label map under the family's lock, which no token should pay for); references stay valid
// as long as the Registry.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aegaeon::core {

/// HTTP Content-Type of serialize_metrics() output.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

/// Every family in `registry` in the Prometheus text format 0.0.4 (prometheus-cpp's
/// TextSerializer), the body of a /metrics response.
[[nodiscard]] std::string serialize_metrics(const prometheus::Registry& registry);

/// Bucket bounds start, start*factor, ... (count of them); e.g. latencies 1 ms .. 65 s.
[[nodiscard]] std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

/// A histogram family with the bucket bounds all of its series share. prometheus-cpp takes the
/// bounds with each new series, so without this every caller of Add would repeat them.
class HistogramFamily {
 public:
  HistogramFamily(prometheus::Family<prometheus::Histogram>& family, std::vector<double> bounds)
      : family_(&family), bounds_(std::move(bounds)) {}

  /// The series for `labels`, created on first use with the family's bounds.
  prometheus::Histogram& series(const prometheus::Labels& labels) const { return family_->Add(labels, bounds_); }

 private:
  prometheus::Family<prometheus::Histogram>* family_;
  prometheus::Histogram::BucketBoundaries bounds_;
};

}  // namespace aegaeon::core
