#include "sim/simulator.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "sim/sim_core.hpp"

namespace aegaeon::sim {

std::string to_string(SystemKind kind) {
  switch (kind) {
    case SystemKind::kAegaeon: return "aegaeon";
    case SystemKind::kDedicated: return "dedicated";
    case SystemKind::kRequestLevel: return "request-level";
    case SystemKind::kRequestLevelSrtf: return "request-level-srtf";
    case SystemKind::kStaticMux: return "static-mux";
  }
  return "unknown";
}

core::Result<SystemKind> parse_system(const std::string& name) {
  for (auto k : {SystemKind::kAegaeon, SystemKind::kDedicated, SystemKind::kRequestLevel,
                 SystemKind::kRequestLevelSrtf, SystemKind::kStaticMux}) {
    if (to_string(k) == name) return k;
  }
  return core::error(core::ErrorCode::kInvalidArgument,
                     "unknown system '" + name +
                         "': expected aegaeon, dedicated, request-level, request-level-srtf or static-mux");
}

namespace detail {

SimCore::SimCore(const Workload& w, const Env& e) : workload(w), env(e) {
  trackers_.reserve(w.requests.size());
  for (const auto& r : w.requests) trackers_.emplace_back(e.config.slo, r.arrival_s);
  state_.assign(w.requests.size(), 0);
  itl_.reserve(w.requests.size() * 64);
}

bool SimCore::next(Event& e) {
  if (queue_.empty()) return false;
  e = queue_.top();
  queue_.pop();
  now_ = e.t;
  ++events_;
  return true;
}

void SimCore::token(std::int64_t r) {
  auto& t = trackers_[static_cast<std::size_t>(r)];
  if (t.tokens() > 0) itl_.push_back(static_cast<float>(now_ - (t.e2e_s() + workload.requests[static_cast<std::size_t>(r)].arrival_s)));
  t.on_token(now_);
  if (t.tokens() >= workload.requests[static_cast<std::size_t>(r)].output_tokens) {
    state_[static_cast<std::size_t>(r)] = 1;
    ++done_;
    if (env.config.progress && now_ >= next_progress_s_) {
      next_progress_s_ = now_ + 300.0;
      std::fprintf(stderr, "\r[%s] t=%.0fs  %lld/%zu requests done  %lld events", to_string(env.config.system).c_str(),
                   now_, static_cast<long long>(done_), workload.requests.size(), static_cast<long long>(events_));
    }
  }
}

void SimCore::fail(std::int64_t r, bool rejected) { state_[static_cast<std::size_t>(r)] = rejected ? 2 : 3; }

namespace {

LatencyStats stats(std::vector<float> v) {
  LatencyStats s;
  if (v.empty()) return s;
  double sum = 0;
  for (float x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  auto pct = [&](double p) {
    const auto k = static_cast<std::size_t>(std::min<double>(static_cast<double>(v.size() - 1), p * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return static_cast<double>(v[k]);
  };
  s.p50 = pct(0.5);
  s.p90 = pct(0.9);
  s.p99 = pct(0.99);
  return s;
}

}  // namespace

SimResult SimCore::finish(const std::string& system, std::int32_t devices) const {
  if (env.config.progress) std::fprintf(stderr, "\n");
  SimResult res;
  res.system = system;
  res.events = events_;
  policy::AttainmentAccumulator acc;
  std::vector<float> ttft, tpot;
  std::int64_t tokens = 0;
  double last = 0;
  for (std::size_t i = 0; i < trackers_.size(); ++i) {
    const auto& w = workload.requests[i];
    const auto& t = trackers_[i];
    RequestOutcome o;
    o.model = w.model;
    o.arrival_s = w.arrival_s;
    o.input_tokens = w.input_tokens;
    o.output_tokens = w.output_tokens;
    o.served = state_[i] == 1;
    o.rejected = state_[i] == 2;
    tokens += t.tokens();
    if (o.served) {
      o.ttft_s = t.ttft_s();
      o.tpot_s = t.tpot_s();
      o.e2e_s = t.e2e_s();
      o.max_itl_s = t.max_itl_s();
      o.qos = t.qos();
      o.met_slo = t.meets_request_slo();
      acc.add(t);
      ttft.push_back(static_cast<float>(o.ttft_s));
      if (w.output_tokens > 1) tpot.push_back(static_cast<float>(o.tpot_s));
      last = std::max(last, w.arrival_s + o.e2e_s);
    } else {
      acc.add_failed();
      if (o.rejected) ++res.rejected; else ++res.unserved;
    }
    res.requests.push_back(o);
  }
  res.mean_qos = acc.mean_qos();
  res.request_attainment = acc.request_attainment();
  res.duration_s = workload.duration_s();
  res.makespan_s = last;
  const double span = std::max(res.duration_s, 1e-9);
  res.goodput_rps = res.request_attainment * static_cast<double>(res.requests.size()) / span;
  res.tokens_per_s = static_cast<double>(tokens) / std::max(res.makespan_s, 1e-9);
  const double device_s = static_cast<double>(devices) * std::max(res.makespan_s, 1e-9);
  res.utilization = compute_s_ / device_s;
  res.switch_share = switch_s_ / device_s;
  res.switches = switches_;
  res.switches_per_s = static_cast<double>(switches_) / std::max(res.makespan_s, 1e-9);
  res.ttft = stats(std::move(ttft));
  res.tpot = stats(std::move(tpot));
  res.itl = stats(itl_);
  return res;
}

}  // namespace detail

core::Result<SimResult> simulate(const Workload& workload, const SimConfig& config, const ProfileTable& profiles) {
  const auto start = std::chrono::steady_clock::now();
  auto device = find_device(config.device);
  if (!device) return device.error();
  if (config.devices < 1) return core::error(core::ErrorCode::kInvalidArgument, "devices: expected at least 1");
  // Elastic devices prefill prompts themselves, so they need no prefill device.
  const std::int32_t min_prefill = config.elastic_memory ? 0 : 1;
  if (config.system == SystemKind::kAegaeon &&
      (config.prefill_devices < min_prefill || config.prefill_devices >= config.devices)) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "prefill devices: expected " + std::to_string(min_prefill) + ".." + std::to_string(config.devices - 1) +
                           " (the rest decode), got " + std::to_string(config.prefill_devices));
  }
  if (config.h2d_efficiency <= 0 || config.h2d_efficiency > 1) {
    return core::error(core::ErrorCode::kInvalidArgument, "h2d efficiency: expected a value in (0, 1]");
  }
  detail::Env env;
  env.config = config;
  env.device = *device;
  env.usable_bytes = device->memory_bytes * config.memory_fraction;
  const double bw = device->h2d_bytes_per_s * config.h2d_efficiency;
  std::map<std::string, detail::ModelEnv> fitted;
  for (const auto& name : workload.model_names) {
    auto real = resolve_model_alias(name);
    if (!real) return real.error().with_context("trace model '" + name + "'");
    auto it = fitted.find(*real);
    if (it == fitted.end()) {
      auto shape = find_model_shape(*real);
      if (!shape) return shape.error();
      auto est = profiles.fit(*real, config.device);
      if (!est) return est.error();
      detail::ModelEnv m;
      m.weight_bytes = static_cast<double>(shape->weight_bytes());
      m.kv_bytes_per_token = static_cast<double>(shape->kv_bytes_per_token());
      m.prefill = est->prefill();
      m.decode = est->decode();
      m.load_s = m.weight_bytes / bw;
      m.kv_s_per_token = m.kv_bytes_per_token / bw;
      if (m.weight_bytes > env.usable_bytes) {
        return core::error(core::ErrorCode::kInvalidArgument,
                           "model '" + *real + "' (" + std::to_string(m.weight_bytes / (1 << 30)) +
                               " GiB) does not fit device " + config.device);
      }
      it = fitted.emplace(*real, m).first;
    }
    env.models.push_back(it->second);
    env.max_weight_bytes = std::max(env.max_weight_bytes, it->second.weight_bytes);
  }
  detail::SimCore core(workload, env);
  if (config.system == SystemKind::kAegaeon) {
    detail::run_aegaeon(core);
  } else {
    detail::run_colocated(core);
  }
  SimResult res = core.finish(to_string(config.system), config.devices);
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

std::string to_json(const SimResult& r, const SimConfig& c, bool per_request) {
  using nlohmann::json;
  auto lat = [](const LatencyStats& s) { return json{{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}}; };
  json j{{"system", r.system},
         {"device", c.device},
         {"devices", c.devices},
         {"prefill_devices", c.system == SystemKind::kAegaeon ? c.prefill_devices : 0},
         {"slo", {{"ttft_s", c.slo.ttft_s}, {"tbt_s", c.slo.tbt_s}}},
         {"requests", r.requests.size()},
         {"attainment_qos", r.mean_qos},
         {"attainment_requests", r.request_attainment},
         {"goodput_rps", r.goodput_rps},
         {"tokens_per_s", r.tokens_per_s},
         {"utilization", r.utilization},
         {"switch_share", r.switch_share},
         {"switches", r.switches},
         {"switches_per_s", r.switches_per_s},
         {"rejected", r.rejected},
         {"unserved", r.unserved},
         {"duration_s", r.duration_s},
         {"makespan_s", r.makespan_s},
         {"ttft_s", lat(r.ttft)},
         {"tpot_s", lat(r.tpot)},
         {"itl_s", lat(r.itl)},
         {"events", r.events},
         {"wall_s", r.wall_s},
         {"events_per_s", r.wall_s > 0 ? static_cast<double>(r.events) / r.wall_s : 0.0}};
  if (per_request) {
    json rows = json::array();
    for (const auto& o : r.requests) {
      rows.push_back(json{{"model", o.model}, {"arrival_s", o.arrival_s}, {"input", o.input_tokens},
                          {"output", o.output_tokens}, {"served", o.served}, {"rejected", o.rejected},
                          {"ttft_s", o.ttft_s}, {"tpot_s", o.tpot_s}, {"e2e_s", o.e2e_s},
                          {"max_itl_s", o.max_itl_s}, {"qos", o.qos}, {"met_slo", o.met_slo}});
    }
    j["per_request"] = std::move(rows);
  }
  return j.dump(2);
}

std::string format_table(const std::vector<SimResult>& results) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-19s %8s %8s %9s %8s %8s %8s %7s %9s %8s\n", "system", "qos-att", "req-att",
                "goodput", "ttft-p90", "tpot-p90", "util", "sw/s", "rejected", "unserved");
  out += line;
  for (const auto& r : results) {
    std::snprintf(line, sizeof line, "%-19s %7.1f%% %7.1f%% %7.3f/s %7.2fs %7.3fs %7.1f%% %7.2f %9lld %8lld\n",
                  r.system.c_str(), 100 * r.mean_qos, 100 * r.request_attainment, r.goodput_rps, r.ttft.p90,
                  r.tpot.p90, 100 * r.utilization, r.switches_per_s, static_cast<long long>(r.rejected),
                  static_cast<long long>(r.unserved));
    out += line;
  }
  return out;
}

}  // namespace aegaeon::sim
