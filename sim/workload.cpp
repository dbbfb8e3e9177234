#include "sim/workload.hpp"

#include "sim/data.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace aegaeon::sim {

namespace {

core::Result<double> parse_time(const std::string& text, const std::string& where) {
  auto bad = [&] {
    return core::error(core::ErrorCode::kInvalidArgument,
                       where + ": field 'Request Time': expected HH:MM:SS.mmm or seconds, got '" + text + "'");
  };
  double total = 0.0;
  std::size_t start = 0;
  int parts = 0;
  while (true) {
    const std::size_t colon = text.find(':', start);
    const std::string part = text.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    double v = 0.0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || v < 0) return bad();
    total = total * 60.0 + v;
    if (++parts > 3) return bad();
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return total;
}

core::Result<std::int32_t> parse_count(const std::string& text, const std::string& where, const char* field) {
  long long v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < 0 || v > (1 << 24)) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       where + ": field '" + field + "': expected a token count (0..16777216), got '" + text + "'");
  }
  return static_cast<std::int32_t>(v);
}

}  // namespace

namespace {

// `tokens` × `scale`, at least one token.
std::int32_t scaled(std::int32_t tokens, double scale) {
  return std::max<std::int32_t>(1, static_cast<std::int32_t>(std::lround(tokens * scale)));
}

}  // namespace

core::Result<Workload> load_trace(const std::string& path) {
  if (path == kBuiltinData) {
    std::istringstream in{std::string(embedded::sim_lengths_csv())};
    return parse_trace(in, "sim/data/traces/synth-40-0.5-1.0-1.0.csv (built in)");
  }
  std::ifstream in(path);
  if (!in) return core::error(core::ErrorCode::kNotFound, path + ": cannot open trace file");
  return parse_trace(in, path);
}

core::Result<Workload> parse_trace(std::istream& in, const std::string& path) {
  Workload w;
  std::map<std::string, std::int32_t> index;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream ss(line);
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    const std::string where = path + ":" + std::to_string(line_no);
    if (line_no == 1) {
      if (cells.size() != 4 || cells[0] != "Request Time") {
        return core::error(core::ErrorCode::kInvalidArgument,
                           where + ": expected header 'Request Time,Model Name,Input Length,Output Length'");
      }
      continue;
    }
    if (cells.size() != 4) {
      return core::error(core::ErrorCode::kInvalidArgument,
                         where + ": expected 4 fields, got " + std::to_string(cells.size()));
    }
    TraceRequest r;
    auto t = parse_time(cells[0], where);
    if (!t) return t.error();
    r.arrival_s = *t;
    if (cells[1].empty()) {
      return core::error(core::ErrorCode::kInvalidArgument, where + ": field 'Model Name': empty");
    }
    auto [it, inserted] = index.try_emplace(cells[1], static_cast<std::int32_t>(w.model_names.size()));
    if (inserted) w.model_names.push_back(cells[1]);
    r.model = it->second;
    auto in_tokens = parse_count(cells[2], where, "Input Length");
    if (!in_tokens) return in_tokens.error();
    auto out_tokens = parse_count(cells[3], where, "Output Length");
    if (!out_tokens) return out_tokens.error();
    r.input_tokens = std::max(*in_tokens, 1);
    r.output_tokens = std::max(*out_tokens, 1);
    w.requests.push_back(r);
  }
  if (w.requests.empty()) return core::error(core::ErrorCode::kInvalidArgument, path + ": no requests");
  std::stable_sort(w.requests.begin(), w.requests.end(),
                   [](const TraceRequest& a, const TraceRequest& b) { return a.arrival_s < b.arrival_s; });
  return w;
}

core::Result<Workload> generate_workload(const WorkloadSpec& spec, const Workload& lengths) {
  if (spec.models < 1 || spec.rate_per_model_rps <= 0 || spec.duration_s <= 0 || spec.burstiness_cv <= 0) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "workload: models, rate, duration and burstiness must be positive");
  }
  if (lengths.requests.empty()) {
    return core::error(core::ErrorCode::kInvalidArgument, "workload: the length source trace has no requests");
  }
  std::mt19937_64 rng(spec.seed);
  Workload w;
  std::vector<double> weight(static_cast<std::size_t>(spec.models));
  double sum = 0.0;
  for (std::int32_t i = 0; i < spec.models; ++i) {
    weight[static_cast<std::size_t>(i)] = 1.0 / std::pow(i + 1.0, spec.zipf_s);
    sum += weight[static_cast<std::size_t>(i)];
  }
  const double total_rate = spec.rate_per_model_rps * spec.models;
  // Gamma inter-arrivals with mean 1/rate and the requested CV: shape k = 1/cv², scale = 1/(rate·k).
  const double shape = 1.0 / (spec.burstiness_cv * spec.burstiness_cv);
  std::uniform_int_distribution<std::size_t> pick(0, lengths.requests.size() - 1);
  for (std::int32_t i = 0; i < spec.models; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "synth_model_%02d", i);
    w.model_names.emplace_back(name);
    const double rate = total_rate * weight[static_cast<std::size_t>(i)] / sum;
    std::gamma_distribution<double> gap(shape, 1.0 / (rate * shape));
    for (double t = gap(rng); t < spec.duration_s; t += gap(rng)) {
      const TraceRequest& src = lengths.requests[pick(rng)];
      w.requests.push_back(TraceRequest{t, i, scaled(src.input_tokens, spec.input_scale),
                                        scaled(src.output_tokens, spec.output_scale)});
    }
  }
  std::stable_sort(w.requests.begin(), w.requests.end(),
                   [](const TraceRequest& a, const TraceRequest& b) { return a.arrival_s < b.arrival_s; });
  return w;
}

Workload scale_rate(const Workload& w, double factor) {
  Workload out = w;
  for (auto& r : out.requests) r.arrival_s /= factor;
  return out;
}

core::Result<Workload> make_workload(const WorkloadSource& source) {
  if (source.rate_scale <= 0) {
    return core::error(core::ErrorCode::kInvalidArgument, "rate scale: expected a positive factor");
  }
  Workload w;
  if (!source.trace.empty()) {
    auto t = load_trace(source.trace);
    if (!t) return t.error();
    w = std::move(*t);
  } else {
    auto lengths = load_trace(source.lengths_trace);
    if (!lengths) return lengths.error().with_context("length source");
    auto g = generate_workload(source.spec, *lengths);
    if (!g) return g.error();
    w = std::move(*g);
  }
  return source.rate_scale == 1.0 ? w : scale_rate(w, source.rate_scale);
}

}  // namespace aegaeon::sim
