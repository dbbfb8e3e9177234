// Baselines on the same cost model: each device runs prefill and decode itself (vLLM-style
// continuous batching, prefill first) for the model(s) it holds.
//   dedicated:          device j holds model j (replicated round-robin when devices > models).
//   request-level:      ServerlessLLM-like. A device serves one model until it has no requests,
//                       then loads the model of the oldest waiting request (LRU among idle
//                       devices; warm devices first). srtf: shortest request first instead.
//   static-mux:         MuxServe-like. Models packed into device memory by load, time-shared
//                       step by step, never switched. Models that fit nowhere are unserved.
#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

#include "actors/policy/admission.hpp"
#include "sim/sim_core.hpp"

namespace aegaeon::sim::detail {

namespace {

enum EventKind : std::int32_t { kArrival, kDone };
constexpr std::int64_t kMaxPrefillTokens = 8192;  // vLLM's default max_num_batched_tokens
constexpr double kMuxKvReserve = 0.3;             // share of memory static-mux keeps for KV

struct Run {
  std::int64_t request = 0;
  std::int32_t ctx = 0;
  std::int32_t remaining = 0;
  bool prefilled = false;  // preempted after prefill: rejoins without recomputation
};

struct Slot {
  std::int32_t model = 0;
  std::vector<Run> waiting;
  std::vector<Run> running;
  std::int64_t ctx_tokens = 0;
};

struct CDevice {
  std::vector<Slot> slots;
  bool busy = false;
  double last_used_s = 0;
  std::size_t rr = 0;
  enum class Op { kNone, kSwitch, kPrefill, kStep } op = Op::kNone;
  std::size_t op_slot = 0;
  std::vector<Run> op_runs;
  [[nodiscard]] std::int64_t load() const {
    std::int64_t n = 0;
    for (const auto& s : slots) n += static_cast<std::int64_t>(s.waiting.size() + s.running.size());
    return n;
  }
};

class ColocatedSystem {
 public:
  explicit ColocatedSystem(SimCore& core)
      : core_(core), env_(core.env), kind_(env_.config.system),
        srtf_(kind_ == SystemKind::kRequestLevelSrtf),
        dev_(static_cast<std::size_t>(env_.config.devices)) {
    const auto models = static_cast<std::int32_t>(env_.models.size());
    if (kind_ == SystemKind::kDedicated && models > 0) {
      // Device j holds model j; with more devices than models the extra ones replicate.
      for (std::size_t j = 0; j < dev_.size(); ++j) {
        dev_[j].slots.push_back(Slot{static_cast<std::int32_t>(j) % models, {}, {}, 0});
      }
    } else if (kind_ == SystemKind::kStaticMux) {
      pack_models();
    }
  }

  void run() {
    const auto& reqs = core_.workload.requests;
    for (std::size_t i = 0; i < reqs.size(); ++i) core_.at(reqs[i].arrival_s, kArrival, static_cast<std::int64_t>(i));
    Event e;
    while (core_.next(e)) {
      if (e.kind == kArrival) {
        on_arrival(e.target);
      } else {
        on_done(static_cast<std::size_t>(e.target));
      }
    }
    for (std::int64_t r : global_) core_.fail(r, false);  // never got a device
  }

 private:
  const ModelEnv& model(std::int32_t m) const { return env_.models[static_cast<std::size_t>(m)]; }

  // Static multiplexing: heaviest model first onto the least loaded device with memory room.
  void pack_models() {
    std::vector<double> load(env_.models.size(), 0.0);
    for (const auto& r : core_.workload.requests) load[static_cast<std::size_t>(r.model)] += r.input_tokens + r.output_tokens;
    std::vector<std::size_t> order(env_.models.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return load[a] > load[b]; });
    std::vector<double> dev_load(dev_.size(), 0.0), dev_bytes(dev_.size(), 0.0);
    const double budget = env_.usable_bytes * (1.0 - kMuxKvReserve);
    for (std::size_t m : order) {
      std::optional<std::size_t> best;
      for (std::size_t j = 0; j < dev_.size(); ++j) {
        if (dev_bytes[j] + env_.models[m].weight_bytes > budget) continue;
        if (!best || dev_load[j] < dev_load[*best]) best = j;
      }
      if (!best) continue;  // unserved model
      dev_[*best].slots.push_back(Slot{static_cast<std::int32_t>(m), {}, {}, 0});
      dev_load[*best] += load[m];
      dev_bytes[*best] += env_.models[m].weight_bytes;
    }
  }

  Run new_run(std::int64_t r) const {
    const auto& t = core_.workload.requests[static_cast<std::size_t>(r)];
    return Run{r, t.input_tokens, t.output_tokens, false};
  }

  double kv_capacity_bytes(const CDevice& d) const {
    double w = 0;
    for (const auto& s : d.slots) w += model(s.model).weight_bytes;
    return env_.usable_bytes - w;
  }
  double kv_used_bytes(const CDevice& d) const {
    double b = 0;
    for (const auto& s : d.slots) b += static_cast<double>(s.ctx_tokens) * model(s.model).kv_bytes_per_token;
    return b;
  }

  Slot* slot_of(CDevice& d, std::int32_t m) {
    for (auto& s : d.slots) {
      if (s.model == m) return &s;
    }
    return nullptr;
  }

  void enqueue(std::size_t j, std::int64_t r) {
    const auto m = core_.workload.requests[static_cast<std::size_t>(r)].model;
    slot_of(dev_[j], m)->waiting.push_back(new_run(r));
    schedule(j);
  }

  void on_arrival(std::int64_t r) {
    const auto m = core_.workload.requests[static_cast<std::size_t>(r)].model;
    if (kind_ == SystemKind::kDedicated || kind_ == SystemKind::kStaticMux) {
      std::optional<std::size_t> best;
      for (std::size_t j = 0; j < dev_.size(); ++j) {
        if (slot_of(dev_[j], m) && (!best || dev_[j].load() < dev_[*best].load())) best = j;
      }
      if (!best) {
        core_.fail(r, false);
        return;
      }
      enqueue(*best, r);
      return;
    }
    // Request-level: a device already serving m (below its batch limit), else an idle device
    // (warm first, then least recently used), else any device serving m, else the global queue.
    std::optional<std::size_t> serving, idle;
    for (std::size_t j = 0; j < dev_.size(); ++j) {
      const auto& d = dev_[j];
      const bool has_m = !d.slots.empty() && d.slots[0].model == m;
      const bool active = d.load() > 0 || d.busy;
      if (has_m && active && (!serving || d.load() < dev_[*serving].load())) serving = j;
      if (!active) {
        const bool warm = has_m;
        if (!idle) {
          idle = j;
        } else {
          const auto& cur = dev_[*idle];
          const bool cur_warm = !cur.slots.empty() && cur.slots[0].model == m;
          if ((warm && !cur_warm) || (warm == cur_warm && d.last_used_s < cur.last_used_s)) idle = j;
        }
      }
    }
    if (serving && dev_[*serving].load() < env_.config.max_batch_size) {
      enqueue(*serving, r);
    } else if (idle) {
      assign(*idle, m);
      enqueue(*idle, r);
    } else if (serving) {
      enqueue(*serving, r);
    } else {
      global_.push_back(r);
    }
  }

  // Makes device j serve model m, loading its weights when needed.
  void assign(std::size_t j, std::int32_t m) {
    CDevice& d = dev_[j];
    d.last_used_s = core_.now();
    if (!d.slots.empty() && d.slots[0].model == m) return;
    d.slots.assign(1, Slot{m, {}, {}, 0});
    const double s = model(m).load_s;
    core_.add_switch(s, true);
    d.busy = true;
    d.op = CDevice::Op::kSwitch;
    core_.at(core_.now() + s, kDone, static_cast<std::int64_t>(j));
  }

  // Request-level: an empty device takes the model of the first (FCFS) or shortest (SRTF) request
  // of the global queue, with every queued request of that model.
  void on_drained(std::size_t j) {
    std::erase_if(global_, [&](std::int64_t r) { return turned_away(r); });
    if (global_.empty()) return;
    auto pick = global_.begin();
    if (srtf_) {
      pick = std::min_element(global_.begin(), global_.end(), [&](std::int64_t a, std::int64_t b) {
        const auto& ra = core_.workload.requests[static_cast<std::size_t>(a)];
        const auto& rb = core_.workload.requests[static_cast<std::size_t>(b)];
        return ra.input_tokens + ra.output_tokens < rb.input_tokens + rb.output_tokens;
      });
    }
    const auto m = core_.workload.requests[static_cast<std::size_t>(*pick)].model;
    assign(j, m);
    Slot& s = dev_[j].slots[0];
    std::vector<std::int64_t> rest;
    for (std::int64_t r : global_) {
      if (core_.workload.requests[static_cast<std::size_t>(r)].model == m) {
        s.waiting.push_back(new_run(r));
      } else {
        rest.push_back(r);
      }
    }
    global_.swap(rest);
    schedule(j);
  }

  void schedule(std::size_t j) {
    CDevice& d = dev_[j];
    if (d.busy || d.slots.empty()) return;
    const double cap = kv_capacity_bytes(d);
    double used = kv_used_bytes(d);
    std::int64_t running = 0;
    for (const auto& s : d.slots) running += static_cast<std::int64_t>(s.running.size());
    // 1. Prefill (vLLM's default priority), round-robin over the device's models.
    for (std::size_t k = 0; k < d.slots.size(); ++k) {
      const std::size_t si = (d.rr + k) % d.slots.size();
      Slot& s = d.slots[si];
      std::erase_if(s.waiting, [&](const Run& w) { return !w.prefilled && turned_away(w.request); });
      if (s.waiting.empty()) continue;
      if (srtf_) {
        std::stable_sort(s.waiting.begin(), s.waiting.end(), [](const Run& a, const Run& b) {
          return a.ctx + a.remaining < b.ctx + b.remaining;
        });
      }
      const double kvb = model(s.model).kv_bytes_per_token;
      std::vector<Run> take;
      std::int64_t tokens = 0;
      std::size_t n = 0;
      for (; n < s.waiting.size(); ++n) {
        const Run& w = s.waiting[n];
        const double need = (w.ctx + 1) * kvb;
        if (running + static_cast<std::int64_t>(take.size()) >= env_.config.max_batch_size) break;
        if (used + need > cap) break;
        if (!take.empty() && tokens + w.ctx > kMaxPrefillTokens) break;
        take.push_back(w);
        used += need;
        tokens += w.prefilled ? 0 : w.ctx;
      }
      if (take.empty()) {
        // A request whose KV alone exceeds the device can never run: drop it instead of hanging.
        if (running == 0 && used <= 0.0 && (s.waiting.front().ctx + 1) * kvb > cap) {
          core_.fail(s.waiting.front().request, false);
          s.waiting.erase(s.waiting.begin());
          schedule(j);
          return;
        }
        continue;
      }
      s.waiting.erase(s.waiting.begin(), s.waiting.begin() + static_cast<std::ptrdiff_t>(n));
      double sum = 0, sum_sq = 0;
      for (const auto& w : take) {
        if (w.prefilled) continue;
        sum += w.ctx;
        sum_sq += static_cast<double>(w.ctx) * w.ctx;
      }
      const double cost = sum > 0 ? model(s.model).prefill.estimate_s(sum, sum_sq) : 0.0;
      core_.add_compute(cost);
      d.op = CDevice::Op::kPrefill;
      d.op_slot = si;
      d.op_runs = std::move(take);
      start(j, cost);
      return;
    }
    // 2. One decode step of the next model with running requests.
    for (std::size_t k = 0; k < d.slots.size(); ++k) {
      const std::size_t si = (d.rr + k) % d.slots.size();
      Slot& s = d.slots[si];
      if (s.running.empty()) continue;
      const double cost = model(s.model).decode.estimate_s(static_cast<double>(s.ctx_tokens), static_cast<double>(s.running.size()));
      core_.add_compute(cost);
      d.op = CDevice::Op::kStep;
      d.op_slot = si;
      d.rr = (si + 1) % d.slots.size();
      start(j, cost);
      return;
    }
    // 3. Nothing to do.
    if (kind_ == SystemKind::kRequestLevel || kind_ == SystemKind::kRequestLevelSrtf) on_drained(j);
  }

  // Admission, as aegaeon's front door applies it: a prompt still waiting at its deadline is
  // turned away (429) rather than started late. True when `r` was.
  bool turned_away(std::int64_t r) {
    if (!env_.config.admission.enabled) return false;
    const double arrival_s = core_.workload.requests[static_cast<std::size_t>(r)].arrival_s;
    if (core_.now() < policy::admission_deadline_s(env_.config.admission, env_.config.slo, arrival_s)) return false;
    core_.fail(r, /*rejected=*/true);
    return true;
  }

  void start(std::size_t j, double cost) {
    dev_[j].busy = true;
    dev_[j].last_used_s = core_.now();
    core_.at(core_.now() + cost, kDone, static_cast<std::int64_t>(j));
  }

  void on_done(std::size_t j) {
    CDevice& d = dev_[j];
    d.busy = false;
    if (d.op == CDevice::Op::kPrefill) {
      Slot& s = d.slots[d.op_slot];
      for (Run w : d.op_runs) {
        if (!w.prefilled) {
          core_.token(w.request);
          w.ctx += 1;
          w.remaining -= 1;
          w.prefilled = true;
        }
        if (w.remaining <= 0) continue;
        s.ctx_tokens += w.ctx;
        s.running.push_back(w);
      }
      d.op_runs.clear();
    } else if (d.op == CDevice::Op::kStep) {
      Slot& s = d.slots[d.op_slot];
      std::size_t keep = 0;
      std::int64_t ctx = 0;
      for (std::size_t k = 0; k < s.running.size(); ++k) {
        Run w = s.running[k];
        core_.token(w.request);
        ++w.ctx;
        --w.remaining;
        if (w.remaining <= 0) continue;
        ctx += w.ctx;
        s.running[keep++] = w;
      }
      s.running.resize(keep);
      s.ctx_tokens = ctx;
      // KV outgrew the device: preempt the newest requests back to the queue (vLLM's policy;
      // their KV is kept on host, so readmission costs nothing here — optimistic for baselines).
      while (kv_used_bytes(d) > kv_capacity_bytes(d) && s.running.size() > 1) {
        s.ctx_tokens -= s.running.back().ctx;
        s.waiting.insert(s.waiting.begin(), s.running.back());
        s.running.pop_back();
      }
    }
    d.op = CDevice::Op::kNone;
    schedule(j);
  }

  SimCore& core_;
  const Env& env_;
  SystemKind kind_;
  bool srtf_;
  std::vector<CDevice> dev_;
  std::vector<std::int64_t> global_;
};

}  // namespace

void run_colocated(SimCore& core) { ColocatedSystem(core).run(); }

}  // namespace aegaeon::sim::detail
