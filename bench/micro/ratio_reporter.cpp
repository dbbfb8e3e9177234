#include "ratio_reporter.hpp"

#include <string_view>

namespace aegaeon::bench {
namespace {

constexpr std::string_view kBaselinePrefix = "baseline_";

// "metrics/baseline_atomic" -> {"metrics", "baseline_atomic"}; no slash: suite "".
std::pair<std::string, std::string> split_name(const std::string& function_name) {
  const std::size_t slash = function_name.find('/');
  if (slash == std::string::npos) return {"", function_name};
  return {function_name.substr(0, slash), function_name.substr(slash + 1)};
}

}  // namespace

void RatioReporter::ReportRuns(const std::vector<Run>& reports) {
  std::vector<Run> annotated = reports;
  for (Run& run : annotated) {
    const bool ratio_makes_sense =  // coefficient-of-variation aggregates are not times
        run.run_type == Run::RT_Iteration || run.aggregate_unit == benchmark::kTime;
    if (run.error_occurred || !ratio_makes_sense) continue;
    const auto [suite, name] = split_name(run.run_name.function_name);
    // CPU time, not wall time: on a shared machine a descheduled thread inflates wall time at
    // random, which would make the baseline and the subject incomparable.
    const double time = run.GetAdjustedCPUTime();
    if (name.rfind(kBaselinePrefix, 0) == 0) {
      baselines_[{suite, name.substr(kBaselinePrefix.size()), run.threads, run.aggregate_name}] =
          time;
      continue;
    }
    for (const auto& [key, baseline_time] : baselines_) {
      const auto& [baseline_suite, label, threads, aggregate] = key;
      if (baseline_suite != suite || threads != run.threads || aggregate != run.aggregate_name ||
          baseline_time <= 0) {
        continue;
      }
      run.counters["vs_" + label] = benchmark::Counter(time / baseline_time);
    }
  }
  inner_->ReportRuns(annotated);
}

}  // namespace aegaeon::bench
