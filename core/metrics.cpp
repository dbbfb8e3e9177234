#include "core/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "core/utf8.hpp"

namespace aegaeon::core {
namespace {

// Whole numbers below this are counted with an integer fetch_add; 2^53 keeps them exact in a
// double when value() adds the two parts.
constexpr double kMaxWholeIncrement = 9007199254740992.0;

// Lock-free add on an atomic double; compare_exchange_weak reloads `expected` on failure.
void atomic_add(std::atomic<double>& target, double amount) {
  double expected = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(expected, expected + amount, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
  }
}

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// Exposition escaping (text format 0.0.4): HELP escapes backslash and newline; label values
// additionally escape the double quote.
void append_escaped(std::string& out, std::string_view text, bool escape_quote) {
  for (const char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '"':
        if (escape_quote) {
          out += "\\\"";
        } else {
          out += c;
        }
        break;
      default:
        out += c;
    }
  }
}

// Appends `{a="x",b="y"}` (and `le` last, for histogram buckets); nothing for an empty set.
void append_labels(std::string& out, const Labels& labels, std::string_view le = {}) {
  if (labels.empty() && le.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, /*escape_quote=*/true);
    out += '"';
  }
  if (!le.empty()) {
    if (!first) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   const Labels& labels, double value, std::string_view le = {}) {
  out += name;
  out += suffix;
  append_labels(out, labels, le);
  out += ' ';
  out += format_metric_value(value);
  out += '\n';
}

// Every sample name a family exposes, so two families can never write the same series name.
std::vector<std::string> sample_names(MetricType type, const std::string& name) {
  if (type == MetricType::kHistogram) {
    return {name + "_bucket", name + "_sum", name + "_count"};
  }
  return {name};
}

std::string describe_labels(const Labels& labels) {
  std::string out;
  append_labels(out, labels);
  return out.empty() ? "{}" : out;
}

}  // namespace

std::string_view to_string(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

bool is_valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  if (!is_name_start(name[0]) && name[0] != ':') return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return is_name_start(c) || is_digit(c) || c == ':'; });
}

bool is_valid_label_name(std::string_view name) {
  if (name.empty() || !is_name_start(name[0])) return false;
  if (name.substr(0, 2) == "__") return false;  // reserved for Prometheus itself
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return is_name_start(c) || is_digit(c); });
}

std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  std::to_chars_result result{};
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    result = std::to_chars(std::begin(buffer), std::end(buffer), static_cast<std::int64_t>(value));
  } else {
    result = std::to_chars(std::begin(buffer), std::end(buffer), value);  // shortest round trip
  }
  return std::string(buffer, result.ptr);
}

// ---- Counter, Gauge, Histogram ---------------------------------------------------------------

void Counter::increment(double amount) {
  if (!(amount >= 0.0)) return;  // negative or NaN
  if (amount < kMaxWholeIncrement && amount == std::trunc(amount)) {
    whole_.fetch_add(static_cast<std::uint64_t>(amount), std::memory_order_relaxed);
  } else {
    atomic_add(fraction_, amount);
  }
}

double Counter::value() const {
  return static_cast<double>(whole_.load(std::memory_order_relaxed)) +
         fraction_.load(std::memory_order_relaxed);
}

void Gauge::increment(double amount) { atomic_add(value_, amount); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double value) {
  // First bucket whose upper bound is >= value ("le" is inclusive); NaN compares false with
  // every bound and lands in +Inf.
  std::size_t index = bounds_.size();
  if (!std::isnan(value)) {
    index = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                     bounds_.begin());
  }
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  snapshot.counts.resize(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    snapshot.counts[i] = counts_[i].load(std::memory_order_relaxed);
    snapshot.count += snapshot.counts[i];
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> default_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (std::size_t i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

std::vector<double> linear_buckets(double start, double width, std::size_t count) {
  std::vector<double> bounds;
  bounds.reserve(count);
  for (std::size_t i = 0; i < count; ++i) bounds.push_back(start + width * static_cast<double>(i));
  return bounds;
}

// ---- Families ----------------------------------------------------------------------------------

Result<void> FamilyBase::check_labels(const Labels& labels) const {
  for (const auto& [label, value] : labels) {
    if (is_valid_label_name(label) && !(type() == MetricType::kHistogram && label == "le") &&
        constant_labels().count(label) == 0) {
      continue;
    }
    const std::string where = "metric " + quoted(name()) + ": label " + quoted(label);
    if (!is_valid_label_name(label)) {
      return error(ErrorCode::kInvalidArgument,
                   where +
                       ": invalid label name, expected [a-zA-Z_][a-zA-Z0-9_]* not starting "
                       "with '__'");
    }
    if (label == "le") {
      return error(ErrorCode::kInvalidArgument,
                   where + ": 'le' is reserved for histogram bucket bounds");
    }
    return error(ErrorCode::kInvalidArgument, where + ": already a constant label of the family");
  }
  return ok();
}

bool FamilyBase::is_canonical(const Labels& labels) const {
  if (!constant_labels().empty()) return false;
  return std::all_of(labels.begin(), labels.end(),
                     [](const auto& entry) { return is_valid_utf8(entry.second); });
}

Labels FamilyBase::canonical_labels(const Labels& labels) const {
  Labels merged = constant_labels();
  for (const auto& [label, value] : labels) {
    merged.emplace(label, to_valid_utf8(value));  // exposition must stay valid UTF-8
  }
  return merged;
}

template <typename T>
Result<T*> Family<T>::try_add(const Labels& labels) {
  AEGAEON_TRY(check_labels(labels));
  if (is_canonical(labels)) {  // the common case: look up without copying the labels
    const std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = metrics_.find(labels); it != metrics_.end()) return it->second.get();
  }
  Labels key = canonical_labels(labels);
  const std::lock_guard<std::mutex> lock(mutex_);
  auto [it, inserted] = metrics_.try_emplace(std::move(key));
  if (inserted) {
    if constexpr (std::is_same_v<T, Histogram>) {
      it->second = std::make_unique<Histogram>(bounds());
    } else {
      it->second = std::make_unique<T>();
    }
  }
  return it->second.get();
}

template <typename T>
T& Family<T>::add(const Labels& labels) {
  Result<T*> metric = try_add(labels);
  if (!metric.ok()) {
    std::fprintf(stderr, "aegaeon: metrics: %s\n", metric.error().message.c_str());
    std::abort();
  }
  return **metric;
}

template <typename T>
std::size_t Family<T>::size() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return metrics_.size();
}

template <typename T>
void Family<T>::serialize(std::string& out) const {
  out += "# HELP ";
  out += name();
  out += ' ';
  append_escaped(out, help(), /*escape_quote=*/false);
  out += "\n# TYPE ";
  out += name();
  out += ' ';
  out += to_string(type());
  out += '\n';
  const std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [labels, metric] : metrics_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const Histogram::Snapshot snapshot = metric->snapshot();
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < snapshot.bounds.size(); ++i) {
        cumulative += snapshot.counts[i];
        append_sample(out, name(), "_bucket", labels, static_cast<double>(cumulative),
                      format_metric_value(snapshot.bounds[i]));
      }
      append_sample(out, name(), "_bucket", labels, static_cast<double>(snapshot.count), "+Inf");
      append_sample(out, name(), "_sum", labels, snapshot.sum);
      append_sample(out, name(), "_count", labels, static_cast<double>(snapshot.count));
    } else {
      append_sample(out, name(), "", labels, metric->value());
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----------------------------------------------------------------------------------

Registry::~Registry() = default;

Result<FamilyBase*> Registry::add_family(FamilySpec spec) {
  const std::string what = "metric " + quoted(spec.name);
  if (!is_valid_metric_name(spec.name)) {
    return error(ErrorCode::kInvalidArgument,
                 what + ": invalid metric name, expected [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
  if (spec.type == MetricType::kCounter && !spec.name.ends_with("_total")) {
    spec.name += "_total";  // text format 0.0.4 convention, checked by promtool
  }
  if (spec.help.empty()) {
    return error(ErrorCode::kInvalidArgument, what + ": help text is empty");
  }
  for (const auto& [label, value] : spec.constant_labels) {
    if (!is_valid_label_name(label) || (spec.type == MetricType::kHistogram && label == "le")) {
      return error(ErrorCode::kInvalidArgument,
                   what + ": constant label " + quoted(label) +
                       ": invalid label name, expected [a-zA-Z_][a-zA-Z0-9_]* not starting with "
                       "'__' (and not 'le' on a histogram)");
    }
  }
  for (auto& [label, value] : spec.constant_labels) value = to_valid_utf8(value);
  if (spec.type == MetricType::kHistogram) {
    if (spec.bounds.empty()) spec.bounds = default_buckets();
    if (!spec.bounds.empty() && std::isinf(spec.bounds.back()) && spec.bounds.back() > 0)
      spec.bounds.pop_back();
    for (std::size_t i = 0; i < spec.bounds.size(); ++i) {
      if (!std::isfinite(spec.bounds[i]) || (i > 0 && !(spec.bounds[i - 1] < spec.bounds[i]))) {
        return error(ErrorCode::kInvalidArgument,
                     what + ": bucket bounds must be finite and strictly increasing, got " +
                         format_metric_value(spec.bounds[i]) + " at index " + std::to_string(i));
      }
    }
  } else {
    spec.bounds.clear();
  }

  const std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = families_.find(spec.name); it != families_.end()) {
    FamilyBase& existing = *it->second;
    const std::string exposed = "metric " + quoted(spec.name);
    if (existing.type() != spec.type) {
      return error(ErrorCode::kAlreadyExists, exposed + " is already registered as a " +
                                                  std::string(to_string(existing.type())) +
                                                  ", not a " + std::string(to_string(spec.type)));
    }
    if (existing.constant_labels() != spec.constant_labels) {
      return error(ErrorCode::kAlreadyExists, exposed +
                                                  " is already registered with constant labels " +
                                                  describe_labels(existing.constant_labels()));
    }
    if (existing.bounds() != spec.bounds) {
      return error(ErrorCode::kAlreadyExists,
                   exposed + " is already registered with other bucket bounds");
    }
    return &existing;
  }
  // Names that collide with another family's series (a counter "x_count" next to a histogram
  // "x") would make the exposition ambiguous.
  for (const std::string& sample : sample_names(spec.type, spec.name)) {
    for (const auto& [name, family] : families_) {
      for (const std::string& other : sample_names(family->type(), name)) {
        if (sample == other) {
          return error(ErrorCode::kAlreadyExists,
                       what + ": series name " + quoted(sample) + " is already exposed by the " +
                           std::string(to_string(family->type())) + " " + quoted(name));
        }
      }
    }
  }

  std::string name = spec.name;
  std::unique_ptr<FamilyBase> family;
  switch (spec.type) {
    case MetricType::kCounter:
      family = std::make_unique<Family<Counter>>(std::move(spec));
      break;
    case MetricType::kGauge:
      family = std::make_unique<Family<Gauge>>(std::move(spec));
      break;
    case MetricType::kHistogram:
      family = std::make_unique<Family<Histogram>>(std::move(spec));
      break;
  }
  FamilyBase* raw = family.get();
  families_.emplace(std::move(name), std::move(family));
  return raw;
}

Result<Family<Counter>*> Registry::add_counter_family(FamilySpec spec) {
  spec.type = MetricType::kCounter;
  Result<FamilyBase*> family = add_family(std::move(spec));
  if (!family.ok()) return family.error();
  return static_cast<Family<Counter>*>(*family);
}

Result<Family<Gauge>*> Registry::add_gauge_family(FamilySpec spec) {
  spec.type = MetricType::kGauge;
  Result<FamilyBase*> family = add_family(std::move(spec));
  if (!family.ok()) return family.error();
  return static_cast<Family<Gauge>*>(*family);
}

Result<Family<Histogram>*> Registry::add_histogram_family(FamilySpec spec) {
  spec.type = MetricType::kHistogram;
  Result<FamilyBase*> family = add_family(std::move(spec));
  if (!family.ok()) return family.error();
  return static_cast<Family<Histogram>*>(*family);
}

void Registry::on_scrape(std::function<void()> hook) {
  const std::lock_guard<std::mutex> lock(mutex_);
  hooks_.push_back(std::move(hook));
}

std::string Registry::serialize() const {
  const std::lock_guard<std::mutex> scrape_lock(scrape_mutex_);
  std::vector<std::function<void()>> hooks;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();  // outside mutex_, so hooks may add label sets

  std::string out;
  const std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [name, family] : families_) family->serialize(out);
  return out;
}

// ---- Builders ----------------------------------------------------------------------------------

template <typename T>
Result<Family<T>*> FamilyBuilder<T>::try_register_on(Registry& registry) const {
  if constexpr (std::is_same_v<T, Counter>) {
    return registry.add_counter_family(spec_);
  } else if constexpr (std::is_same_v<T, Gauge>) {
    return registry.add_gauge_family(spec_);
  } else {
    return registry.add_histogram_family(spec_);
  }
}

template <typename T>
Family<T>& FamilyBuilder<T>::register_on(Registry& registry) const {
  Result<Family<T>*> family = try_register_on(registry);
  if (!family.ok()) {
    std::fprintf(stderr, "aegaeon: metrics: %s\n", family.error().message.c_str());
    std::abort();
  }
  return **family;
}

template class FamilyBuilder<Counter>;
template class FamilyBuilder<Gauge>;
template class FamilyBuilder<Histogram>;

}  // namespace aegaeon::core
