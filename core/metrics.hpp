// Metrics registry with Prometheus text exposition (format 0.0.4), shaped like prometheus-cpp:
// a Registry owns Families; a Family owns one metric per label set. Updating a metric is a
// lock-free atomic operation; only creating a label set (Family::add) and scraping take a lock.
// Metric objects never move: references returned by add() stay valid as long as the Registry.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::core {

/// Label name -> value. Ordered, so a label set has one canonical form and one exposition order.
using Labels = std::map<std::string, std::string>;

/// HTTP Content-Type of Registry::serialize() output.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus metric types this registry exposes.
enum class MetricType { kCounter, kGauge, kHistogram };

/// Lower-case Prometheus name of a metric type ("counter", "gauge", "histogram").
std::string_view to_string(MetricType type);

/// True when `name` is a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool is_valid_metric_name(std::string_view name);

/// True when `name` is a valid user label name: [a-zA-Z_][a-zA-Z0-9_]* and not starting "__".
bool is_valid_label_name(std::string_view name);

/// A monotonically increasing count (requests served, tokens generated, bytes copied).
/// Whole-number increments use one atomic fetch_add; fractional ones a CAS loop on a double.
class Counter {
 public:
  static constexpr MetricType kType = MetricType::kCounter;

  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  /// Adds one.
  void increment() { whole_.fetch_add(1, std::memory_order_relaxed); }
  /// Adds `amount`; negative and NaN amounts are ignored because a counter never decreases.
  void increment(double amount);
  /// The current total.
  [[nodiscard]] double value() const;

 private:
  std::atomic<std::uint64_t> whole_{0};  // the hot path: integer increments
  std::atomic<double> fraction_{0.0};    // everything that is not a small whole number
};

/// A value that goes up and down (queue length, resident models, KV usage ratio).
class Gauge {
 public:
  static constexpr MetricType kType = MetricType::kGauge;

  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  /// Replaces the value.
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  /// Adds `amount` (may be negative).
  void increment(double amount = 1.0);
  /// Subtracts `amount`.
  void decrement(double amount = 1.0) { increment(-amount); }
  /// The current value.
  [[nodiscard]] double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

/// A distribution of observations (latencies, lengths) in fixed cumulative buckets.
class Histogram {
 public:
  static constexpr MetricType kType = MetricType::kHistogram;

  /// Buckets by upper bound (finite, strictly increasing; +Inf is implicit).
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  /// Records one observation; NaN goes to the +Inf bucket only (as the Go client does).
  void observe(double value);

  /// A consistent-enough copy for exposition: `counts[i]` is the number of observations in
  /// bucket i alone (not cumulative); counts.back() is the +Inf bucket.
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> counts;
    double sum = 0.0;
    std::uint64_t count = 0;  // always equals the sum of counts
  };
  /// Copies the current state.
  [[nodiscard]] Snapshot snapshot() const;

  /// The finite bucket upper bounds.
  [[nodiscard]] const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1 (the +Inf bucket)
  std::atomic<double> sum_{0.0};
};

/// The Prometheus client default bounds, 5 ms .. 10 s; used when a histogram names none.
std::vector<double> default_buckets();
/// Bucket bounds start, start*factor, ... (count of them); e.g. latencies 1 ms .. 10 s.
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);
/// Bucket bounds start, start+width, ... (count of them).
std::vector<double> linear_buckets(double start, double width, std::size_t count);

/// What a builder hands to the Registry to find or create a family.
struct FamilySpec {
  MetricType type = MetricType::kCounter;
  std::string name;
  std::string help;
  Labels constant_labels;
  std::vector<double> bounds;  // histograms only
};

/// Type-independent part of a family: name, help, constant labels, and exposition.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  /// The exposed metric name (counters always end in "_total").
  [[nodiscard]] const std::string& name() const { return spec_.name; }
  /// The HELP text.
  [[nodiscard]] const std::string& help() const { return spec_.help; }
  /// Labels added to every metric of this family.
  [[nodiscard]] const Labels& constant_labels() const { return spec_.constant_labels; }
  /// Histogram bucket upper bounds (empty for other types).
  [[nodiscard]] const std::vector<double>& bounds() const { return spec_.bounds; }
  /// Counter, gauge or histogram.
  [[nodiscard]] virtual MetricType type() const = 0;
  /// Appends this family's HELP, TYPE and sample lines to `out`.
  virtual void serialize(std::string& out) const = 0;

 protected:
  explicit FamilyBase(FamilySpec spec) : spec_(std::move(spec)) {}
  /// Checks the label names of one add() call; allocates nothing unless it fails.
  [[nodiscard]] Result<void> check_labels(const Labels& labels) const;
  /// True when `labels` are already the canonical key (no constant labels, valid UTF-8), so a
  /// lookup needs no copy.
  [[nodiscard]] bool is_canonical(const Labels& labels) const;
  /// The canonical key: `labels` plus the constant labels, values made valid UTF-8.
  [[nodiscard]] Labels canonical_labels(const Labels& labels) const;

 private:
  FamilySpec spec_;  // validated by the Registry
};

/// All metrics of one name and type, one per label set. Created through the builders below.
template <typename T>
class Family final : public FamilyBase {
 public:
  /// Made by the Registry from a validated spec.
  explicit Family(FamilySpec spec) : FamilyBase(std::move(spec)) {}

  /// The metric for `labels`, created on first use; fails on an invalid or reserved label name.
  [[nodiscard]] Result<T*> try_add(const Labels& labels);
  /// Like try_add, for label names fixed in code: an invalid name is a bug, so it aborts with
  /// a message naming the family and the label.
  T& add(const Labels& labels);
  /// Number of label sets created so far.
  [[nodiscard]] std::size_t size() const;

  [[nodiscard]] MetricType type() const override { return T::kType; }
  void serialize(std::string& out) const override;

 private:
  mutable std::mutex mutex_;  // guards metrics_'s structure, never a metric's value
  std::map<Labels, std::unique_ptr<T>> metrics_;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

/// Owns every family; serializes them all for a /metrics scrape. Thread-safe.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  /// Finds or creates a family. The same name and type returns the existing family (its first
  /// help text wins); a different type, different constant labels or different histogram
  /// buckets is an error, as are invalid names, labels and bounds.
  [[nodiscard]] Result<Family<Counter>*> add_counter_family(FamilySpec spec);
  [[nodiscard]] Result<Family<Gauge>*> add_gauge_family(FamilySpec spec);
  [[nodiscard]] Result<Family<Histogram>*> add_histogram_family(FamilySpec spec);

  /// Registers `hook` to run at the start of every serialize(), e.g. to set gauges that are
  /// cheaper to compute at scrape time (resident bytes, queue lengths). Hooks run on the
  /// scraping thread, in registration order, one scrape at a time.
  void on_scrape(std::function<void()> hook);

  /// All families in Prometheus text format 0.0.4, sorted by name.
  [[nodiscard]] std::string serialize() const;

 private:
  [[nodiscard]] Result<FamilyBase*> add_family(FamilySpec spec);

  mutable std::mutex mutex_;  // guards families_ and hooks_
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
  std::vector<std::function<void()>> hooks_;
  mutable std::mutex scrape_mutex_;  // one scrape at a time, so hooks never race each other
};

/// Fluent construction, as in prometheus-cpp:
/// `build_counter().name("x_total").help("...").register_on(registry).add({{"k","v"}})`.
template <typename T>
class FamilyBuilder {
 public:
  /// The metric name; for counters "_total" is appended when missing.
  FamilyBuilder& name(std::string name) {
    spec_.name = std::move(name);
    return *this;
  }
  /// The HELP text.
  FamilyBuilder& help(std::string help) {
    spec_.help = std::move(help);
    return *this;
  }
  /// Labels every metric of the family carries.
  FamilyBuilder& labels(Labels labels) {
    spec_.constant_labels = std::move(labels);
    return *this;
  }
  /// Histogram bucket upper bounds (ignored for other types); default_buckets() when not
  /// called, `{+Inf}` for a histogram with only the +Inf bucket.
  FamilyBuilder& buckets(std::vector<double> bounds) {
    spec_.bounds = std::move(bounds);
    return *this;
  }

  /// Finds or creates the family; an error names the metric and what was wrong.
  [[nodiscard]] Result<Family<T>*> try_register_on(Registry& registry) const;
  /// Like try_register_on, for names fixed in code: an error is a bug, so it aborts with the
  /// error message on stderr.
  Family<T>& register_on(Registry& registry) const;

 private:
  FamilySpec spec_{T::kType, {}, {}, {}, {}};
};

extern template class FamilyBuilder<Counter>;
extern template class FamilyBuilder<Gauge>;
extern template class FamilyBuilder<Histogram>;

/// Starts building a counter family.
inline FamilyBuilder<Counter> build_counter() { return {}; }
/// Starts building a gauge family.
inline FamilyBuilder<Gauge> build_gauge() { return {}; }
/// Starts building a histogram family.
inline FamilyBuilder<Histogram> build_histogram() { return {}; }

/// Formats a sample value the way Prometheus parses it: "+Inf", "-Inf", "NaN", whole numbers
/// without exponent or decimal point, otherwise the shortest round-trip form.
std::string format_metric_value(double value);

}  // namespace aegaeon::core
