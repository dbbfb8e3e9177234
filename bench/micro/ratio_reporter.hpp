// A Google Benchmark reporter that adds, to every run, its time divided by the time of each
// baseline of the same suite and thread count measured earlier in the same process, so results
// read as "x times a plain atomic" instead of bare nanoseconds that depend on the machine.
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace aegaeon::bench {

/// Wraps the reporter that prints (console or JSON). Naming convention: a benchmark is
/// "<suite>/<name>"; one whose name starts with "baseline_" is a baseline, and every later run
/// of the suite gets a counter "vs_<rest of the baseline name>" = its CPU time / the
/// baseline's CPU time at the same thread count (and the same aggregate, with repetitions).
class RatioReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit RatioReporter(std::unique_ptr<benchmark::BenchmarkReporter> inner)
      : inner_(std::move(inner)) {}

  bool ReportContext(const Context& context) override { return inner_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& reports) override;
  void Finalize() override { inner_->Finalize(); }

 private:
  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
  // (suite, baseline label, threads, aggregate name) -> CPU time per iteration
  std::map<std::tuple<std::string, std::string, std::int64_t, std::string>, double> baselines_;
};

}  // namespace aegaeon::bench
