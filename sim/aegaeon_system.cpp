// The aegaeon system in virtual time: prefill devices run PrefillScheduler, decode devices run
// DecodeInstance, the front door runs decide_admission — the same classes the actors call.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "actors/policy/admission.hpp"
#include "actors/policy/decode_instance.hpp"
#include "actors/policy/placement.hpp"
#include "actors/policy/prefill_scheduler.hpp"
#include "sim/sim_core.hpp"

namespace aegaeon::sim::detail {

namespace {

enum EventKind : std::int32_t { kArrival, kPrefillDone, kDecodeArrive, kDecodeDone, kAdmissionDeadline, kSplitProbe };

struct Device {
  std::optional<core::ModelId> resident;
  bool busy = false;
  double busy_until = 0;
  std::optional<core::ModelId> prefetch_model;
  double prefetch_ready_s = 0;
  // The operation in flight.
  enum class Op { kNone, kSwitch, kPrefill, kStep, kLoad } op = Op::kNone;
  core::ModelId op_model = 0;
  std::int64_t op_request = 0;
  policy::BatchId op_batch = 0;
};

struct PendingAdd {
  std::int64_t request;
  std::optional<policy::BatchId> batch;
};

class AegaeonSystem {
 public:
  explicit AegaeonSystem(SimCore& core)
      : core_(core),
        env_(core.env),
        prefill_(env_.config.prefill_devices, policy::PrefillConfig{env_.config.prefill_max_group}),
        prefill_dev_(static_cast<std::size_t>(env_.config.prefill_devices)),
        // The adaptive split's device has a decode role too: the last decode device.
        decode_dev_(static_cast<std::size_t>(env_.config.devices - env_.config.prefill_devices + (adaptive() ? 1 : 0))),
        pending_(decode_dev_.size()) {
    double max_kv_per_token = 0;
    for (const auto& m : env_.models) {
      // The paper's device: one batch's KV shares the device with its weights and, with
      // prefetch, the largest other model being prefetched. Elastic memory needs no reserve:
      // a prefetch goes only into free room.
      const double reserve = env_.config.prefetch && !elastic() ? env_.max_weight_bytes : 0.0;
      const double kv_bytes = std::max(env_.usable_bytes - m.weight_bytes - reserve, 0.0);
      costs_.push_back(policy::ModelCosts{m.decode, m.load_s, m.kv_s_per_token,
                                          static_cast<std::int64_t>(kv_bytes / m.kv_bytes_per_token),
                                          m.weight_bytes, m.kv_bytes_per_token});
      max_kv_per_token = std::max(max_kv_per_token, m.kv_bytes_per_token);
    }
    // A prefill device holds weights beside the KV of the prompt it runs (one per batch).
    prefill_weight_bytes_ = env_.usable_bytes - kPrefillKvTokens * max_kv_per_token;
    prefill_cache_.resize(prefill_dev_.size());
    policy::DecodeInstanceConfig& dc = decode_config_;
    dc.round.tbt_slo_s = env_.config.slo.tbt_s;
    dc.max_batch_size = env_.config.max_batch_size;
    dc.prefetch = env_.config.prefetch;
    dc.memory_bytes = elastic() ? env_.usable_bytes : 0.0;
    dc.immediate_turns = env_.config.immediate_turns;
    // A newcomer has its TTFT slack banked, no more: rounds stay within half of it.
    if (env_.config.bounded_rounds) dc.round.max_round_s = 0.5 * env_.config.slo.ttft_s;
    for (std::size_t i = 0; i < decode_dev_.size(); ++i) decode_.emplace_back(dc, costs_);
  }

  void run() {
    const auto& reqs = core_.workload.requests;
    for (std::size_t i = 0; i < reqs.size(); ++i) core_.at(reqs[i].arrival_s, kArrival, static_cast<std::int64_t>(i));
    if (adaptive() && !reqs.empty()) core_.at(kSplitProbeS, kSplitProbe, 0);
    Event e;
    while (core_.next(e)) {
      switch (e.kind) {
        case kArrival: on_arrival(e.target); break;
        case kPrefillDone: on_prefill_done(static_cast<std::size_t>(e.target)); break;
        case kDecodeArrive: on_decode_arrive(e.target); break;
        case kDecodeDone: on_decode_done(static_cast<std::size_t>(e.target)); break;
        case kAdmissionDeadline: on_admission_deadline(e.target); break;
        case kSplitProbe: on_split_probe(); break;
        default: break;
      }
    }
  }

 private:
  static constexpr double kPrefillKvTokens = 8192;  // the longest prompt a prefill device holds

  bool elastic() const { return env_.config.elastic_memory; }

  // ---- adaptive prefill/decode split ------------------------------------------------------
  // One device switches between the prefill and the decode role as policy::wants_prefill_device
  // says from the memory pressure it measures every kSplitProbeS. A role changes once the device
  // has drained the old one's work.
  static constexpr double kSplitProbeS = 10.0;    // how often the pressure is measured
  static constexpr double kDemandWindowS = 60.0;  // a model requested this recently is in demand
  enum class Role { kDecode, kPrefill };

  bool adaptive() const { return elastic() && env_.config.adaptive_split && env_.config.prefill_devices == 1; }
  std::size_t flex() const { return decode_.size() - 1; }
  // Decode devices that take new work: all but the adaptive device while it prefills or is on its
  // way to (or from) prefilling.
  std::span<policy::DecodeInstance> placeable() {
    const bool flex_out = adaptive() && (role_ == Role::kPrefill || target_ == Role::kPrefill);
    return std::span(decode_).first(decode_.size() - (flex_out ? 1 : 0));
  }
  // Whether prompts of models no decode device holds go to a prefill device.
  bool prefill_routing() const {
    return !prefill_dev_.empty() && (!adaptive() || (role_ == Role::kPrefill && target_ == Role::kPrefill));
  }

  void on_split_probe() {
    const auto now = core_.now();
    policy::SplitPressure pressure;
    for (std::size_t m = 0; m < env_.models.size(); ++m) {
      if (last_request_s_[m] >= 0 && now - last_request_s_[m] <= kDemandWindowS) {
        pressure.demanded_weight_bytes += costs_[m].weight_bytes;
      }
    }
    for (const auto& inst : decode_) pressure.kv_bytes += inst.kv_bytes_at_completion();
    pressure.device_bytes = env_.usable_bytes * static_cast<double>(decode_.size());
    target_ = policy::wants_prefill_device(pressure, target_ == Role::kPrefill) ? Role::kPrefill : Role::kDecode;
    finish_role_change();
    if (now < core_.workload.requests.back().arrival_s) core_.at(now + kSplitProbeS, kSplitProbe, 0);
  }

  // The adaptive device takes its target role once the other one has no work left on it.
  void finish_role_change() {
    if (!adaptive() || role_ == target_) return;
    if (target_ == Role::kPrefill) {
      const auto& inst = decode_[flex()];
      if (decode_dev_[flex()].busy || !inst.batches().empty() || inst.queued_prefills() > 0 || !pending_[flex()].empty()) return;
      prefill_dev_[0] = Device{};
      prefill_cache_[0].clear();
      role_ = Role::kPrefill;
    } else {
      if (prefill_dev_[0].busy || !prefill_.pending(0).empty()) return;
      decode_[flex()] = policy::DecodeInstance(decode_config_, costs_);
      decode_dev_[flex()] = Device{};
      role_ = Role::kDecode;
      retry_waiting();
    }
  }

  policy::RequestInfo info(std::int64_t r) const {
    const auto& t = core_.workload.requests[static_cast<std::size_t>(r)];
    return policy::RequestInfo{static_cast<core::RequestId>(r), t.model, t.arrival_s, t.input_tokens, t.output_tokens};
  }

  // Weight load time, shortened by a prefetch of the same model already under way.
  double load_time(Device& d, core::ModelId model) {
    double s = env_.models[static_cast<std::size_t>(model)].load_s;
    if (d.prefetch_model && *d.prefetch_model == model) s = std::max(0.0, d.prefetch_ready_s - core_.now());
    d.prefetch_model.reset();
    return s;
  }

  void start_prefetch(Device& d, std::optional<core::ModelId> model) {
    if (!env_.config.prefetch || !model || (d.resident && *d.resident == *model)) return;
    if (d.prefetch_model && *d.prefetch_model == *model) return;
    d.prefetch_model = model;
    d.prefetch_ready_s = core_.now() + env_.models[static_cast<std::size_t>(*model)].load_s;
  }

  // Front door. Elastic devices place the request where it keeps its SLO, or it waits (and, with
  // admission, is turned away at its deadline); the paper's devices take it through admission
  // control (when enabled) to grouped-FCFS dispatch.
  void on_arrival(std::int64_t r) {
    const auto req = info(r);
    last_request_s_[static_cast<std::size_t>(req.model)] = core_.now();
    if (elastic()) {
      if (!place(r, /*prefilled=*/false)) wait(r, false);
      return;
    }
    if (env_.config.admission.enabled) {
      auto d = policy::decide_admission(env_.config.admission, env_.config.slo, admission_input(req));
      if (!d.admit) {
        core_.fail(r, true);
        return;
      }
    }
    to_prefill_devices(req);
  }

  void to_prefill_devices(const policy::RequestInfo& req) {
    const auto where = elastic() ? prefill_.on_arrival(req, {}, prefill_cache_) : prefill_.on_arrival(req);
    prefill_cache_[static_cast<std::size_t>(where.instance)].on_demand(req.model, core_.now());
    schedule_prefill(static_cast<std::size_t>(where.instance));
  }

  policy::AdmissionInput admission_input(const policy::RequestInfo& req) {
    policy::AdmissionInput in;
    const auto where = prefill_.preview(req.model);
    const auto p = static_cast<std::size_t>(where.instance);
    const Device& pd = prefill_dev_[p];
    double wait = pd.busy ? std::max(0.0, pd.busy_until - core_.now()) : 0.0;
    // A load in flight already counts in busy_until: its model is the one to compare against.
    std::optional<core::ModelId> model = pd.op == Device::Op::kSwitch ? std::optional(pd.op_model) : pd.resident;
    for (const auto& q : prefill_.pending(where.instance)) {
      const auto& m = env_.models[static_cast<std::size_t>(q.model)];
      if (model != q.model) wait += m.load_s;
      model = q.model;
      wait += m.prefill.single_s(q.input_tokens);
    }
    const auto& own = env_.models[static_cast<std::size_t>(req.model)];
    if (model != req.model) wait += own.load_s;
    in.predicted_ttft_s = wait + own.prefill.single_s(req.input_tokens);
    // α of the decode instance the dispatch rule would pick today (the request lands there after
    // prefill; the state may shift by then, which is why this is a prediction).
    const auto target = policy::dispatch_decode(decode_, req.model, req.input_tokens + 1);
    const auto ti = static_cast<std::size_t>(target.instance);
    in.decode_alpha = decode_[ti].what_if_alpha(req.model, req.input_tokens + 1, decode_dev_[ti].resident);
    in.decode_drain_s = std::numeric_limits<double>::infinity();
    for (const auto& b : decode_[ti].batches()) {
      for (const auto& dr : b.requests) {
        in.decode_drain_s = std::min(in.decode_drain_s, dr.remaining_tokens * env_.config.slo.tbt_s);
      }
    }
    if (!std::isfinite(in.decode_drain_s)) in.decode_drain_s = 0;
    return in;
  }

  void schedule_prefill(std::size_t p) {
    Device& d = prefill_dev_[p];
    if (d.busy) return;
    const auto act = elastic() ? prefill_.next_action(static_cast<policy::InstanceId>(p), prefill_cache_[p])
                               : prefill_.next_action(static_cast<policy::InstanceId>(p), d.resident);
    double cost = 0;
    switch (act.kind) {
      case policy::PrefillAction::Kind::kIdle: return;
      case policy::PrefillAction::Kind::kSwitch:
        cost = load_time(d, act.model);
        core_.add_switch(cost, true);
        d.op = Device::Op::kSwitch;
        d.op_model = act.model;
        break;
      case policy::PrefillAction::Kind::kRun: {
        const auto& t = core_.workload.requests[static_cast<std::size_t>(act.request)];
        cost = env_.models[static_cast<std::size_t>(act.model)].prefill.single_s(t.input_tokens);
        core_.add_compute(cost);
        d.op = Device::Op::kPrefill;
        d.op_request = act.request;
        if (!elastic() || (act.prefetch_model && !prefill_cache_[p].contains(*act.prefetch_model))) {
          start_prefetch(d, act.prefetch_model);
        }
        break;
      }
    }
    d.busy = true;
    d.busy_until = core_.now() + cost;
    core_.at(d.busy_until, kPrefillDone, static_cast<std::int64_t>(p));
  }

  void on_prefill_done(std::size_t p) {
    Device& d = prefill_dev_[p];
    d.busy = false;
    if (d.op == Device::Op::kSwitch) {
      d.resident = d.op_model;
      admit_to_prefill_cache(p, d.op_model);
    } else if (d.op == Device::Op::kPrefill) {
      const std::int64_t r = d.op_request;
      prefill_.on_prefill_done(static_cast<policy::InstanceId>(p), r);
      core_.token(r);
      const auto& t = core_.workload.requests[static_cast<std::size_t>(r)];
      if (t.output_tokens > 1) {
        // KV handoff to a decode device over the host link (a conservative stand-in for
        // NVLink/RDMA).
        const double handoff = (t.input_tokens + 1) * env_.models[static_cast<std::size_t>(t.model)].kv_s_per_token;
        core_.at(core_.now() + handoff, kDecodeArrive, r);
      }
    }
    d.op = Device::Op::kNone;
    schedule_prefill(p);
    finish_role_change();
  }

  // A prefill device's cache takes `model`, evicting the cheapest losses until its weights fit.
  void admit_to_prefill_cache(std::size_t p, core::ModelId model) {
    policy::WeightCache& cache = prefill_cache_[p];
    if (!elastic()) cache.clear();
    const double need = costs_[static_cast<std::size_t>(model)].weight_bytes;
    for (core::ModelId m : cache.eviction_order(costs_, core_.now())) {
      if (cache.bytes(costs_) + need <= prefill_weight_bytes_) break;
      cache.erase(m);
    }
    cache.insert(model);
  }

  // Elastic devices: places request `r` (its prompt, or its first decode step once `prefilled`)
  // where the policy admits it; false when it must wait.
  bool place(std::int64_t r, bool prefilled) {
    const auto req = info(r);
    if (!prefilled) {
      // A decode device holding the model prefills it, so its weights need not be loaded on a
      // prefill device as well; prefill devices take the rest; without them a decode device does.
      auto site = policy::resident_prefill_site(placeable(), req);
      if (!site && prefill_routing()) {
        // With admission, a prompt starts only when a decode device will take it within the TBT
        // SLO: prefilled first, it would stream one token and then stall waiting for one.
        if (env_.config.admission.enabled && !policy::place_decode(placeable(), req)) return false;
        to_prefill_devices(req);
        return true;
      }
      if (!site) {
        const auto d = policy::place_decode(placeable(), req);
        if (!d) return false;
        site = d->instance;
      }
      const auto i = static_cast<std::size_t>(*site);
      decode_[i].add_prefill(req);
      schedule_decode(i);
      return true;
    }
    const auto d = policy::place_decode(placeable(), req);
    if (!d) return false;
    const auto i = static_cast<std::size_t>(d->instance);
    decode_[i].add_arrival(req);
    schedule_decode(i);
    return true;
  }

  // `r` waits for a device to admit it; with admission, a prompt still waiting at its deadline is
  // turned away.
  void wait(std::int64_t r, bool prefilled) {
    waiting_.push_back(Waiting{r, prefilled});
    if (!prefilled && env_.config.admission.enabled) {
      const double arrival_s = core_.workload.requests[static_cast<std::size_t>(r)].arrival_s;
      core_.at(policy::admission_deadline_s(env_.config.admission, env_.config.slo, arrival_s), kAdmissionDeadline, r);
    }
  }

  void on_admission_deadline(std::int64_t r) {
    const auto it = std::find_if(waiting_.begin(), waiting_.end(),
                                 [r](const Waiting& w) { return w.request == r && !w.prefilled; });
    if (it == waiting_.end()) return;  // placed in time
    waiting_.erase(it);
    core_.fail(r, /*rejected=*/true);
  }

  // Room was freed: waiting requests are placed in arrival order where they now fit.
  void retry_waiting() {
    std::vector<Waiting> now;
    now.swap(waiting_);
    std::vector<Waiting> still;
    // A model that found no room once this pass finds none for its later requests either.
    std::vector<bool> full(env_.models.size(), false);
    for (const auto& w : now) {
      const auto m = static_cast<std::size_t>(core_.workload.requests[static_cast<std::size_t>(w.request)].model);
      if (full[m] || !place(w.request, w.prefilled)) {
        full[m] = true;
        still.push_back(w);
      }
    }
    waiting_.insert(waiting_.end(), still.begin(), still.end());
  }

  void on_decode_arrive(std::int64_t r) {
    if (elastic()) {
      if (!place(r, /*prefilled=*/true)) wait(r, true);
      return;
    }
    const auto req = info(r);
    const auto where = policy::dispatch_decode(decode_, req.model, req.input_tokens + 1);
    const auto i = static_cast<std::size_t>(where.instance);
    if (decode_dev_[i].busy) {
      pending_[i].push_back(PendingAdd{r, where.batch});  // joins between steps, never mid-step
    } else {
      decode_[i].add_request(req, where.batch);
      schedule_decode(i);
    }
  }

  void schedule_decode(std::size_t i) {
    Device& d = decode_dev_[i];
    if (d.busy) return;
    for (const auto& a : pending_[i]) decode_[i].add_request(info(a.request), a.batch);
    pending_[i].clear();
    const auto act = decode_[i].next_action(core_.now(), d.resident);
    double cost = 0;
    switch (act.kind) {
      case policy::DecodeAction::Kind::kIdle: return;
      case policy::DecodeAction::Kind::kSwitch: {
        const auto& m = env_.models[static_cast<std::size_t>(act.model)];
        const double weights = act.load_model ? load_time(d, act.model) : 0.0;
        const double out_s = swap_out_s(decode_[i], act.swap_out);
        // Device→host and host→device copies use opposite directions of the link.
        cost = std::max(out_s, weights + static_cast<double>(act.swap_in_tokens) * m.kv_s_per_token);
        core_.add_switch(cost, act.load_model);
        d.op = Device::Op::kSwitch;
        d.op_model = act.model;
        d.op_batch = act.batch;
        break;
      }
      case policy::DecodeAction::Kind::kLoad:
        cost = std::max(swap_out_s(decode_[i], act.swap_out), load_time(d, act.model));
        core_.add_switch(cost, true);
        d.op = Device::Op::kLoad;
        d.op_model = act.model;
        break;
      case policy::DecodeAction::Kind::kPrefill: {
        const auto& t = core_.workload.requests[static_cast<std::size_t>(act.request)];
        cost = env_.models[static_cast<std::size_t>(act.model)].prefill.single_s(t.input_tokens);
        core_.add_compute(cost);
        d.op = Device::Op::kPrefill;
        d.op_request = act.request;
        break;
      }
      case policy::DecodeAction::Kind::kStep: {
        const auto* b = decode_[i].batch(act.batch);
        cost = env_.models[static_cast<std::size_t>(act.model)].decode.estimate_s(
            static_cast<double>(b->context_tokens), static_cast<double>(b->requests.size()));
        core_.add_compute(cost);
        d.op = Device::Op::kStep;
        d.op_batch = act.batch;
        start_prefetch(d, act.prefetch_model);
        break;
      }
    }
    d.busy = true;
    d.busy_until = core_.now() + cost;
    core_.at(d.busy_until, kDecodeDone, static_cast<std::int64_t>(i));
  }

  void on_decode_done(std::size_t i) {
    Device& d = decode_dev_[i];
    d.busy = false;
    if (d.op == Device::Op::kSwitch) {
      d.resident = d.op_model;
      decode_[i].on_switched(d.op_batch);
    } else if (d.op == Device::Op::kLoad) {
      decode_[i].on_loaded();
    } else if (d.op == Device::Op::kPrefill) {
      core_.token(d.op_request);
      decode_[i].on_prefilled(d.op_request);
    } else if (d.op == Device::Op::kStep) {
      const auto* b = decode_[i].batch(d.op_batch);
      for (const auto& r : b->requests) core_.token(r.info.id);
      const core::ModelId model = b->model;
      const auto out = decode_[i].on_step_done();
      if (!out.finished.empty() && !waiting_.empty()) freed_ = true;
      if (out.split_batch || !out.swapped_out.empty()) {
        // Truncated requests' KV, and other batches' KV pushed out by this one's growth, go to
        // host before the device continues.
        const double s = static_cast<double>(out.split_tokens) * env_.models[static_cast<std::size_t>(model)].kv_s_per_token +
                         swap_out_s(decode_[i], out.swapped_out);
        core_.add_switch(s, false);
        d.op = Device::Op::kNone;
        d.busy = true;
        d.busy_until = core_.now() + s;
        core_.at(d.busy_until, kDecodeDone, static_cast<std::int64_t>(i));
        return;
      }
    }
    d.op = Device::Op::kNone;
    schedule_decode(i);
    if (adaptive() && i == flex()) finish_role_change();
    if (freed_) {
      freed_ = false;
      retry_waiting();
    }
  }

  // Seconds to move these batches' KV to host.
  double swap_out_s(const policy::DecodeInstance& inst, const std::vector<policy::BatchId>& batches) const {
    double s = 0;
    for (policy::BatchId id : batches) {
      if (const auto* b = inst.batch(id)) {
        s += static_cast<double>(b->context_tokens) * env_.models[static_cast<std::size_t>(b->model)].kv_s_per_token;
      }
    }
    return s;
  }

  SimCore& core_;
  const Env& env_;
  double prefill_weight_bytes_ = 0;
  struct Waiting {
    std::int64_t request;
    bool prefilled;
  };
  std::vector<Waiting> waiting_;  // elastic: requests no device admits yet, in arrival order
  bool freed_ = false;
  policy::DecodeInstanceConfig decode_config_;
  Role role_ = Role::kDecode;  // the adaptive device's role (it starts decoding: nothing is in demand yet)
  Role target_ = Role::kDecode;
  std::vector<double> last_request_s_ = std::vector<double>(env_.models.size(), -1.0);
  std::vector<policy::WeightCache> prefill_cache_;
  std::vector<policy::ModelCosts> costs_;
  policy::PrefillScheduler prefill_;
  std::vector<policy::DecodeInstance> decode_;
  std::vector<Device> prefill_dev_;
  std::vector<Device> decode_dev_;
  std::vector<std::vector<PendingAdd>> pending_;
};

}  // namespace

void run_aegaeon(SimCore& core) { AegaeonSystem(core).run(); }

}  // namespace aegaeon::sim::detail
