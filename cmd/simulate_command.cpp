// `aegaeon simulate`: runs aegaeon's scheduling policies (and the baselines) in virtual time on
// measured GPU profiles over a trace or a generated workload, and reports SLO attainment.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
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

struct SimulateOptions {
  sim::WorkloadSource workload;
  std::string profiles = sim::kBuiltinData;
  std::string systems = "aegaeon";
  std::string json_path;
  bool per_request = false;
  bool no_prefetch = false;
  sim::SimConfig config;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void run_simulate(SimulateOptions& o) {
  auto profiles = sim::ProfileTable::load(o.profiles);
  if (!profiles) throw CommandError(profiles.error().message, 2);
  auto workload = sim::make_workload(o.workload);
  if (!workload) throw CommandError(workload.error().message, 2);
  std::vector<sim::SystemKind> kinds;
  for (const auto& name : split_list(o.systems == "all" ? "aegaeon,dedicated,request-level,request-level-srtf,static-mux"
                                                          : o.systems)) {
    auto k = sim::parse_system(name);
    if (!k) throw CommandError("--system: " + k.error().message, 2);
    kinds.push_back(*k);
  }
  o.config.prefetch = !o.no_prefetch;
  std::fprintf(stderr, "simulate: %zu requests, %zu models, %.0f s of arrivals on %d x %s\n",
               workload->requests.size(), workload->model_names.size(), workload->duration_s(),
               o.config.devices, o.config.device.c_str());
  std::vector<sim::SimResult> results;
  std::string json = "[\n";
  for (auto kind : kinds) {
    sim::SimConfig c = o.config;
    c.system = kind;
    auto r = sim::simulate(*workload, c, *profiles);
    if (!r) throw CommandError(r.error().message, 2);
    std::fprintf(stderr, "simulate: %s: %lld events in %.3f s (%.2f M events/s)\n", r->system.c_str(),
                 static_cast<long long>(r->events), r->wall_s, static_cast<double>(r->events) / r->wall_s / 1e6);
    json += (results.empty() ? "" : ",\n") + sim::to_json(*r, c, o.per_request);
    results.push_back(std::move(*r));
  }
  json += "\n]\n";
  std::printf("%s", sim::format_table(results).c_str());
  if (o.json_path == "-") {
    std::printf("%s", json.c_str());
  } else if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    if (!out || !(out << json)) throw CommandError(o.json_path + ": cannot write the JSON report", 1);
  }
}

}  // namespace

void add_simulate_command(CLI::App& app) {
  auto opts = std::make_shared<SimulateOptions>();
  auto* sub = app.add_subcommand(
      "simulate",
      "Simulate serving a multi-model workload in virtual time: aegaeon's token-level policies\n"
      "(the same code the actors run) and baselines, on devices modelled from measured profiles.\n"
      "Reports SLO attainment (the paper's time-based qos and the request-level share), goodput,\n"
      "utilization and switches per second.\n"
      "Examples:\n"
      "  aegaeon simulate --trace sim/data/traces/synth-40-0.1-1.0-1.0.csv --system all\n"
      "  aegaeon simulate --models 40 --rate 0.1 --duration 3600 --lengths TRACE.csv --json out.json");
  auto* w = &opts->workload;
  auto* c = &opts->config;
  sub->add_option("--trace", w->trace, "Trace CSV in the artifact's format (Request Time,Model Name,Input Length,Output Length)")
      ->check(CLI::ExistingFile);
  sub->add_option("--lengths", w->lengths_trace, "Generated workloads: trace whose (input, output) lengths are sampled; builtin: sim/data/traces/synth-40-0.5-1.0-1.0.csv")
      ->capture_default_str();
  w->lengths_trace = sim::kBuiltinData;
  sub->add_option("--models", w->spec.models, "Generated workloads: number of models")->check(CLI::Range(1, 100000))->capture_default_str();
  sub->add_option("--rate", w->spec.rate_per_model_rps, "Generated workloads: mean arrival rate per model, req/s")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--duration", w->spec.duration_s, "Generated workloads: seconds of arrivals")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--zipf", w->spec.zipf_s, "Generated workloads: popularity exponent (0 = uniform)")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--cv", w->spec.burstiness_cv, "Generated workloads: inter-arrival CV (1 = Poisson, >1 bursty Gamma)")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--seed", w->spec.seed, "Generated workloads: random seed")->capture_default_str();
  sub->add_option("--input-scale", w->spec.input_scale, "Generated workloads: multiply drawn prompt lengths")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--output-scale", w->spec.output_scale, "Generated workloads: multiply drawn output lengths")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--rate-scale", w->rate_scale, "Multiply every arrival rate by this factor")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--profiles", opts->profiles, "Measured profiles CSV (model,device,input_len,batch_size,prefill_s,decode_step_s); builtin: sim/data/profiles.csv")->capture_default_str();
  sub->add_option("--system", opts->systems,
                  "Comma list of systems: aegaeon, dedicated, request-level, request-level-srtf, static-mux, or all")->capture_default_str();
  sub->add_option("--device", c->device, "Device kind: H100, H800, H20, A100, A10")->capture_default_str();
  sub->add_option("--devices", c->devices, "Number of devices")->check(CLI::Range(1, 100000))->capture_default_str();
  sub->add_option("--prefill", c->prefill_devices,
                  "aegaeon: prefill devices (the rest decode, and prefill the models they hold; the paper used 6 of 16). "
                  "With 1, that device decodes too while the models in demand and their KV fit in memory "
                  "(--no-adaptive-split keeps it prefilling)")
      ->capture_default_str();
  sub->add_option("--ttft", c->slo.ttft_s, "SLO: time to first token, seconds")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--tbt", c->slo.tbt_s, "SLO: time between tokens, seconds")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--h2d-efficiency", c->h2d_efficiency, "Share of nominal host->device bandwidth weight/KV copies reach")
      ->check(CLI::Range(0.01, 1.0))->capture_default_str();
  sub->add_option("--max-batch", c->max_batch_size, "Largest decode batch")->check(CLI::Range(1, 4096))->capture_default_str();
  sub->add_flag("--no-prefetch", opts->no_prefetch, "aegaeon: do not prefetch the next model during a turn");
  add_policy_variant_flags(*sub, *c);
  sub->add_option("--admission-alpha", c->admission.alpha_limit,
                  "aegaeon with --no-elastic-memory: admission rejects when the round's alpha would exceed this")
      ->capture_default_str();
  sub->add_option("--json", opts->json_path, "Write the JSON report to this file ('-' for stdout)");
  sub->add_flag("--per-request", opts->per_request, "Include one row per request in the JSON report");
  sub->add_flag("--progress", c->progress, "Print progress to stderr on long runs");
  sub->callback([opts] { run_simulate(*opts); });
}


}  // namespace aegaeon::cmd
