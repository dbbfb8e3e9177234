// `aegaeon plan`: the smallest number of devices (and, for aegaeon, the prefill/decode split)
// that reaches the target SLO attainment on a workload, for aegaeon and each baseline.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cmd/commands.hpp"
#include "cmd/sim_flags.hpp"

#include "sim/data.hpp"
#include "sim/profile_table.hpp"
#include "sim/simulator.hpp"
#include "sim/workload.hpp"

namespace aegaeon::cmd {

namespace {

struct PlanOptions {
  sim::WorkloadSource workload;
  std::string profiles = sim::kBuiltinData;
  std::string systems = "all";
  std::string metric = "qos";
  std::string json_path;
  double target = 0.9;
  std::int32_t max_devices = 64;
  bool no_prefetch = false;
  sim::SimConfig config;
};

/// The best run found for one device count.
struct Trial {
  std::int32_t devices = 0;
  std::int32_t prefill = 0;
  double attainment = 0;
  double qos = 0, requests = 0;
};

class Planner {
 public:
  Planner(const PlanOptions& o, const sim::Workload& w, const sim::ProfileTable& p) : o_(o), w_(w), p_(p) {}

  // Attainment with `n` devices; aegaeon tries 0 to 1/4 of the devices for prefill (its decode
  // devices prefill the models they hold), the paper's device between 1/5 and 1/2.
  Trial evaluate(sim::SystemKind kind, std::int32_t n) {
    Trial best{n, 0, -1};
    std::vector<std::int32_t> splits{0};
    if (kind == sim::SystemKind::kAegaeon && o_.config.elastic_memory) {
      for (std::int32_t p = 1; p < n && p <= (n + 3) / 4; ++p) splits.push_back(p);
    } else if (kind == sim::SystemKind::kAegaeon) {
      if (n < 2) return Trial{n, 0, 0};
      splits.clear();
      const auto lo = std::max(1, static_cast<std::int32_t>(std::floor(n * 0.2)));
      const auto hi = std::min(n - 1, std::max(lo, static_cast<std::int32_t>(std::ceil(n * 0.5))));
      for (std::int32_t p = lo; p <= hi; ++p) splits.push_back(p);
    }
    for (std::int32_t p : splits) {
      sim::SimConfig c = o_.config;
      c.system = kind;
      c.devices = n;
      c.prefill_devices = p;
      c.progress = false;
      auto r = sim::simulate(w_, c, p_);
      if (!r) throw CommandError(r.error().message, 2);
      ++runs_;
      const double att = o_.metric == "qos" ? r->mean_qos : r->request_attainment;
      if (att > best.attainment) best = Trial{n, p, att, r->mean_qos, r->request_attainment};
    }
    return best;
  }

  // Smallest n in [1, max] with attainment ≥ target, by binary search (attainment is treated as
  // monotone in n); empty when even max devices fall short.
  std::optional<Trial> minimum(sim::SystemKind kind, Trial& at_max) {
    at_max = evaluate(kind, o_.max_devices);
    if (at_max.attainment < o_.target) return std::nullopt;
    std::int32_t lo = 1, hi = o_.max_devices;
    Trial best = at_max;
    while (lo < hi) {
      const std::int32_t mid = lo + (hi - lo) / 2;
      Trial t = evaluate(kind, mid);
      if (t.attainment >= o_.target) {
        best = t;
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return best;
  }

  [[nodiscard]] std::int64_t runs() const { return runs_; }

 private:
  const PlanOptions& o_;
  const sim::Workload& w_;
  const sim::ProfileTable& p_;
  std::int64_t runs_ = 0;
};

void run_plan(PlanOptions& o) {
  if (o.metric != "qos" && o.metric != "requests") {
    throw CommandError("--metric: expected 'qos' (the paper's time-based attainment) or 'requests', got '" + o.metric + "'", 2);
  }
  auto profiles = sim::ProfileTable::load(o.profiles);
  if (!profiles) throw CommandError(profiles.error().message, 2);
  auto workload = sim::make_workload(o.workload);
  if (!workload) throw CommandError(workload.error().message, 2);
  o.config.prefetch = !o.no_prefetch;
  std::vector<sim::SystemKind> kinds;
  std::stringstream list(o.systems == "all" ? "aegaeon,dedicated,request-level,request-level-srtf,static-mux" : o.systems);
  for (std::string name; std::getline(list, name, ',');) {
    auto k = sim::parse_system(name);
    if (!k) throw CommandError("--system: " + k.error().message, 2);
    kinds.push_back(*k);
  }
  std::fprintf(stderr, "plan: %zu requests, %zu models, %.0f s of arrivals; target %.0f%% %s attainment on %s\n",
               workload->requests.size(), workload->model_names.size(), workload->duration_s(), 100 * o.target,
               o.metric.c_str(), o.config.device.c_str());
  Planner planner(o, *workload, *profiles);
  std::printf("%-19s %8s %8s %8s %9s %9s %14s\n", "system", "devices", "prefill", "decode", "qos-att", "req-att",
              "models/device");
  std::string json = "[";
  for (auto kind : kinds) {
    Trial at_max;
    auto best = planner.minimum(kind, at_max);
    const std::string name = sim::to_string(kind);
    if (!best) {
      std::printf("%-19s %8s %8s %8s %8.1f%% %8.1f%%   (not reached with %d devices)\n", name.c_str(), "-", "-", "-",
                  100 * at_max.qos, 100 * at_max.requests, o.max_devices);
      json += std::string(json.size() > 1 ? "," : "") + "\n  {\"system\": \"" + name + "\", \"devices\": null}";
      continue;
    }
    const bool split = kind == sim::SystemKind::kAegaeon;
    const double per_device = static_cast<double>(workload->model_names.size()) / best->devices;
    std::printf("%-19s %8d %8s %8s %8.1f%% %8.1f%% %14.2f\n", name.c_str(), best->devices,
                split ? std::to_string(best->prefill).c_str() : "-",
                split ? std::to_string(best->devices - best->prefill).c_str() : "-", 100 * best->qos,
                100 * best->requests, per_device);
    char row[256];
    std::snprintf(row, sizeof row,
                  "\n  {\"system\": \"%s\", \"devices\": %d, \"prefill\": %d, \"attainment_qos\": %.4f, "
                  "\"attainment_requests\": %.4f, \"models_per_device\": %.3f}",
                  name.c_str(), best->devices, split ? best->prefill : 0, best->qos, best->requests, per_device);
    json += std::string(json.size() > 1 ? "," : "") + row;
  }
  json += "\n]\n";
  std::fprintf(stderr, "plan: %lld simulations\n", static_cast<long long>(planner.runs()));
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    if (!out || !(out << json)) throw CommandError(o.json_path + ": cannot write the JSON report", 1);
  }
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto opts = std::make_shared<PlanOptions>();
  auto* sub = app.add_subcommand(
      "plan",
      "How many devices do I need? Finds, by simulation on measured profiles, the fewest devices\n"
      "(and for aegaeon the prefill/decode split) reaching the target SLO attainment, for aegaeon\n"
      "and each baseline.\n"
      "Example:\n"
      "  aegaeon plan --trace sim/data/traces/synth-40-0.5-1.0-1.0.csv --device H800");
  auto* w = &opts->workload;
  auto* c = &opts->config;
  w->lengths_trace = sim::kBuiltinData;
  sub->add_option("--trace", w->trace, "Trace CSV in the artifact's format")->check(CLI::ExistingFile);
  sub->add_option("--lengths", w->lengths_trace, "Generated workloads: trace whose lengths are sampled; builtin: sim/data/traces/synth-40-0.5-1.0-1.0.csv")->capture_default_str();
  sub->add_option("--models", w->spec.models, "Generated workloads: number of models")->check(CLI::Range(1, 100000))->capture_default_str();
  sub->add_option("--rate", w->spec.rate_per_model_rps, "Generated workloads: mean req/s per model")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--duration", w->spec.duration_s, "Generated workloads: seconds of arrivals")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--zipf", w->spec.zipf_s, "Generated workloads: popularity exponent")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--cv", w->spec.burstiness_cv, "Generated workloads: inter-arrival CV (1 = Poisson)")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--seed", w->spec.seed, "Generated workloads: random seed")->capture_default_str();
  sub->add_option("--input-scale", w->spec.input_scale, "Generated workloads: multiply drawn prompt lengths")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--output-scale", w->spec.output_scale, "Generated workloads: multiply drawn output lengths")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--rate-scale", w->rate_scale, "Multiply every arrival rate by this factor")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--profiles", opts->profiles, "Measured profiles CSV; builtin: sim/data/profiles.csv")->capture_default_str();
  sub->add_option("--system", opts->systems, "Comma list of systems, or all")->capture_default_str();
  sub->add_option("--device", c->device, "Device kind: H100, H800, H20, A100, A10")->capture_default_str();
  sub->add_option("--max-devices", opts->max_devices, "Largest cluster to consider")->check(CLI::Range(2, 4096))->capture_default_str();
  sub->add_option("--target", opts->target, "Attainment to reach")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  sub->add_option("--metric", opts->metric, "qos (the paper's time-based attainment) or requests (TTFT and TPOT met)")->capture_default_str();
  sub->add_option("--ttft", c->slo.ttft_s, "SLO: time to first token, seconds")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--tbt", c->slo.tbt_s, "SLO: time between tokens, seconds")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--h2d-efficiency", c->h2d_efficiency, "Share of nominal host->device bandwidth copies reach")
      ->check(CLI::Range(0.01, 1.0))->capture_default_str();
  sub->add_flag("--no-prefetch", opts->no_prefetch, "aegaeon: do not prefetch the next model");
  add_policy_variant_flags(*sub, *c);
  sub->add_option("--json", opts->json_path, "Write the plan as JSON to this file");
  sub->callback([opts] { run_plan(*opts); });
}


}  // namespace aegaeon::cmd
