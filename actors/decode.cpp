#include "actors/decode.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "actors/device_slot.hpp"
#include "actors/serving_atoms.hpp"
#include "actors/serving_metrics.hpp"

namespace aegaeon::actors {
namespace {

using Clock = std::chrono::steady_clock;

struct Instance : DeviceSlot {
  // Handoffs wait here while a command is in flight: the policy's view of which batch is on
  // the device must match the device when a newcomer is placed (device or host slab).
  std::vector<Handoff> arrivals;
};

// What the actor tracks per request beyond the policy's view.
struct Tracked {
  size_t instance = 0;
  bool parked = false;     // KV on the host slab
  bool cancelled = false;  // the proxy no longer wants tokens (stop string, client gone)
  bool failed = false;     // the device lost it (import failed): never stepped again
};

struct DecodeState {
  DecodeSetup setup;
  caf::actor proxy;
  caf::actor prefill;
  std::shared_ptr<ServingMetrics> metrics;
  std::vector<prometheus::Histogram*> step_seconds;  // per instance, into `metrics`
  std::vector<policy::ModelCosts> costs;  // stable storage: the instances borrow it
  std::vector<policy::DecodeInstance> policies;
  std::vector<Instance> instances;
  std::vector<policy::ExecutionEstimator> estimators;
  std::unordered_map<core::RequestId, Tracked> requests;
  Clock::time_point started = Clock::now();
  static inline const char* name = "decode";

  [[nodiscard]] double now_s() const {
    return std::chrono::duration<double>(Clock::now() - started).count();
  }
};

using DecodeActor = caf::stateful_actor<DecodeState>;

void drive(DecodeActor* self, size_t index);

// Tells prefill the α each model's next request would meet, for admission control.
void push_alpha(DecodeActor* self) {
  auto& s = self->state;
  // α describes weighted round-robin rounds; batches that run to completion have none.
  if (!s.prefill || !s.setup.config.preemptive) return;
  constexpr std::int64_t kTypicalContext = 512;
  std::vector<double> alpha(s.costs.size(), 0.0);
  for (size_t m = 0; m < s.costs.size(); ++m) {
    double best = 1e9;
    for (size_t i = 0; i < s.policies.size(); ++i) {
      if (!s.setup.pins.allows(static_cast<core::ModelId>(m), static_cast<policy::InstanceId>(i))) continue;
      best = std::min(best, s.policies[i].what_if_alpha(static_cast<core::ModelId>(m), kTypicalContext,
                                                        s.instances[i].resident));
    }
    alpha[m] = best;
  }
  self->send(s.prefill, alpha_atom::value, std::move(alpha));
}

std::vector<worker::SeqId> seqs_of(const DecodeState& s, const policy::DecodeBatch& batch,
                                   bool want_parked) {
  std::vector<worker::SeqId> seqs;
  for (const auto& r : batch.requests) {
    auto it = s.requests.find(r.info.id);
    if (it == s.requests.end() || it->second.failed) continue;
    if (it->second.parked == want_parked) seqs.push_back(r.info.id);
  }
  return seqs;
}

void set_parked(DecodeState& s, const std::vector<worker::SeqId>& seqs, bool parked) {
  for (auto seq : seqs) {
    auto it = s.requests.find(seq);
    if (it != s.requests.end()) it->second.parked = parked;
  }
}

// Books a finished step: tokens to the proxy, ended requests released, KV moved as the policy
// says. Returns whether the instance's batches changed (requests ended or moved), which is when
// the α prefill admits by changes.
bool on_stepped(DecodeActor* self, size_t index, policy::BatchId batch_id, DecodeOutcome& outcome) {
  auto& s = self->state;
  auto& policy = s.policies[index];
  const auto* batch = policy.batch(batch_id);
  if (batch == nullptr) return false;
  core::ModelId model = batch->model;
  if (!outcome.tokens.empty()) {  // a failed step measured nothing
    auto& estimator = s.estimators[static_cast<size_t>(model)];
    estimator.observe_decode(static_cast<double>(batch->context_tokens),
                             static_cast<double>(batch->requests.size()), outcome.seconds);
    estimator.refit();
    s.costs[static_cast<size_t>(model)].decode = estimator.decode();
  }

  std::vector<TokenEvent> events;
  std::vector<core::RequestId> ended;  // by the device (stop token, length), a cancel or a failed import
  std::unordered_map<core::RequestId, core::FinishReason> early;
  for (const auto& token : outcome.tokens) {
    auto id = token.seq;
    auto& tracked = s.requests.at(id);
    if (tracked.cancelled) {
      ended.push_back(id);
      early[id] = core::FinishReason::kCancelled;
      continue;  // nobody wants this token
    }
    TokenEvent event;
    event.id = id;
    if (token.finish != core::FinishReason::kNone) {  // the device's sequence decided
      ended.push_back(id);
      early[id] = token.finish;
    }
    if (token.is_output()) {  // a stop token is not part of the text
      event.tokens = {token.token};
      event.logprobs = {token.logprob};
      event.top_logprobs = {token.top_logprobs};
    }
    events.push_back(std::move(event));
  }
  // Requests the device could not run (failed import) end now too.
  for (const auto& r : batch->requests) {
    if (s.requests.at(r.info.id).failed) {
      ended.push_back(r.info.id);
      early[r.info.id] = core::FinishReason::kError;
    }
  }
  auto step = policy.on_step_done(ended);
  for (auto id : step.finished) {
    auto found = std::find_if(events.begin(), events.end(), [&](const TokenEvent& e) { return e.id == id; });
    if (found == events.end()) {
      events.push_back(TokenEvent{.id = id});
      found = std::prev(events.end());
    }
    found->finished = true;
    auto reason = early.find(id);
    found->reason = reason != early.end() ? reason->second : core::FinishReason::kLength;
    if (found->reason == core::FinishReason::kError) found->error = "the decode device lost this request";
    self->send(s.instances[index].worker, release_atom::value, id);
    s.requests.erase(id);
  }
  // Elastic memory: the batch's KV grew past the device, so other batches' KV leaves; with
  // truncation, the requests moved out of the batch leave the device.
  std::vector<policy::BatchId> leaving = step.swapped_out;
  if (step.split_batch) leaving.push_back(*step.split_batch);
  for (auto id : leaving) {
    if (const auto* out = policy.batch(id)) {
      auto seqs = seqs_of(s, *out, /*want_parked=*/false);
      set_parked(s, seqs, true);
      self->send(s.instances[index].worker, swapout_atom::value, std::move(seqs));
    }
  }
  for (auto model : step.evicted) self->send(s.instances[index].worker, forget_atom::value, model);
  if (!events.empty()) self->send(s.proxy, token_atom::value, std::move(events));
  return !step.finished.empty() || !leaving.empty();
}

// Adds the requests handed off since the last turn boundary to their batches and sends their
// KV to the device (onto the device when their batch is the one running, else the host slab).
void admit_arrivals(DecodeActor* self, size_t index) {
  auto& s = self->state;
  auto& instance = s.instances[index];
  auto& policy = s.policies[index];
  const bool elastic = policy.config().memory_bytes > 0.0;
  for (auto& handoff : instance.arrivals) {
    const auto& info = handoff.job.info;
    const auto join = policy.joinable_batch(info.model, info.input_tokens + 1);
    // Elastic memory: the policy says where the KV lands; else only the running batch's is on
    // the device.
    const bool kv_here = policy.kv_lands_here(info, join);
    auto batch = policy.add_request(info, join, kv_here);
    bool park = elastic ? !kv_here : policy.current_batch() != batch || instance.resident != info.model;
    s.requests[info.id] = Tracked{index, park, false, false};
    ImportCommand command{std::move(handoff.kv), park};
    auto id = info.id;
    self->request(instance.worker, caf::infinite, import_atom::value, std::move(command))
        .then([](bool) {},
              [self, id](caf::error& error) {
                spdlog::error("decode: importing request {} failed: {}", id, self->system().render(error));
                auto it = self->state.requests.find(id);
                if (it != self->state.requests.end()) it->second.failed = true;
              });
  }
  instance.arrivals.clear();
}

void drive(DecodeActor* self, size_t index) {
  auto& s = self->state;
  auto& instance = s.instances[index];
  if (instance.busy) return;
  admit_arrivals(self, index);
  auto action = s.policies[index].next_action(s.now_s(), instance.resident);
  if (instance.should_prefetch(action.prefetch_model)) {
    instance.prefetching = action.prefetch_model;
    self->send(instance.worker, prefetch_atom::value, *action.prefetch_model);
  }
  switch (action.kind) {
    case policy::DecodeAction::Kind::kIdle:
    case policy::DecodeAction::Kind::kLoad:     // only for prompts queued with add_prefill,
    case policy::DecodeAction::Kind::kPrefill:  // which the runtime's decode role never does
      return;
    case policy::DecodeAction::Kind::kSwitch: {
      SwitchBatchCommand command;
      for (policy::BatchId id : action.swap_out) {
        if (const auto* out = s.policies[index].batch(id)) {
          auto seqs = seqs_of(s, *out, /*want_parked=*/false);
          command.swap_out.insert(command.swap_out.end(), seqs.begin(), seqs.end());
        }
      }
      command.evict = action.evict;
      if (action.load_model || instance.resident != action.model) command.load = action.model;
      if (const auto* in = s.policies[index].batch(action.batch)) {
        command.swap_in = seqs_of(s, *in, /*want_parked=*/true);
      }
      instance.busy = true;
      auto batch = action.batch;
      auto model = action.model;
      auto swapped_out = command.swap_out;
      auto swapped_in = command.swap_in;
      self->request(instance.worker, caf::infinite, switch_atom::value, std::move(command))
          .then(
              [self, index, batch, model, swapped_out, swapped_in](const worker::SwitchStats&) {
                auto& st = self->state;
                set_parked(st, swapped_out, true);
                set_parked(st, swapped_in, false);
                st.policies[index].on_switched(batch);
                auto& inst = st.instances[index];
                inst.on_resident(model);
                inst.busy = false;
                push_alpha(self);
                drive(self, index);
              },
              [self, index, batch](caf::error& error) {
                auto& st = self->state;
                spdlog::error("decode-{}: switch to batch {} failed: {}", index, batch,
                              self->system().render(error));
                if (const auto* b = st.policies[index].batch(batch)) {
                  for (const auto& r : b->requests) st.requests.at(r.info.id).failed = true;
                }
                st.policies[index].on_switched(batch);
                st.instances[index].busy = false;
                drive(self, index);
              });
      return;
    }
    case policy::DecodeAction::Kind::kStep: {
      const auto* batch = s.policies[index].batch(action.batch);
      if (batch == nullptr) return;
      // Every live sequence of the batch: the device activates the model and brings any KV on
      // the host in first (elastic memory steps resident batches without a switch command).
      DecodeCommand command{batch->model, seqs_of(s, *batch, /*want_parked=*/false)};
      auto parked = seqs_of(s, *batch, /*want_parked=*/true);
      command.seqs.insert(command.seqs.end(), parked.begin(), parked.end());
      instance.busy = true;
      auto batch_id = action.batch;
      auto model = batch->model;
      self->request(instance.worker, caf::infinite, decode_atom::value, std::move(command))
          .then(
              [self, index, batch_id, model, parked](DecodeOutcome& outcome) {
                set_parked(self->state, parked, false);
                self->state.instances[index].on_resident(model);
                self->state.step_seconds[index]->Observe(outcome.seconds);
                const bool changed = on_stepped(self, index, batch_id, outcome);
                self->state.instances[index].busy = false;
                if (changed) push_alpha(self);  // not after every step: it plans a round per model
                drive(self, index);
              },
              [self, index, batch_id](caf::error& error) {
                auto& st = self->state;
                spdlog::error("decode-{}: step of batch {} failed: {}", index, batch_id,
                              self->system().render(error));
                if (const auto* b = st.policies[index].batch(batch_id)) {
                  for (const auto& r : b->requests) st.requests.at(r.info.id).failed = true;
                }
                DecodeOutcome none;
                on_stepped(self, index, batch_id, none);
                st.instances[index].busy = false;
                drive(self, index);
              });
      return;
    }
  }
}

// Loads a pinned model on its instance, so its first request does not pay for it.
void preload(DecodeActor* self, size_t index, core::ModelId model) {
  auto& instance = self->state.instances[index];
  instance.busy = true;
  self->request(instance.worker, caf::infinite, switch_atom::value, SwitchBatchCommand{{}, model, {}})
      .then(
          [self, index, model](const worker::SwitchStats&) {
            self->state.instances[index].on_resident(model);
            self->state.instances[index].busy = false;
            drive(self, index);
          },
          [self, index, model](caf::error& error) {
            spdlog::error("decode-{}: loading pinned model {} failed: {}", index, model,
                          self->system().render(error));
            self->state.instances[index].busy = false;  // its first batch will load it
            drive(self, index);
          });
}

// Preloads each pinned model whose instance holds no batch (a switch needs every other model's
// KV off the device; an instance still finishing others' batches loads the model on its own
// when the pinned model's first batch gets its turn).
void preload_pins(DecodeActor* self) {
  auto& s = self->state;
  for (const auto& pin : s.setup.pins.pins()) {
    const auto index = static_cast<size_t>(pin.instance);
    const auto& instance = s.instances[index];
    if (instance.busy || instance.resident == pin.model || !instance.arrivals.empty() ||
        !s.policies[index].batches().empty()) {
      continue;
    }
    preload(self, index, pin.model);
  }
}

caf::behavior decode_actor(DecodeActor* self, DecodeSetup setup, caf::actor proxy,
                           std::shared_ptr<ServingMetrics> metrics) {
  auto& s = self->state;
  s.setup = std::move(setup);
  s.setup.config = policy::decode_config(s.setup.policy, s.setup.config);
  s.proxy = std::move(proxy);
  s.metrics = std::move(metrics);
  auto models = static_cast<size_t>(s.setup.models->size());
  double bandwidth = s.setup.host_to_device_bytes_per_s;
  for (size_t m = 0; m < models; ++m) {
    const auto& info = s.setup.models->info(static_cast<core::ModelId>(m));
    policy::ModelCosts cost;
    // Until measured: a batch-1 step reads the weights once (≈ 10 GB/s on a CPU core pair).
    cost.decode = {static_cast<double>(info.weight_bytes) / 10e9 + 0.001, 1e-7, 1e-4};
    cost.model_switch_s = static_cast<double>(info.weight_bytes) / bandwidth;
    cost.kv_swap_s_per_token = static_cast<double>(info.kv_bytes_per_token) / bandwidth;
    cost.kv_capacity_tokens = s.setup.kv_capacity_tokens[m];
    // weight_bytes and kv_bytes_per_token stay 0: the runtime's elastic policy does not plan KV
    // bytes. Planned by the simulator's rule (every request at its full length), rounds on the
    // CPU backend amortized KV swaps that never had to happen (TPOT p50 at ×8 in bench_e2e:
    // 24 ms against 6.8 ms); the device moves other sequences' KV to the host when its blocks
    // actually run out (gpu_worker's with_kv_room), and weights have slots of their own.
    s.costs.push_back(cost);
    s.estimators.emplace_back(policy::PrefillCost{}, cost.decode);
  }
  for (auto& worker : s.setup.workers) {
    s.policies.emplace_back(s.setup.config, std::span<const policy::ModelCosts>(s.costs));
    s.step_seconds.push_back(
        &s.metrics->decode_step_s.series({{"device", "decode-" + std::to_string(s.instances.size())}}));
    s.instances.push_back(Instance{{.worker = worker}, {}});
  }
  preload_pins(self);
  return {
      [self](wire_atom, caf::actor prefill) {
        self->state.prefill = std::move(prefill);
        push_alpha(self);
      },
      [self](handoff_atom, Handoff& handoff) {
        auto& st = self->state;
        const auto& info = handoff.job.info;
        auto dispatch = policy::dispatch_decode(st.policies, info.model, info.input_tokens + 1, st.setup.pins);
        auto index = static_cast<size_t>(dispatch.instance);
        st.instances[index].arrivals.push_back(std::move(handoff));
        drive(self, index);
        push_alpha(self);
      },
      [self](cancel_atom, core::RequestId id) {
        auto it = self->state.requests.find(id);
        if (it != self->state.requests.end()) it->second.cancelled = true;
      },
      [self](pin_atom, policy::ModelPins& pins) {
        // Batches already placed finish where they are; new requests follow the new pins.
        self->state.setup.pins = std::move(pins);
        preload_pins(self);
        push_alpha(self);
      },
      [self](unload_atom, core::ModelId model, DevicesForgot& done) {
        forget_on_devices(self, model, std::move(done));
      },
  };
}

}  // namespace

caf::actor spawn_decode(caf::actor_system& system, DecodeSetup setup, caf::actor proxy,
                        std::shared_ptr<ServingMetrics> metrics) {
  return system.spawn(decode_actor, std::move(setup), std::move(proxy), std::move(metrics));
}

}  // namespace aegaeon::actors
