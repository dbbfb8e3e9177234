// The statistics the load benchmarks report: nearest-rank percentiles and least-squares slopes.
// Header-only; every benchmark under bench/ may include it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace aegaeon::bench {

/// The nearest-rank `p` quantile (0..1) of `values`; 0 for none.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

/// Least-squares slope of y over x (growth per unit of x); 0 for fewer than two points.
inline double least_squares_slope(const std::vector<std::pair<double, double>>& points) {
  if (points.size() < 2) return 0;
  const double n = static_cast<double>(points.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double denominator = n * sxx - sx * sx;
  return denominator == 0 ? 0 : (n * sxy - sx * sy) / denominator;
}

}  // namespace aegaeon::bench
