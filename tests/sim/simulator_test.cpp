// Simulator regression: small cases whose timelines are computed by hand from the cost model
// (not stored outputs of the simulator).
#include "sim/simulator.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sim/data.hpp"
#include "sim/model_catalog.hpp"
#include "sim/workload.hpp"

namespace aegaeon::sim {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kPrefillA = 0.05, kPrefillB = 1e-4, kStep = 0.02;

// Exact profiles: prefill = 0.05 + 1e-4·Σlen, decode step = 0.02 s flat, for the models the
// synth aliases map to, on H800.
ProfileTable exact_profiles() {
  ProfileTable t;
  for (const char* m : {"qwen2_5_7b", "yi1_5_9b_chat", "llama2_13b_chat"}) {
    for (double len : {16.0, 128.0, 1024.0}) {
      for (double b : {1.0, 4.0, 16.0}) {
        t.add(m, "H800", policy::ProfileSample{len, b, kPrefillA + kPrefillB * len * b, kStep});
      }
    }
  }
  return t;
}

Workload workload(std::vector<TraceRequest> reqs, int models) {
  Workload w;
  for (int i = 0; i < models; ++i) w.model_names.push_back("synth_model_0" + std::to_string(i));
  w.requests = std::move(reqs);
  return w;
}

SimConfig config(SystemKind kind, int devices, int prefill) {
  SimConfig c;
  c.system = kind;
  c.devices = devices;
  c.prefill_devices = prefill;
  c.h2d_efficiency = 1.0;
  c.slo = policy::Slo{10.0, 0.1};
  return c;
}

double qwen_load_s() { return static_cast<double>(find_model_shape("qwen2_5_7b")->weight_bytes()) / (64 * kGiB); }
double qwen_kv_s() { return static_cast<double>(find_model_shape("qwen2_5_7b")->kv_bytes_per_token()) / (64 * kGiB); }

TEST(ModelCatalog, ShapesMatchPublishedParameterCounts) {
  EXPECT_EQ(find_model_shape("qwen2_5_7b")->parameters(), 7615616512);   // Qwen2.5-7B model card
  EXPECT_EQ(find_model_shape("llama2_13b_chat")->parameters(), 13015864320);
  EXPECT_EQ(find_model_shape("yi1_5_9b_chat")->parameters(), 8829407232);
  EXPECT_EQ(find_model_shape("qwen2_5_7b")->kv_bytes_per_token(), 2 * 28 * 4 * 128 * 2);
  EXPECT_EQ(*resolve_model_alias("synth_model_17"), "yi1_5_9b_chat");
  EXPECT_EQ(*resolve_model_alias("synth_model_29"), "llama2_13b_chat");
  EXPECT_FALSE(resolve_model_alias("gpt-5").ok());
}

// One request (input 100, output 11) on 1 prefill + 1 decode device:
//   prefill device: load qwen (L), prefill 0.05 + 1e-4·100 = 0.06 -> first token at L + 0.06;
//   KV handoff 101 tokens (h = 101·kv); decode device: load qwen + swap in 101 tokens (L + h),
//   then 10 steps of 0.02 s. E2E = L + 0.06 + h + L + h + 0.2.
// A fixed split of one prefill and one decode device (the adaptive one would decode on both).
SimConfig fixed_split(int devices, int prefill) {
  SimConfig c = config(SystemKind::kAegaeon, devices, prefill);
  c.adaptive_split = false;
  return c;
}

TEST(Simulator, AegaeonSingleRequestTimelineByHand) {
  auto w = workload({{0.0, 0, 100, 11}}, 1);
  auto r = simulate(w, fixed_split(2, 1), exact_profiles());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const double L = qwen_load_s(), h = 101 * qwen_kv_s();
  const auto& o = r->requests[0];
  ASSERT_TRUE(o.served);
  EXPECT_NEAR(o.ttft_s, L + 0.06, 1e-6);
  EXPECT_NEAR(o.e2e_s, 2 * L + 0.06 + 2 * h + 0.2, 1e-6);
  EXPECT_NEAR(o.tpot_s, (L + 2 * h + 0.2) / 10, 1e-6);
  EXPECT_EQ(r->switches, 2);  // one load on each device
  // Token k is due at 10 s + k·0.1 s: the 0.22 s decode-side load eats slack but nothing is late.
  EXPECT_DOUBLE_EQ(o.qos, 1.0);
  EXPECT_TRUE(o.met_slo);
}

// Request-level, one device, two models: r0 (model 0) at t=0, r1 (model 1) at t=0.001, each
// input 100 / output 11. r0: load L, prefill 0.06, 10 steps -> done at L + 0.26. r1 waits in the
// global queue until the device drains, then load L (model 1 is qwen too), prefill 0.06:
// TTFT(r1) = 2L + 0.32 − 0.001.
TEST(Simulator, RequestLevelSwitchesOnlyWhenIdle) {
  auto w = workload({{0.0, 0, 100, 11}, {0.001, 1, 100, 11}}, 2);
  auto r = simulate(w, config(SystemKind::kRequestLevel, 1, 0), exact_profiles());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const double L = qwen_load_s();
  EXPECT_NEAR(r->requests[0].e2e_s, L + 0.26, 1e-6);
  EXPECT_NEAR(r->requests[1].ttft_s, 2 * L + 0.32 - 0.001, 1e-6);
  EXPECT_EQ(r->switches, 2);
}

// The paper's device (one model and one batch at a time).
SimConfig paper_config(int devices, int prefill) {
  SimConfig c = config(SystemKind::kAegaeon, devices, prefill);
  c.elastic_memory = false;
  c.immediate_turns = false;
  c.bounded_rounds = false;
  return c;
}

// The paper's aegaeon with the same two requests on 1P + 1D switches between the models token
// by token: both finish long before request-level would serve the second one in line.
TEST(Simulator, AegaeonInterleavesModelsOnOneDecodeDevice) {
  auto w = workload({{0.0, 0, 100, 200}, {0.001, 1, 100, 200}}, 2);
  auto aeg = simulate(w, paper_config(2, 1), exact_profiles());
  ASSERT_TRUE(aeg.ok());
  EXPECT_TRUE(aeg->requests[0].served && aeg->requests[1].served);
  EXPECT_GT(aeg->switches, 4);  // decode alternates models, several rounds
  // Quotas keep the mean TBT within SLO: both requests meet TPOT ≤ 0.1 s.
  EXPECT_TRUE(aeg->requests[0].met_slo);
  EXPECT_TRUE(aeg->requests[1].met_slo);
}

// The default keeps both models resident on the decode device (2 × 14.2 GiB fit in 72 GiB):
// each is loaded once per device (prefill and decode), never again, and their turns interleave
// step by step, so both keep TPOT = 2 steps = 0.04 s.
TEST(Simulator, AegaeonSwitchesOnlyOnAMissWhenModelsFit) {
  auto w = workload({{0.0, 0, 100, 200}, {0.001, 1, 100, 200}}, 2);
  auto aeg = simulate(w, fixed_split(2, 1), exact_profiles());
  ASSERT_TRUE(aeg.ok()) << aeg.error().message;
  EXPECT_EQ(aeg->switches, 4);
  for (const auto& o : aeg->requests) {
    ASSERT_TRUE(o.served);
    EXPECT_TRUE(o.met_slo);
    EXPECT_LT(o.tpot_s, 0.05);
  }
  auto paper = simulate(w, paper_config(2, 1), exact_profiles());
  ASSERT_TRUE(paper.ok());
  EXPECT_GT(paper->switches, aeg->switches);  // the paper's device reloads at every turn
}

// The adaptive split: while the models in demand fit on the devices, the prefill device decodes
// too, so a prompt is prefilled where it will decode (one load, no KV handoff): TTFT = L + 0.06,
// where the fixed split loads the model on both devices and hands the KV over.
TEST(Simulator, AdaptiveSplitDecodesOnEveryDeviceWhileModelsFit) {
  auto w = workload({{0.0, 0, 100, 11}}, 1);
  auto r = simulate(w, config(SystemKind::kAegaeon, 2, 1), exact_profiles());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const double L = qwen_load_s();
  EXPECT_EQ(r->switches, 1);
  EXPECT_NEAR(r->requests[0].ttft_s, L + 0.06, 1e-6);
  EXPECT_NEAR(r->requests[0].e2e_s, L + 0.06 + 0.2, 1e-6);
  auto fixed = simulate(w, fixed_split(2, 1), exact_profiles());
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->switches, 2);
}

// Without prefill devices, decode devices prefill the prompts themselves: one load per model.
TEST(Simulator, AegaeonWithoutPrefillDevicesPrefillsOnDecodeDevices) {
  auto w = workload({{0.0, 0, 100, 11}, {0.5, 0, 100, 11}}, 1);
  auto r = simulate(w, config(SystemKind::kAegaeon, 1, 0), exact_profiles());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const double L = qwen_load_s();
  EXPECT_EQ(r->switches, 1);
  // r0: load, prefill 0.06, first token; r1 arrives after r0 ended and finds the model resident.
  EXPECT_NEAR(r->requests[0].ttft_s, L + 0.06, 1e-6);
  EXPECT_NEAR(r->requests[1].ttft_s, 0.06, 1e-6);
  EXPECT_FALSE(simulate(w, paper_config(1, 0), exact_profiles()).ok());  // the paper's needs one
}

TEST(Simulator, DedicatedLeavesModelsBeyondDevicesUnserved) {
  auto w = workload({{0.0, 0, 100, 11}, {0.0, 1, 100, 11}}, 2);
  auto r = simulate(w, config(SystemKind::kDedicated, 1, 0), exact_profiles());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->requests[0].served);
  EXPECT_FALSE(r->requests[1].served);
  EXPECT_EQ(r->unserved, 1);
  EXPECT_EQ(r->switches, 0);
  EXPECT_DOUBLE_EQ(r->request_attainment, 0.5);
  // Dedicated never loads: the weights are resident, so r0 is prefill + 10 steps.
  EXPECT_NEAR(r->requests[0].e2e_s, 0.06 + 0.2, 1e-9);
}

// Prefetch loads the next model during the running turn, so the decode device waits less at
// each switch: less switch time, same tokens.
TEST(Simulator, PrefetchShortensDecodeSwitches) {
  auto w = workload({{0.0, 0, 100, 400}, {0.001, 1, 100, 400}}, 2);
  auto with = simulate(w, paper_config(2, 1), exact_profiles());
  auto c = paper_config(2, 1);
  c.prefetch = false;
  auto without = simulate(w, c, exact_profiles());
  ASSERT_TRUE(with.ok() && without.ok());
  EXPECT_LT(with->switch_share * with->makespan_s, 0.8 * without->switch_share * without->makespan_s);
  EXPECT_LT(with->makespan_s, without->makespan_s);
}

// Static multiplexing packs weights into 70% of 90% of 80 GiB = 50.4 GiB: three Qwen2.5-7B
// (3 × 14.2 GiB) fit on one device, a fourth does not and is unserved. No switches ever.
TEST(Simulator, StaticMuxPacksWhatFitsAndNeverSwitches) {
  auto w = workload({{0.0, 0, 100, 11}, {0.0, 1, 100, 11}, {0.0, 2, 100, 11}, {0.0, 3, 100, 11}}, 4);
  auto r = simulate(w, config(SystemKind::kStaticMux, 1, 0), exact_profiles());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->unserved, 1);
  EXPECT_EQ(r->switches, 0);
  EXPECT_DOUBLE_EQ(r->request_attainment, 0.75);
}

TEST(Simulator, PaperAdmissionRejectsWhenPrefillQueueBreaksTtft) {
  // 40 long prompts of one model at once on the paper's 1P+1D with TTFT 1.2 s: prefill is 0.05 +
  // 1e-4·4000 = 0.45 s each after a 0.22 s load: r0 is predicted 0.67 s, r1 1.12 s (admitted),
  // r2 1.57 s (429) and so on: 38 rejections. (Counting the in-flight load twice would reject r1
  // too.)
  std::vector<TraceRequest> reqs;
  for (int i = 0; i < 40; ++i) reqs.push_back({0.0, 0, 4000, 5});
  auto w = workload(reqs, 1);
  auto c = paper_config(2, 1);
  c.slo.ttft_s = 1.2;
  auto r = simulate(w, c, exact_profiles());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rejected, 38);
  EXPECT_TRUE(r->requests[0].met_slo);
  EXPECT_TRUE(r->requests[1].met_slo);
}

// One decode device, TBT SLO 0.03 s: a batch's 0.02 s step is 2/3 of it, so the device keeps the
// SLO for one batch only (α of two is 4/3). r0 (model 0, 200 tokens) decodes from about 0.3 s
// (after a 0.22 s load and its prefill, on whichever device) for 4 s; r1 (model 1) at 0.5 s finds
// no device that would keep its SLO.
TEST(Simulator, ElasticAdmissionTurnsAwayAPromptStillWaitingAtItsDeadline) {
  auto w = workload({{0.0, 0, 100, 200}, {0.5, 1, 100, 11}}, 2);
  for (int prefill : {0, 1}) {
    SCOPED_TRACE(prefill);
    auto c = fixed_split(1 + prefill, prefill);
    c.slo = policy::Slo{1.0, 0.03};
    auto r = simulate(w, c, exact_profiles());
    ASSERT_TRUE(r.ok()) << r.error().message;
    // r1 waits unprefilled (a prefill device would stream its first token, then stall it) and is
    // turned away at 1.5 s; r0 never shares its device and keeps its SLO.
    EXPECT_EQ(r->rejected, 1);
    EXPECT_TRUE(r->requests[1].rejected);
    EXPECT_TRUE(r->requests[0].met_slo);
    EXPECT_EQ(r->switches, 1 + prefill);  // model 0 only, once per device

    // Without admission r1 is served, however late: after r0, or by time-sharing the device.
    c.admission.enabled = false;
    auto all = simulate(w, c, exact_profiles());
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->rejected, 0);
    EXPECT_TRUE(all->requests[1].served);
    EXPECT_FALSE(all->requests[1].met_slo);
  }
}

// Request-level, one device: r1 (model 1) waits in the global queue until r0 (model 0, 200
// tokens, done at L + 4.04) drains the device, past its TTFT deadline of 1.001 s: turned away.
TEST(Simulator, BaselinesTurnAwayAPromptStillWaitingAtItsDeadline) {
  auto w = workload({{0.0, 0, 100, 200}, {0.001, 1, 100, 11}}, 2);
  auto c = config(SystemKind::kRequestLevel, 1, 0);
  c.slo.ttft_s = 1.0;
  auto r = simulate(w, c, exact_profiles());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rejected, 1);
  EXPECT_TRUE(r->requests[1].rejected);
  EXPECT_EQ(r->switches, 1);
  c.admission.enabled = false;
  auto all = simulate(w, c, exact_profiles());
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->requests[1].served);
  EXPECT_EQ(all->switches, 2);
}

TEST(Workload, TraceErrorsNameFileLineAndField) {
  const auto path = std::filesystem::temp_directory_path() / "aegaeon_bad_trace.csv";
  {
    std::ofstream out(path);
    out << "Request Time,Model Name,Input Length,Output Length\n00:00:01.000,m,12,34\n00:00:02.000,m,abc,3\n";
  }
  auto w = load_trace(path.string());
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message.find(":3: field 'Input Length'"), std::string::npos) << w.error().message;
  std::filesystem::remove(path);
}

TEST(Workload, GeneratedPoissonRateAndPopularity) {
  Workload lengths = workload({{0.0, 0, 10, 20}, {1.0, 0, 30, 40}}, 1);
  WorkloadSpec spec;
  spec.models = 2;
  spec.rate_per_model_rps = 1.0;
  spec.duration_s = 1000.0;
  spec.zipf_s = 1.0;  // weights 1 : 1/2 -> rates 4/3 and 2/3 req/s
  spec.seed = 7;
  auto w = generate_workload(spec, lengths);
  ASSERT_TRUE(w.ok());
  int m0 = 0;
  for (const auto& r : w->requests) m0 += r.model == 0;
  const int m1 = static_cast<int>(w->requests.size()) - m0;
  EXPECT_NEAR(m0, 1333, 4 * std::sqrt(1333.0));  // Poisson: 4 sigma
  EXPECT_NEAR(m1, 667, 4 * std::sqrt(667.0));
}

// The real profiles (when the artifact is present): PAPER-NOTES quotes Qwen2.5-7B on H100 at
// ≈8.5 ms per decode step for 1 × 512 context and ≈34 ms for 32 × 1024.
TEST(ProfileTable, FitsArtifactProfilesToQuotedStepTimes) {
  const std::string path = "/work/shared/data/aegaeon-artifact/profiles.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  auto t = ProfileTable::load(path);
  ASSERT_TRUE(t.ok()) << t.error().message;
  auto est = t->fit("qwen2_5_7b", "H100");
  ASSERT_TRUE(est.ok());
  // And a measured prefill row: 1 x 1024 tokens took 25 ms.
  EXPECT_NEAR(est->prefill().single_s(1024), 0.025, 0.025 * 0.15);
  EXPECT_NEAR(est->decode().estimate_s(512, 1), 0.0085, 0.0085 * 0.2);
  EXPECT_NEAR(est->decode().estimate_s(32 * 1024, 32), 0.034, 0.034 * 0.2);
  EXPECT_FALSE(t->fit("llama2_13b_chat", "A10").ok());
}

}  // namespace
}  // namespace aegaeon::sim

namespace aegaeon::sim {
namespace {

// The product ships its data: the built-in profiles and lengths load from any directory.
TEST(SimData, BuiltinProfilesAndLengthsLoad) {
  auto profiles = ProfileTable::load(kBuiltinData);
  ASSERT_TRUE(profiles.ok()) << profiles.error().message;
  auto lengths = load_trace(kBuiltinData);
  ASSERT_TRUE(lengths.ok()) << lengths.error().message;
  EXPECT_EQ(lengths->requests.size(), 1103u);
  std::istringstream bad("Request Time,Model Name,Input Length,Output Length\n0.5,m,12,x\n");
  auto r = parse_trace(bad, "t.csv");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("t.csv:2"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace aegaeon::sim
