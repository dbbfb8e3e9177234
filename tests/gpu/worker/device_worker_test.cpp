// DeviceWorker on real synthesized models: switching, prefetch adoption, KV swap and handoff
// must never change a sequence's tokens; errors name what was wrong.
#include "gpu/worker/device_worker.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_synthesizer.hpp"

namespace aegaeon::worker {
namespace {

using core::ErrorCode;
const core::SamplingParams kGreedy = core::SamplingParams::greedy();

constexpr int kSteps = 12;

// A temp folder with three small models: "a" and "b" share a KV shape (Llama, hidden 64,
// 2 layers), "c" has another (Qwen2, hidden 96, 3 layers). Written once per test binary.
class Models {
 public:
  static const Models& get() {
    static const Models models;
    return models;
  }
  std::vector<ModelSpec> specs;
  std::shared_ptr<const HostModelCache> cache;

 private:
  Models() {
    dir_ = std::filesystem::temp_directory_path() /
           ("aegaeon_worker_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    struct Def {
      const char* name;
      model::Architecture arch;
      int hidden, layers;
      std::uint64_t seed;
    };
    for (const Def& d : {Def{"a", model::Architecture::kLlama, 64, 2, 11},
                         Def{"b", model::Architecture::kLlama, 64, 2, 22},
                         Def{"c", model::Architecture::kQwen2, 96, 3, 33}}) {
      model::SynthSpec spec;
      spec.config = model::synth_config(d.arch, d.hidden, d.layers, 256);
      spec.seed = d.seed;
      auto written = model::write_synthetic_model(dir_ / d.name, spec);
      EXPECT_TRUE(written.ok()) << written.error().message;
      specs.push_back({d.name, dir_ / d.name});
    }
    auto loaded = HostModelCache::load(specs);
    EXPECT_TRUE(loaded.ok()) << loaded.error().message;
    if (loaded.ok()) cache = *loaded;
  }
  ~Models() { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

std::unique_ptr<DeviceWorker> make_worker(DeviceWorkerOptions options = {}) {
  options.kv_bytes = std::uint64_t{4} << 20;
  options.host_kv_blocks = 256;
  auto worker = DeviceWorker::create(options, Models::get().cache);
  EXPECT_TRUE(worker.ok()) << worker.error().message;
  return worker.ok() ? std::move(worker).value() : nullptr;
}

std::vector<std::int32_t> prompt(int seed, int length = 9) {
  std::vector<std::int32_t> p;
  for (int i = 0; i < length; ++i) p.push_back((seed * 37 + i * 11 + 3) % 256);
  return p;
}

std::int32_t one(const core::Result<std::vector<SampledToken>>& r) {
  EXPECT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.ok() ? r->size() : 0U, 1U);
  return r.ok() && r->size() == 1 ? r->front().token : -1;
}

// kSteps tokens of one sequence on a fresh worker, no switching.
std::vector<std::int32_t> reference(ModelId model, SeqId seq, const std::vector<std::int32_t>& p,
                                    core::SamplingParams sampling = kGreedy) {
  auto worker = make_worker();
  EXPECT_TRUE(worker->switch_model(model).ok());
  std::vector<std::int32_t> out;
  out.push_back(one(worker->prefill(std::vector<PrefillItem>{{seq, p, sampling}})));
  const std::vector<SeqId> ids{seq};
  while (static_cast<int>(out.size()) < kSteps) out.push_back(one(worker->decode_step(ids)));
  return out;
}

TEST(DeviceWorker, CacheRecordsModelInfo) {
  const auto& cache = *Models::get().cache;
  ASSERT_EQ(cache.size(), 3);
  EXPECT_EQ(cache.find("b"), std::optional<ModelId>(1));
  EXPECT_FALSE(cache.find("zzz").has_value());
  const ModelInfo& a = cache.info(0);
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.vocab_size, 256);
  EXPECT_EQ(a.max_context_tokens, 4096);
  // 2 layers x K,V x 2 kv heads x head_dim 16 x 4 bytes.
  EXPECT_EQ(a.kv_bytes_per_token, 2U * 2U * 2U * 16U * 4U);
  EXPECT_GT(a.weight_bytes, 256U * 64U * 4U);
  EXPECT_NE(cache.info(2).kv_bytes_per_token, a.kv_bytes_per_token);
}

TEST(DeviceWorker, SwitchingBetweenTokensKeepsGreedyTokens) {
  const auto p1 = prompt(1);
  const auto p2 = prompt(2, 20);
  const auto ref_a = reference(0, 1, p1);
  const auto ref_b = reference(1, 2, p2);
  ASSERT_NE(ref_a, ref_b);

  auto worker = make_worker({.weight_slots = 1});
  auto first = worker->switch_model(0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->bytes_copied, Models::get().cache->info(0).weight_bytes);
  EXPECT_FALSE(first->from_prefetch);
  std::vector<std::int32_t> got_a{one(worker->prefill(std::vector<PrefillItem>{{1, p1, kGreedy}}))};
  const std::vector<SeqId> s1{1}, s2{2};
  for (int i = 0; i < 3; ++i) got_a.push_back(one(worker->decode_step(s1)));
  // Turn of model b: a's KV leaves the device, the weights are replaced.
  ASSERT_TRUE(worker->swap_out(1).ok());
  auto to_b = worker->switch_model(1);
  ASSERT_TRUE(to_b.ok()) << to_b.error().message;
  EXPECT_EQ(to_b->bytes_copied, Models::get().cache->info(1).weight_bytes);
  EXPECT_EQ(worker->resident_model(), std::optional<ModelId>(1));
  std::vector<std::int32_t> got_b{one(worker->prefill(std::vector<PrefillItem>{{2, p2, kGreedy}}))};
  for (int i = 0; i < 5; ++i) got_b.push_back(one(worker->decode_step(s2)));
  ASSERT_TRUE(worker->swap_out(2).ok());
  // Back to a, and forth again until both finish.
  ASSERT_TRUE(worker->switch_model(0).ok());
  ASSERT_TRUE(worker->swap_in(1).ok());
  while (static_cast<int>(got_a.size()) < kSteps) got_a.push_back(one(worker->decode_step(s1)));
  EXPECT_TRUE(worker->kv_ready(1));
  worker->release(1);
  ASSERT_TRUE(worker->switch_model(1).ok());
  ASSERT_TRUE(worker->swap_in(2).ok());
  while (static_cast<int>(got_b.size()) < kSteps) got_b.push_back(one(worker->decode_step(s2)));
  EXPECT_EQ(got_a, ref_a);
  EXPECT_EQ(got_b, ref_b);
  worker->release(2);
  EXPECT_EQ(worker->kv_usage(), 0.0);
  const WorkerCounters counters = worker->counters();
  EXPECT_EQ(counters.switches, 4U);
  EXPECT_EQ(counters.switches_adopted, 0U);
  EXPECT_EQ(counters.weights_copy_bytes, 2 * Models::get().cache->info(0).weight_bytes +
                                             2 * Models::get().cache->info(1).weight_bytes);
  // Sequence 1 (9 + 3 tokens: 1 block) and 2 (20 + 5 tokens: 2 blocks) went out and back once.
  EXPECT_EQ(counters.kv_swap_bytes, 2 * 3 * 16 * Models::get().cache->info(0).kv_bytes_per_token);
}

TEST(DeviceWorker, SwitchingAcrossKvShapesKeepsTokens) {
  const auto p1 = prompt(3);
  const auto p2 = prompt(4);
  const auto ref_a = reference(0, 1, p1);
  const auto ref_c = reference(2, 2, p2);
  auto worker = make_worker();
  EXPECT_NE(worker->kv_capacity_tokens(0), worker->kv_capacity_tokens(2));
  EXPECT_EQ(worker->kv_capacity_tokens(0), worker->kv_capacity_tokens(1));
  const std::vector<SeqId> s1{1}, s2{2};
  std::vector<std::int32_t> got_a, got_c;
  ASSERT_TRUE(worker->switch_model(0).ok());
  got_a.push_back(one(worker->prefill(std::vector<PrefillItem>{{1, p1, kGreedy}})));
  for (int round = 0; static_cast<int>(got_a.size()) < kSteps || static_cast<int>(got_c.size()) < kSteps; ++round) {
    ASSERT_TRUE(worker->swap_out(1).ok());
    ASSERT_TRUE(worker->switch_model(2).ok());
    if (round == 0) {
      got_c.push_back(one(worker->prefill(std::vector<PrefillItem>{{2, p2, kGreedy}})));
    } else {
      ASSERT_TRUE(worker->swap_in(2).ok());
    }
    for (int i = 0; i < 3 && static_cast<int>(got_c.size()) < kSteps; ++i) {
      got_c.push_back(one(worker->decode_step(s2)));
    }
    ASSERT_TRUE(worker->swap_out(2).ok());
    ASSERT_TRUE(worker->switch_model(0).ok());
    ASSERT_TRUE(worker->swap_in(1).ok());
    for (int i = 0; i < 3 && static_cast<int>(got_a.size()) < kSteps; ++i) {
      got_a.push_back(one(worker->decode_step(s1)));
    }
  }
  EXPECT_EQ(got_a, ref_a);
  EXPECT_EQ(got_c, ref_c);
}

// With a slot per model, two models of different KV geometries interleave step by step: each
// is copied once, no KV moves, and both streams equal their references.
TEST(DeviceWorker, ResidentModelsOfTwoKvShapesInterleaveWithoutCopies) {
  const auto p1 = prompt(3);
  const auto p2 = prompt(4);
  const auto ref_a = reference(0, 1, p1);
  const auto ref_c = reference(2, 2, p2);
  auto worker = make_worker({.weight_slots = 0});
  EXPECT_EQ(worker->arena_layout().weight_slots, static_cast<std::uint64_t>(Models::get().cache->size()));
  const std::vector<SeqId> s1{1}, s2{2};
  ASSERT_TRUE(worker->switch_model(0).ok());
  std::vector<std::int32_t> got_a{one(worker->prefill(std::vector<PrefillItem>{{1, p1, kGreedy}}))};
  ASSERT_TRUE(worker->switch_model(2).ok());
  std::vector<std::int32_t> got_c{one(worker->prefill(std::vector<PrefillItem>{{2, p2, kGreedy}}))};
  while (static_cast<int>(got_a.size()) < kSteps) {
    ASSERT_TRUE(worker->switch_model(0).ok());
    got_a.push_back(one(worker->decode_step(s1)));
    ASSERT_TRUE(worker->switch_model(2).ok());
    got_c.push_back(one(worker->decode_step(s2)));
  }
  EXPECT_EQ(got_a, ref_a);
  EXPECT_EQ(got_c, ref_c);
  const auto counters = worker->counters();
  EXPECT_EQ(counters.switches, 2U);
  EXPECT_EQ(counters.weights_copy_bytes,
            Models::get().cache->info(0).weight_bytes + Models::get().cache->info(2).weight_bytes);
  EXPECT_EQ(counters.kv_swap_bytes, 0U);
  EXPECT_EQ(worker->resident_models(), (std::vector<ModelId>{0, 2}));
}

// Two slots, three models: activating a resident model copies nothing; a miss takes a free
// slot, else the least recently active one; a forgotten model frees its slot.
TEST(DeviceWorker, WeightSlotsEvictTheLeastRecentlyActiveModel) {
  auto worker = make_worker({.weight_slots = 2});
  auto copies = [&] { return worker->counters().switches; };
  ASSERT_TRUE(worker->switch_model(0).ok());
  ASSERT_TRUE(worker->switch_model(1).ok());
  EXPECT_EQ(copies(), 2U);
  auto back = worker->switch_model(0);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->bytes_copied, 0U);
  EXPECT_EQ(back->resident, (std::vector<ModelId>{0, 1}));
  EXPECT_EQ(copies(), 2U);
  auto miss = worker->switch_model(2);  // 1 was active longest ago
  ASSERT_TRUE(miss.ok());
  EXPECT_GT(miss->bytes_copied, 0U);
  EXPECT_EQ(miss->resident, (std::vector<ModelId>{0, 2}));
  worker->forget_model(0);
  EXPECT_EQ(worker->resident_models(), (std::vector<ModelId>{2}));
  auto again = worker->switch_model(1);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->resident, (std::vector<ModelId>{1, 2}));
  EXPECT_EQ(worker->resident_model(), std::optional<ModelId>(1));
  // Greedy tokens of the model copied last match the reference.
  const auto p1 = prompt(6);
  const auto ref = reference(1, 1, p1);
  std::vector<std::int32_t> got{one(worker->prefill(std::vector<PrefillItem>{{1, p1, kGreedy}}))};
  const std::vector<SeqId> s1{1};
  while (static_cast<int>(got.size()) < kSteps) got.push_back(one(worker->decode_step(s1)));
  EXPECT_EQ(got, ref);
}

TEST(DeviceWorker, PrefetchIsAdoptedWithoutCopying) {
  const auto p1 = prompt(5);
  const auto ref_b = reference(1, 1, p1);
  const auto ref_a = reference(0, 2, p1);
  auto worker = make_worker();
  ASSERT_TRUE(worker->switch_model(0).ok());
  ASSERT_TRUE(worker->prefetch(1).ok());
  ASSERT_TRUE(worker->prefetch(1).ok());  // no-op while in flight
  // Compute on the resident model overlaps the prefetch.
  std::vector<std::int32_t> got_a{one(worker->prefill(std::vector<PrefillItem>{{2, p1, kGreedy}}))};
  ASSERT_TRUE(worker->swap_out(2).ok());
  auto to_b = worker->switch_model(1);
  ASSERT_TRUE(to_b.ok()) << to_b.error().message;
  EXPECT_TRUE(to_b->from_prefetch);
  EXPECT_EQ(to_b->bytes_copied, 0U);
  EXPECT_EQ(worker->counters().switches_adopted, 1U);
  // The first switch copied a; the prefetch copied b once.
  EXPECT_EQ(worker->counters().weights_copy_bytes, Models::get().cache->info(0).weight_bytes +
                                                        Models::get().cache->info(1).weight_bytes);
  std::vector<std::int32_t> got_b{one(worker->prefill(std::vector<PrefillItem>{{1, p1, kGreedy}}))};
  const std::vector<SeqId> s1{1}, s2{2};
  for (int i = 0; i < 4; ++i) got_b.push_back(one(worker->decode_step(s1)));
  // And back: a never left its slot, so a prefetch of it is a no-op and the switch copies and
  // adopts nothing.
  ASSERT_TRUE(worker->prefetch(0).ok());
  ASSERT_TRUE(worker->swap_out(1).ok());
  auto to_a = worker->switch_model(0);
  ASSERT_TRUE(to_a.ok());
  EXPECT_FALSE(to_a->from_prefetch);
  EXPECT_EQ(to_a->bytes_copied, 0U);
  EXPECT_EQ(worker->counters().switches, 2U);
  ASSERT_TRUE(worker->swap_in(2).ok());
  while (static_cast<int>(got_a.size()) < kSteps) got_a.push_back(one(worker->decode_step(s2)));
  // A prefetch goes over the slot of the model least recently active (b: c replaces it), and
  // one that is not adopted (c) is simply overwritten by the next one (b).
  ASSERT_TRUE(worker->prefetch(2).ok());
  ASSERT_TRUE(worker->prefetch(1).ok());
  worker->release(2);
  auto again_b = worker->switch_model(1);
  ASSERT_TRUE(again_b.ok());
  EXPECT_TRUE(again_b->from_prefetch);
  ASSERT_TRUE(worker->swap_in(1).ok());
  while (static_cast<int>(got_b.size()) < kSteps) got_b.push_back(one(worker->decode_step(s1)));
  EXPECT_EQ(got_a, ref_a);
  EXPECT_EQ(got_b, ref_b);
  // Without a prefetch region, prefetch is a hint that changes nothing.
  auto plain = make_worker({.weight_slots = 1});
  ASSERT_TRUE(plain->switch_model(0).ok());
  ASSERT_TRUE(plain->prefetch(1).ok());
  auto copied = plain->switch_model(1);
  ASSERT_TRUE(copied.ok());
  EXPECT_FALSE(copied->from_prefetch);
  EXPECT_GT(copied->bytes_copied, 0U);
}

TEST(DeviceWorker, SwapOutAndInMidGenerationKeepsTokens) {
  const auto p1 = prompt(6, 40);  // several blocks
  const auto p2 = prompt(7, 17);
  const auto ref1 = reference(0, 1, p1);
  const auto ref2 = reference(0, 2, p2);
  auto worker = make_worker();
  ASSERT_TRUE(worker->switch_model(0).ok());
  auto first = worker->prefill(std::vector<PrefillItem>{{1, p1, kGreedy}, {2, p2, kGreedy}});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 2U);
  std::vector<std::int32_t> got1{(*first)[0].token}, got2{(*first)[1].token};
  const std::vector<SeqId> s1{1}, s2{2};
  const double usage_both = worker->kv_usage();
  EXPECT_GT(usage_both, 0.0);
  ASSERT_TRUE(worker->swap_out(1).ok());
  EXPECT_LT(worker->kv_usage(), usage_both);
  EXPECT_FALSE(worker->kv_ready(1));  // off the device: not ready for compute
  // A step of the other sequence needs nothing of the swapped one.
  auto blocked = worker->decode_step(s1);
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().code, ErrorCode::kUnavailable);
  for (int i = 0; i < 5; ++i) got2.push_back(one(worker->decode_step(s2)));
  ASSERT_TRUE(worker->swap_in(1).ok());
  while (static_cast<int>(got1.size()) < kSteps) got1.push_back(one(worker->decode_step(s1)));
  EXPECT_TRUE(worker->kv_ready(1));
  EXPECT_EQ(worker->context_tokens(1), 40 + kSteps - 1);
  while (static_cast<int>(got2.size()) < kSteps) got2.push_back(one(worker->decode_step(s2)));
  EXPECT_EQ(got1, ref1);
  EXPECT_EQ(got2, ref2);
}

TEST(DeviceWorker, ExportImportContinuesAsOnOneDevice) {
  core::SamplingParams seeded;
  seeded.temperature = 0.9f;
  seeded.top_k = 40;
  seeded.frequency_penalty = 0.3f;
  seeded.repetition_penalty = 1.3f;  // counts the prompt: the sampler that moves must carry it
  seeded.seed = 1234;
  const auto p1 = prompt(8, 23);
  for (const auto& sampling : {kGreedy, seeded}) {
    const auto ref = reference(0, 1, p1, sampling);
    auto prefill_worker = make_worker();
    auto decode_worker = make_worker();
    ASSERT_TRUE(prefill_worker->switch_model(0).ok());
    ASSERT_TRUE(decode_worker->switch_model(0).ok());
    std::vector<std::int32_t> got{
        one(prefill_worker->prefill(std::vector<PrefillItem>{{1, p1, sampling}}))};
    const std::vector<SeqId> s1{1};
    got.push_back(one(prefill_worker->decode_step(s1)));
    auto exported = prefill_worker->export_sequence(1);
    ASSERT_TRUE(exported.ok()) << exported.error().message;
    EXPECT_EQ(exported->tokens, 23 + 1);
    EXPECT_EQ(exported->last_token, got.back());
    EXPECT_EQ(exported->generated, got);
    EXPECT_FALSE(prefill_worker->contains(1));
    EXPECT_EQ(prefill_worker->kv_usage(), 0.0);
    const std::uint64_t moved = exported->bytes.size();
    EXPECT_EQ(moved, 2 * 16 * Models::get().cache->info(0).kv_bytes_per_token);  // 24 tokens
    EXPECT_EQ(prefill_worker->counters().kv_transfer_bytes, moved);
    ASSERT_TRUE(decode_worker->import_sequence(std::move(exported).value()).ok());
    while (static_cast<int>(got.size()) < kSteps) got.push_back(one(decode_worker->decode_step(s1)));
    EXPECT_EQ(got, ref) << "temperature " << sampling.temperature;
  }
}

// The sequence on the device decides where a generation ends: at a stop token (kStop), at
// max_tokens (kLength), never at a stop token before min_tokens, and it keeps deciding after an
// export and import.
TEST(DeviceWorker, TheSequenceDecidesWhereItEnds) {
  const auto p = prompt(5, 17);
  const auto ref = reference(0, 1, p);
  // A token of the greedy answer that did not come before it: the stop token.
  std::size_t at = 1;
  while (at < ref.size() && std::find(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(at), ref[at]) !=
                                ref.begin() + static_cast<std::ptrdiff_t>(at)) {
    ++at;
  }
  ASSERT_LT(at, ref.size()) << "the greedy answer repeats one token";
  const std::int32_t stop_token = ref[at];
  const std::vector<SeqId> s1{1};

  // Runs one sequence until its device says it ended (or kSteps), on one worker or, when
  // `move_after` is set, exported after that many tokens and imported into another.
  const auto run = [&](core::StopConditions stop, std::optional<std::size_t> move_after = std::nullopt) {
    auto worker = make_worker();
    EXPECT_TRUE(worker->switch_model(0).ok());
    auto first = worker->prefill(std::vector<PrefillItem>{{1, p, kGreedy, 0, stop}});
    EXPECT_TRUE(first.ok());
    std::vector<SampledToken> out{first->front()};
    while (out.back().finish == core::FinishReason::kNone && static_cast<int>(out.size()) < kSteps) {
      if (move_after && out.size() == *move_after) {
        auto exported = worker->export_sequence(1);
        EXPECT_TRUE(exported.ok());
        worker = make_worker();
        EXPECT_TRUE(worker->switch_model(0).ok());
        EXPECT_TRUE(worker->import_sequence(std::move(exported).value()).ok());
      }
      auto next = worker->decode_step(s1);
      EXPECT_TRUE(next.ok());
      out.push_back(next->front());
    }
    return out;
  };
  const auto tokens_of = [](const std::vector<SampledToken>& sampled) {
    std::vector<std::int32_t> tokens;
    for (const auto& t : sampled) tokens.push_back(t.token);
    return tokens;
  };
  const auto prefix = [&](std::size_t n) { return std::vector<std::int32_t>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(n)); };

  auto stopped = run({.stop_token_ids = {stop_token}});
  EXPECT_EQ(tokens_of(stopped), prefix(at + 1));
  EXPECT_EQ(stopped.back().finish, core::FinishReason::kStop);

  auto limited = run({.max_tokens = 4});
  EXPECT_EQ(tokens_of(limited), prefix(4));
  EXPECT_EQ(limited.back().finish, core::FinishReason::kLength);
  EXPECT_EQ(limited[2].finish, core::FinishReason::kNone);

  // Not before min_tokens: the stop token is masked, so the answer goes on past it.
  auto late = run({.min_tokens = static_cast<std::int32_t>(at) + 1, .stop_token_ids = {stop_token}});
  ASSERT_GT(late.size(), at + 1);
  EXPECT_EQ(tokens_of(late).front(), ref.front());
  EXPECT_NE(late[at].token, stop_token);
  for (std::size_t i = 0; i <= at; ++i) EXPECT_EQ(late[i].finish, core::FinishReason::kNone) << i;

  // max_tokens counts the tokens sampled before the move.
  auto moved = run({.max_tokens = 5}, 2);
  EXPECT_EQ(tokens_of(moved), prefix(5));
  EXPECT_EQ(moved.back().finish, core::FinishReason::kLength);
}

TEST(DeviceWorker, ImportWhileAnotherModelRunsLandsOnTheDevice) {
  const auto p1 = prompt(9, 30);
  const auto ref = reference(0, 1, p1);
  auto prefill_worker = make_worker();
  auto decode_worker = make_worker();
  ASSERT_TRUE(prefill_worker->switch_model(0).ok());
  ASSERT_TRUE(decode_worker->switch_model(2).ok());
  std::vector<std::int32_t> got{one(prefill_worker->prefill(std::vector<PrefillItem>{{1, p1, kGreedy}}))};
  auto exported = prefill_worker->export_sequence(1);
  ASSERT_TRUE(exported.ok());
  ASSERT_TRUE(decode_worker->import_sequence(std::move(exported).value()).ok());
  // Its KV shares the device's KV space with model 2's (another geometry) though 2 is active.
  EXPECT_TRUE(decode_worker->holds_device_kv(1));
  EXPECT_EQ(decode_worker->context_tokens(1), 30);
  EXPECT_GT(decode_worker->kv_usage(), 0.0);
  const std::vector<SeqId> s1{1};
  auto wrong_model = decode_worker->decode_step(s1);
  ASSERT_FALSE(wrong_model.ok());
  EXPECT_NE(wrong_model.error().message.find("is active"), std::string::npos);
  ASSERT_TRUE(decode_worker->switch_model(0).ok());
  while (static_cast<int>(got.size()) < kSteps) got.push_back(one(decode_worker->decode_step(s1)));
  EXPECT_TRUE(decode_worker->kv_ready(1));
  EXPECT_EQ(got, ref);
}

TEST(DeviceWorker, SeededSamplingIsReproducible) {
  core::SamplingParams sampling;
  sampling.temperature = 1.0f;
  sampling.top_p = 0.95f;
  sampling.seed = 99;
  const auto p = prompt(10);
  const auto first = reference(1, 7, p, sampling);
  EXPECT_EQ(reference(1, 7, p, sampling), first);
  sampling.seed = 100;
  EXPECT_NE(reference(1, 7, p, sampling), first);
}

TEST(DeviceWorker, BatchedPrefillSplitsByLimitsAndReportsLogprobs) {
  auto worker = make_worker({.max_batch_tokens = 16, .max_batch_seqs = 2});
  ASSERT_TRUE(worker->switch_model(0).ok());
  std::vector<PrefillItem> items;
  for (int i = 0; i < 5; ++i) items.push_back({static_cast<SeqId>(100 + i), prompt(20 + i, 7 + 5 * i), kGreedy});
  auto first = worker->prefill(items);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_EQ(first->size(), 5U);
  std::vector<SeqId> ids;
  for (int i = 0; i < 5; ++i) {
    const SampledToken& t = (*first)[static_cast<std::size_t>(i)];
    EXPECT_EQ(t.seq, items[static_cast<std::size_t>(i)].seq);
    // Greedy picks the most likely token: at least as likely as uniform, at most certain.
    EXPECT_LE(t.logprob, 0.0f);
    EXPECT_GE(t.logprob, -std::log(256.0f));
    EXPECT_EQ(worker->context_tokens(t.seq), static_cast<int>(items[static_cast<std::size_t>(i)].prompt.size()));
    ids.push_back(t.seq);
  }
  auto next = worker->decode_step(ids);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), 5U);
  // The same prompt alone on a fresh worker gives the same first token.
  const auto ref = reference(0, 104, items[4].prompt);
  EXPECT_EQ((*first)[4].token, ref[0]);
  EXPECT_TRUE((*first)[4].top_logprobs.empty()) << "alternatives only when asked for";
}

TEST(DeviceWorker, ReportsTheMostLikelyTokensWhenAsked) {
  auto worker = make_worker();
  ASSERT_TRUE(worker->switch_model(0).ok());
  core::SamplingParams sampling = kGreedy;
  sampling.top_logprobs = 5;
  auto first = worker->prefill(std::vector<PrefillItem>{{7, prompt(9), sampling}});
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto next = worker->decode_step(std::vector<SeqId>{7});
  ASSERT_TRUE(next.ok()) << next.error().message;
  for (const SampledToken& t : {first->at(0), next->at(0)}) {
    ASSERT_EQ(t.top_logprobs.size(), 5U);
    // Greedy samples the best token; the list is sorted and is part of one distribution.
    EXPECT_EQ(t.top_logprobs[0].token, t.token);
    EXPECT_FLOAT_EQ(t.top_logprobs[0].logprob, t.logprob);
    double mass = 0;
    for (std::size_t k = 0; k < t.top_logprobs.size(); ++k) {
      mass += std::exp(t.top_logprobs[k].logprob);
      if (k > 0) {
        EXPECT_LE(t.top_logprobs[k].logprob, t.top_logprobs[k - 1].logprob);
      }
    }
    EXPECT_LE(mass, 1.0 + 1e-5);
  }
  // The setting travels with the sequence through export and import.
  auto exported = worker->export_sequence(7);
  ASSERT_TRUE(exported.ok());
  auto other = make_worker();
  ASSERT_TRUE(other->switch_model(0).ok());
  ASSERT_TRUE(other->import_sequence(std::move(*exported)).ok());
  auto after = other->decode_step(std::vector<SeqId>{7});
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(after->at(0).top_logprobs.size(), 5U);
}

// Echo with logprobs: every prompt token's logprob given the tokens before it, and that
// position's most likely tokens, equal to what a prefill of just those tokens reports for its
// next token. The prompt is longer than one scored chunk and shares its forwards with a prompt
// that is not scored; max_tokens 0 samples nothing.
TEST(DeviceWorker, ScoresThePromptWhenAsked) {
  auto worker = make_worker({.max_batch_tokens = 96});
  ASSERT_TRUE(worker->switch_model(0).ok());
  core::SamplingParams scored = kGreedy;
  scored.prompt_logprobs = 3;
  const auto long_prompt = prompt(5, 150);
  core::StopConditions nothing;
  nothing.max_tokens = 0;
  auto first = worker->prefill(std::vector<PrefillItem>{{1, long_prompt, scored, 0, nothing}, {2, prompt(6), kGreedy}});
  ASSERT_TRUE(first.ok()) << first.error().message;
  const SampledToken& only_scored = first->at(0);
  EXPECT_EQ(only_scored.token, SampledToken::kNone);
  EXPECT_EQ(only_scored.finish, core::FinishReason::kLength);
  EXPECT_FALSE(only_scored.is_output());
  EXPECT_EQ(first->at(1).token, reference(0, 2, prompt(6))[0]) << "a prompt beside a scored one is unchanged";
  EXPECT_TRUE(first->at(1).prompt_logprobs.empty()) << "scores only when asked for";
  ASSERT_EQ(only_scored.prompt_logprobs.size(), long_prompt.size() - 1);
  ASSERT_EQ(only_scored.prompt_top_logprobs.size(), long_prompt.size() - 1);

  // The reference: each prefix prefilled alone, with the whole next-token distribution reported.
  auto reference_worker = make_worker();
  ASSERT_TRUE(reference_worker->switch_model(0).ok());
  core::SamplingParams everything = kGreedy;
  everything.top_logprobs = 256;
  for (std::size_t i = 0; i + 1 < long_prompt.size(); i += 7) {
    const std::vector<std::int32_t> prefix(long_prompt.begin(), long_prompt.begin() + static_cast<std::ptrdiff_t>(i + 1));
    const auto seq = static_cast<SeqId>(1000 + i);
    auto next = reference_worker->prefill(std::vector<PrefillItem>{{seq, prefix, everything}});
    ASSERT_TRUE(next.ok()) << next.error().message;
    reference_worker->release(seq);
    const auto& distribution = next->at(0).top_logprobs;
    const auto target = std::find_if(distribution.begin(), distribution.end(),
                                     [&](const TokenLogprob& t) { return t.token == long_prompt[i + 1]; });
    ASSERT_NE(target, distribution.end());
    EXPECT_NEAR(only_scored.prompt_logprobs[i], target->logprob, 1e-4) << "position " << i + 1;
    ASSERT_EQ(only_scored.prompt_top_logprobs[i].size(), 3u);
    for (std::size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(only_scored.prompt_top_logprobs[i][k].token, distribution[k].token) << "position " << i + 1;
      EXPECT_NEAR(only_scored.prompt_top_logprobs[i][k].logprob, distribution[k].logprob, 1e-4);
    }
  }
}

TEST(DeviceWorker, ErrorsNameWhatIsWrong) {
  auto worker = make_worker();
  // Nothing resident yet.
  auto no_model = worker->prefill(std::vector<PrefillItem>{{1, prompt(1), kGreedy}});
  ASSERT_FALSE(no_model.ok());
  EXPECT_NE(no_model.error().message.find("switch_model"), std::string::npos);
  auto bad_model = worker->switch_model(7);
  ASSERT_FALSE(bad_model.ok());
  EXPECT_EQ(bad_model.error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(worker->switch_model(0).ok());
  ASSERT_TRUE(worker->prefill(std::vector<PrefillItem>{{1, prompt(1), kGreedy}}).ok());
  EXPECT_EQ(worker->resident_model(), std::optional<ModelId>(0));
  // Unknown sequences.
  const std::vector<SeqId> unknown{42};
  auto step = worker->decode_step(unknown);
  ASSERT_FALSE(step.ok());
  EXPECT_EQ(step.error().code, ErrorCode::kNotFound);
  EXPECT_NE(step.error().message.find("sequence 42"), std::string::npos);
  EXPECT_EQ(worker->swap_out(42).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(worker->swap_in(42).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(worker->export_sequence(42).error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(worker->kv_ready(42));
  worker->release(42);  // no-op
  // Duplicates, bad prompts.
  EXPECT_EQ(worker->prefill(std::vector<PrefillItem>{{1, prompt(2), kGreedy}}).error().code,
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(worker->prefill(std::vector<PrefillItem>{{3, {}, kGreedy}}).error().code,
            ErrorCode::kInvalidArgument);
  auto outside = worker->prefill(std::vector<PrefillItem>{{3, {5, 256}, kGreedy}});
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(outside.error().message.find("sequence 3: token id 256 outside the vocabulary"), std::string::npos)
      << outside.error().message;
  EXPECT_FALSE(worker->contains(3)) << "nothing of a failed prefill stays";
  EXPECT_EQ(worker->prefill(std::vector<PrefillItem>{{3, std::vector<std::int32_t>(4096, 1), kGreedy}})
                .error()
                .code,
            ErrorCode::kOutOfRange);
  EXPECT_FALSE(worker->contains(3));
  // Swap-in of a resident sequence; import of a sequence that exists or has the wrong size.
  EXPECT_EQ(worker->swap_in(1).error().code, ErrorCode::kInvalidArgument);
  KvExport wrong;
  wrong.seq = 9;
  wrong.model = 0;
  wrong.tokens = 20;
  wrong.bytes = core::HostBytes(std::vector<std::byte>(10));
  wrong.last_token = 1;
  auto bad_import = worker->import_sequence(std::move(wrong));
  ASSERT_FALSE(bad_import.ok());
  EXPECT_NE(bad_import.error().message.find("10 bytes"), std::string::npos);
  ASSERT_TRUE(worker->swap_out(1).ok());
  EXPECT_EQ(worker->swap_out(1).error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(worker->swap_in(1).ok());
  EXPECT_TRUE(worker->switch_model(1).ok());
  // A sequence of another model cannot step on this one (its KV may stay on the device).
  const std::vector<SeqId> s1{1};
  EXPECT_EQ(worker->decode_step(s1).error().code, ErrorCode::kInvalidArgument);
}

TEST(DeviceWorker, FullKvFailsWithoutPartialEffects) {
  DeviceWorkerOptions options;
  options.kv_bytes = 3 * 16 * Models::get().cache->info(0).kv_bytes_per_token;  // 3 blocks
  auto created = DeviceWorker::create(options, Models::get().cache);
  ASSERT_TRUE(created.ok());
  auto& worker = **created;
  EXPECT_EQ(worker.kv_capacity_tokens(0), 48);
  ASSERT_TRUE(worker.switch_model(0).ok());
  // Two prompts needing 2 blocks each: neither is created.
  auto both = worker.prefill(std::vector<PrefillItem>{{1, prompt(1, 20), kGreedy}, {2, prompt(2, 20), kGreedy}});
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().code, ErrorCode::kResourceExhausted);
  EXPECT_FALSE(worker.contains(1));
  EXPECT_FALSE(worker.contains(2));
  EXPECT_EQ(worker.kv_usage(), 0.0);
  // One sequence fills the cache; the step past 48 tokens fails and leaves it intact.
  ASSERT_TRUE(worker.prefill(std::vector<PrefillItem>{{3, prompt(3, 40), kGreedy}}).ok());
  const std::vector<SeqId> ids{3};
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(worker.decode_step(ids).ok());
  EXPECT_EQ(worker.context_tokens(3), 48);
  EXPECT_EQ(worker.kv_usage(), 1.0);
  auto full = worker.decode_step(ids);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(worker.context_tokens(3), 48);
  worker.release(3);
  EXPECT_EQ(worker.kv_usage(), 0.0);
}

TEST(DeviceWorker, ArenaTooSmallSaysHowManyBytes) {
  DeviceWorkerOptions options;
  options.arena_bytes = 1 << 20;  // less than two copies of model c's weights
  auto worker = DeviceWorker::create(options, Models::get().cache);
  ASSERT_FALSE(worker.ok());
  EXPECT_EQ(worker.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(worker.error().message.find("needs "), std::string::npos) << worker.error().message;
  EXPECT_NE(worker.error().message.find("1048576 bytes"), std::string::npos);
  // A larger arena gives KV everything the other regions leave.
  options.arena_bytes = 0;
  options.kv_bytes = 1 << 20;
  auto exact = DeviceWorker::create(options, Models::get().cache);
  ASSERT_TRUE(exact.ok());
  options.arena_bytes = 64 << 20;
  auto large = DeviceWorker::create(options, Models::get().cache);
  ASSERT_TRUE(large.ok());
  EXPECT_GT((*large)->kv_capacity_tokens(0), 4 * (*exact)->kv_capacity_tokens(0));
  options.device = "tpu";
  EXPECT_EQ(DeviceWorker::create(options, Models::get().cache).error().code,
            ErrorCode::kInvalidArgument);
}

TEST(DeviceWorker, CacheLoadErrorsNameTheModel) {
  std::vector<ModelSpec> missing{{"ghost", "/nonexistent/aegaeon/model"}};
  auto r = HostModelCache::load(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("model 'ghost'"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("/nonexistent/aegaeon/model"), std::string::npos);
  std::vector<ModelSpec> twice{Models::get().specs[0], Models::get().specs[0]};
  EXPECT_EQ(HostModelCache::load(twice).error().code, ErrorCode::kAlreadyExists);
  EXPECT_FALSE(HostModelCache::load({}).ok());
  int calls = 0;
  auto ok = HostModelCache::load(std::span(Models::get().specs).first(1),
                                 [&](int index, int count, std::string_view name) {
                                   EXPECT_EQ(index, 0);
                                   EXPECT_EQ(count, 1);
                                   EXPECT_EQ(name, "a");
                                   ++calls;
                                 });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(calls, 1);
}

// Unload and load (the admin API's): while a model is unloaded no device copies it, a device that
// forgot it copies it afresh after the load, and the load reads the folder again — new weights
// are served, a changed layout is refused and leaves the model unloaded.
TEST(DeviceWorker, UnloadedModelsAreNeverCopiedAndReloadReadsTheFolderAgain) {
  const auto dir = std::filesystem::temp_directory_path() / ("aegaeon_reload_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto write = [&](const char* name, std::uint64_t seed, int hidden = 64) {
    model::SynthSpec spec;
    spec.config = model::synth_config(model::Architecture::kLlama, hidden, 2, 256);
    spec.seed = seed;
    auto written = model::write_synthetic_model(dir / name, spec);
    ASSERT_TRUE(written.ok()) << written.error().message;
  };
  write("x", 11);
  write("y", 22);
  auto loaded = HostModelCache::load(std::vector<ModelSpec>{{"x", dir / "x"}, {"y", dir / "y"}});
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  std::shared_ptr<HostModelCache> cache = *loaded;
  auto created = DeviceWorker::create({.kv_bytes = std::uint64_t{4} << 20, .host_kv_blocks = 64}, cache);
  ASSERT_TRUE(created.ok()) << created.error().message;
  DeviceWorker& worker = **created;
  const auto p = prompt(5);
  SeqId next_seq = 1;
  auto greedy = [&](ModelId model) {
    EXPECT_TRUE(worker.switch_model(model).ok());
    const SeqId seq = next_seq++;
    std::vector<std::int32_t> out{one(worker.prefill(std::vector<PrefillItem>{{seq, p, kGreedy}}))};
    const std::vector<SeqId> ids{seq};
    while (static_cast<int>(out.size()) < kSteps) out.push_back(one(worker.decode_step(ids)));
    worker.release(seq);
    return out;
  };
  auto unload = [&](ModelId model) {
    cache->begin_unload(model);
    worker.forget_model(model);
    cache->free_weights(model);
  };
  const auto before = greedy(1);
  ASSERT_TRUE(worker.switch_model(0).ok());
  ASSERT_TRUE(worker.prefetch(1).ok());  // copying y while it is unloaded below

  cache->begin_unload(1);
  EXPECT_FALSE(cache->loaded(1));
  auto refused = worker.switch_model(1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("'y' is unloaded"), std::string::npos) << refused.error().message;
  EXPECT_EQ(worker.prefetch(1).error().code, ErrorCode::kFailedPrecondition);
  worker.forget_model(1);  // waits for the prefetch still copying
  cache->free_weights(1);
  EXPECT_EQ(cache->host_model(1).buffer, nullptr) << "the host memory is gone";
  EXPECT_GT(cache->info(1).weight_bytes, 0U) << "what the model is stays known";
  cache->free_weights(0);
  EXPECT_NE(cache->host_model(0).buffer, nullptr) << "a loaded model is not freed";

  // New weights of the same layout: the load serves them, copied afresh (the old prefetch is
  // forgotten, not adopted).
  write("y", 33);
  ASSERT_TRUE(cache->load_weights(1).ok());
  EXPECT_TRUE(cache->loaded(1));
  auto copied = worker.switch_model(1);
  ASSERT_TRUE(copied.ok()) << copied.error().message;
  EXPECT_FALSE(copied->from_prefetch);
  EXPECT_EQ(copied->bytes_copied, cache->info(1).weight_bytes);
  const auto swapped = greedy(1);
  EXPECT_NE(swapped, before) << "seed 33's weights, not seed 22's";

  // The old weights again: exactly the tokens of before, though y was resident when unloaded.
  unload(1);
  EXPECT_EQ(worker.resident_model(), std::nullopt);
  write("y", 22);
  ASSERT_TRUE(cache->load_weights(1).ok());
  EXPECT_EQ(greedy(1), before);

  // Another shape, or no weights file: refused, and the model stays unloaded.
  unload(1);
  write("y", 22, 96);
  auto reshaped = cache->load_weights(1);
  ASSERT_FALSE(reshaped.ok());
  EXPECT_EQ(reshaped.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(reshaped.error().message.find("changed since start: config.json differs"), std::string::npos)
      << reshaped.error().message;
  EXPECT_FALSE(cache->loaded(1));
  std::filesystem::remove(dir / "y" / "model.safetensors");
  auto missing = cache->load_weights(1);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("model.safetensors"), std::string::npos) << missing.error().message;
  EXPECT_FALSE(cache->loaded(1));
  write("y", 22);
  ASSERT_TRUE(cache->load_weights(1).ok());
  EXPECT_EQ(greedy(1), before);
  EXPECT_EQ(greedy(0).size(), static_cast<size_t>(kSteps)) << "x served throughout";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace aegaeon::worker
