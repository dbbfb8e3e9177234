#include "actors/prefill.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <unordered_map>
#include <unordered_set>

#include "actors/device_slot.hpp"
#include "actors/policy/cost_model.hpp"
#include "actors/policy/prefill_scheduler.hpp"
#include "actors/serving_atoms.hpp"
#include "actors/serving_metrics.hpp"

namespace aegaeon::actors {
namespace {

using Clock = std::chrono::steady_clock;

struct PrefillState {
  PrefillSetup setup;
  caf::actor decode;
  caf::actor proxy;
  std::shared_ptr<ServingMetrics> metrics;
  std::unique_ptr<policy::PrefillScheduler> scheduler;
  std::vector<DeviceSlot> instances;
  std::unordered_map<core::RequestId, PrefillJob> jobs;
  std::unordered_set<core::RequestId> cancelled;
  std::vector<policy::ExecutionEstimator> estimators;  // per model, refit from measured prefills
  std::vector<double> decode_alpha;                    // per model, pushed by decode
  Clock::time_point started = Clock::now();
  static inline const char* name = "prefill";

  [[nodiscard]] double now_s() const {
    return std::chrono::duration<double>(Clock::now() - started).count();
  }
  // What each instance's device holds, for dispatch to prefer a device that has the model.
  [[nodiscard]] std::vector<policy::WeightCache> held() const {
    std::vector<policy::WeightCache> out;
    for (const auto& instance : instances) out.push_back(instance.held);
    return out;
  }
  [[nodiscard]] double switch_s(core::ModelId model) const {
    return static_cast<double>(setup.models->info(model).weight_bytes) / setup.host_to_device_bytes_per_s;
  }
  // Queue wait + switches + own prefill on the instance a new request of `job` would join.
  [[nodiscard]] double predicted_ttft_s(const PrefillJob& job) const {
    auto dispatch = scheduler->preview(job.info.model, setup.pins, held());
    const auto& instance = instances[static_cast<size_t>(dispatch.instance)];
    double total = 0;
    std::optional<core::ModelId> model = instance.resident;
    auto account = [&](const policy::RequestInfo& r) {
      // A model in the device's slots is activated without a copy.
      if (model != r.model && !instance.held.contains(r.model)) total += switch_s(r.model);
      model = r.model;
      total += estimators[static_cast<size_t>(r.model)].prefill().single_s(r.input_tokens);
    };
    for (const auto& pending : scheduler->pending(dispatch.instance)) account(pending);
    account(job.info);
    return total;
  }
};

using PrefillActor = caf::stateful_actor<PrefillState>;

void drive(PrefillActor* self, size_t index);

void finish_with_error(PrefillActor* self, core::RequestId id, const std::string& message) {
  TokenEvent event;
  event.id = id;
  event.finished = true;
  event.reason = core::FinishReason::kError;
  event.error = message;
  self->send(self->state.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
}

void on_prefilled(PrefillActor* self, size_t index, const PrefillJob& job, PrefillOutcome& outcome,
                  double queue_s) {
  auto& s = self->state;
  auto model = static_cast<size_t>(job.info.model);
  s.estimators[model].observe_prefill(job.info.input_tokens,
                                      double(job.info.input_tokens) * job.info.input_tokens,
                                      outcome.seconds);
  s.estimators[model].refit();

  TokenEvent event;
  event.id = job.info.id;
  const auto finish = outcome.first.finish;  // the device's sequence decided
  if (outcome.first.is_output()) {  // a stop token is not part of the text
    event.tokens = {outcome.first.token};
    event.logprobs = {outcome.first.logprob};
    event.top_logprobs = {outcome.first.top_logprobs};
  }
  event.prompt_logprobs = std::move(outcome.first.prompt_logprobs);
  event.prompt_top_logprobs = std::move(outcome.first.prompt_top_logprobs);
  event.queue_s = queue_s;
  const bool cancelled = s.cancelled.erase(job.info.id) > 0;
  if (finish != core::FinishReason::kNone || cancelled) {
    event.finished = true;
    event.reason = cancelled ? core::FinishReason::kCancelled : finish;
    self->send(s.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
    return;  // the exported KV is dropped with `outcome`
  }
  self->send(s.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
  self->send(s.decode, handoff_atom::value, Handoff{job, std::move(outcome.kv)});
  (void)index;
}

// Ends every request of `model` queued on the idle instance `index` with `reason` (a cancelled
// one as cancelled).
void fail_queued(PrefillActor* self, size_t index, core::ModelId model, const std::string& reason) {
  auto& s = self->state;
  const auto instance = static_cast<policy::InstanceId>(index);
  for (const auto& request : s.scheduler->pending(instance)) {
    if (request.model != model) continue;
    s.scheduler->on_prefill_done(instance, request.id);
    s.jobs.erase(request.id);
    if (s.cancelled.erase(request.id) != 0) {
      TokenEvent event{.id = request.id, .finished = true, .reason = core::FinishReason::kCancelled};
      self->send(s.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
    } else {
      finish_with_error(self, request.id, reason);
    }
  }
}

// Makes `model` resident on the instance, then carries on with its queue.
void switch_model(PrefillActor* self, size_t index, core::ModelId model) {
  self->state.instances[index].busy = true;
  self->request(self->state.instances[index].worker, caf::infinite, switch_atom::value, model)
      .then(
          [self, index, model](const worker::SwitchStats& stats) {
            auto& inst = self->state.instances[index];
            inst.on_switched(model, stats);
            inst.busy = false;
            drive(self, index);
          },
          [self, index, model](caf::error& error) {
            const std::string reason = "switch to model " + std::to_string(model) + " failed: " +
                                       self->system().render(error);
            spdlog::error("prefill-{}: {}", index, reason);
            // Its requests here would ask for the same switch again and again (an unloaded
            // model, a device fault): they end with the error, and the instance goes on.
            fail_queued(self, index, model, reason);
            self->state.instances[index].busy = false;
            drive(self, index);
          });
}

void drive(PrefillActor* self, size_t index) {
  auto& s = self->state;
  auto& instance = s.instances[index];
  if (instance.busy) return;
  // A device holding several models switches only when the head group's model is not among
  // them; a run of another resident model activates it first (no copy).
  auto action = s.scheduler->next_action(static_cast<policy::InstanceId>(index), instance.held);
  if (action.kind == policy::PrefillAction::Kind::kRun && instance.resident != action.model) {
    action.kind = policy::PrefillAction::Kind::kSwitch;
  }
  if (instance.should_prefetch(action.prefetch_model)) {
    instance.prefetching = action.prefetch_model;
    self->send(instance.worker, prefetch_atom::value, *action.prefetch_model);
  }
  switch (action.kind) {
    case policy::PrefillAction::Kind::kIdle:
      return;
    case policy::PrefillAction::Kind::kSwitch:
      switch_model(self, index, action.model);
      return;
    case policy::PrefillAction::Kind::kRun: {
      auto id = action.request;
      auto found = s.jobs.find(id);
      if (found == s.jobs.end() || s.cancelled.count(id) != 0) {
        s.scheduler->on_prefill_done(static_cast<policy::InstanceId>(index), id);
        if (found != s.jobs.end()) s.jobs.erase(found);
        s.cancelled.erase(id);
        TokenEvent event{.id = id, .finished = true, .reason = core::FinishReason::kCancelled};
        self->send(s.proxy, token_atom::value, std::vector<TokenEvent>{std::move(event)});
        drive(self, index);
        return;
      }
      instance.busy = true;
      double queue_s = s.now_s() - found->second.info.arrival_s;
      worker::PrefillItem item{id, found->second.prompt, found->second.sampling,
                               found->second.resumed_tokens, found->second.stop, found->second.constraint};
      self->request(instance.worker, caf::infinite, prefill_atom::value, std::move(item))
          .then(
              [self, index, id, queue_s](PrefillOutcome& outcome) {
                auto& st = self->state;
                st.scheduler->on_prefill_done(static_cast<policy::InstanceId>(index), id);
                auto job = std::move(st.jobs.at(id));
                st.jobs.erase(id);
                on_prefilled(self, index, job, outcome, queue_s);
                st.instances[index].busy = false;
                drive(self, index);
              },
              [self, index, id](caf::error& error) {
                auto& st = self->state;
                st.scheduler->on_prefill_done(static_cast<policy::InstanceId>(index), id);
                st.jobs.erase(id);
                st.cancelled.erase(id);
                finish_with_error(self, id, "prefill failed: " + self->system().render(error));
                st.instances[index].busy = false;
                drive(self, index);
              });
      return;
    }
  }
}

// Loads each pinned model on its instance when that instance has nothing else to do, so the
// model's next request does not pay for the load.
void preload_pins(PrefillActor* self) {
  auto& s = self->state;
  for (const auto& pin : s.setup.pins.pins()) {
    const auto index = static_cast<size_t>(pin.instance);
    const auto& instance = s.instances[index];
    if (instance.busy || instance.resident == pin.model || s.scheduler->queued(pin.instance) > 0) continue;
    switch_model(self, index, pin.model);
  }
}

caf::behavior prefill_actor(PrefillActor* self, PrefillSetup setup, caf::actor decode,
                            caf::actor proxy, std::shared_ptr<ServingMetrics> metrics) {
  auto& s = self->state;
  s.setup = std::move(setup);
  s.decode = std::move(decode);
  s.proxy = std::move(proxy);
  s.metrics = std::move(metrics);
  auto instances = static_cast<std::int32_t>(s.setup.workers.size());
  s.scheduler = std::make_unique<policy::PrefillScheduler>(instances, policy::prefill_config(s.setup.policy));
  for (auto& w : s.setup.workers) s.instances.push_back(DeviceSlot{.worker = w});
  auto models = static_cast<size_t>(s.setup.models->size());
  preload_pins(self);
  // Until measurements arrive: 5 ms fixed + 0.2 ms per prompt token (refit after each prefill).
  s.estimators.assign(models, policy::ExecutionEstimator({0.005, 2e-4, 0}, {}));
  s.decode_alpha.assign(models, 0.0);
  return {
      [self](admit_atom, PrefillJob& job) -> AdmissionReply {
        auto& st = self->state;
        policy::AdmissionInput input;
        input.decode_alpha = st.decode_alpha[static_cast<size_t>(job.info.model)];
        input.predicted_ttft_s = st.predicted_ttft_s(job);
        input.decode_drain_s = 1.0;
        auto decision = policy::decide_admission(st.setup.admission, st.setup.slo, input);
        if (!decision.admit) return AdmissionReply{false, decision.retry_after_s, decision.reason};
        job.info.arrival_s = st.now_s();
        auto dispatch = st.scheduler->on_arrival(job.info, st.setup.pins, st.held());
        st.jobs.emplace(job.info.id, std::move(job));
        drive(self, static_cast<size_t>(dispatch.instance));
        return AdmissionReply{true, 0, {}};
      },
      [self](cancel_atom, core::RequestId id) {
        if (self->state.jobs.count(id) != 0) self->state.cancelled.insert(id);
      },
      [self](alpha_atom, const std::vector<double>& alpha) { self->state.decode_alpha = alpha; },
      [self](pin_atom, policy::ModelPins& pins) {
        // Requests already queued stay where they are; new ones follow the new pins.
        self->state.setup.pins = std::move(pins);
        preload_pins(self);
      },
      [self](unload_atom, core::ModelId model, DevicesForgot& done) {
        forget_on_devices(self, model, std::move(done));
      },
  };
}

}  // namespace

caf::actor spawn_prefill(caf::actor_system& system, PrefillSetup setup, caf::actor decode,
                         caf::actor proxy, std::shared_ptr<ServingMetrics> metrics) {
  return system.spawn(prefill_actor, std::move(setup), std::move(decode), std::move(proxy),
                      std::move(metrics));
}

}  // namespace aegaeon::actors
