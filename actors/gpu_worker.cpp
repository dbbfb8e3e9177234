#include "actors/gpu_worker.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "actors/serving_atoms.hpp"
#include "actors/serving_metrics.hpp"
#include "core/thread_info.hpp"

namespace aegaeon::actors {
namespace {

using Clock = std::chrono::steady_clock;

struct GpuWorkerState {
  std::unique_ptr<worker::DeviceWorker> device;
  std::string device_name;
  std::shared_ptr<ServingMetrics> metrics;  // owns the families `series` refers into
  std::unique_ptr<DeviceSeries> series;
  std::shared_ptr<ResidencyBoard> residency;
  size_t slot = 0;
  worker::WorkerCounters reported;  // counters already added to the Prometheus families
  static inline const char* name = "gpu_worker";
};

caf::error failure(const core::Error& e) { return caf::make_error(caf::sec::runtime_error, e.message); }

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs one engine call (a forward pass) and books the device thread's CPU time inside it, so the
// thread's remaining CPU (mailbox, bookkeeping, metrics) is visibly the runtime's, not compute.
template <typename Call>
auto engine_call(GpuWorkerState& s, Call&& call) {
  const double cpu_start = core::current_thread_cpu_seconds();
  auto result = call();
  s.series->engine_cpu_s.Increment(core::current_thread_cpu_seconds() - cpu_start);
  return result;
}

// Publishes what the device did since the last report: switch latency, counters, residency
// and KV usage (after every command, so a release shows at once, not at the next step).
void report(GpuWorkerState& s, const worker::SwitchStats* stats = nullptr) {
  auto& series = *s.series;
  const auto now = s.device->counters();
  auto add = [](prometheus::Counter& counter, std::uint64_t after, std::uint64_t before) {
    if (after > before) counter.Increment(static_cast<double>(after - before));
  };
  add(series.switches_copied, now.switches - now.switches_adopted,
      s.reported.switches - s.reported.switches_adopted);
  add(series.switches_prefetched, now.switches_adopted, s.reported.switches_adopted);
  add(series.weights_copy_bytes, now.weights_copy_bytes, s.reported.weights_copy_bytes);
  add(series.kv_swap_bytes, now.kv_swap_bytes, s.reported.kv_swap_bytes);
  add(series.kv_handoff_bytes, now.kv_transfer_bytes, s.reported.kv_transfer_bytes);
  s.reported = now;
  if (stats != nullptr) series.switch_s.Observe(stats->seconds);
  s.residency->device_model[s.slot].store(s.device->resident_model().value_or(-1));
  series.kv_usage.Set(s.device->kv_usage());
}

// Runs `op` (which needs device KV blocks for `keep`); while the KV space is exhausted, moves
// the KV of another sequence to the host, the longest first, and runs it again. The decode
// policy plans KV by the token, but the device allocates 16-token blocks of several geometries,
// which can need more than it counted: a moved sequence comes back with its batch's next step
// (DecodeCommand swaps in what is on the host).
template <typename Op>
auto with_kv_room(GpuWorkerState& s, const std::vector<worker::SeqId>& keep, Op&& op) {
  auto result = op();
  if (result.ok() || result.error().code != core::ErrorCode::kResourceExhausted) return result;
  std::vector<worker::SeqId> others;
  for (auto seq : s.device->device_sequences()) {
    if (std::find(keep.begin(), keep.end(), seq) == keep.end()) others.push_back(seq);
  }
  std::stable_sort(others.begin(), others.end(), [&](worker::SeqId a, worker::SeqId b) {
    return s.device->context_tokens(a) > s.device->context_tokens(b);
  });
  for (auto seq : others) {
    if (!s.device->swap_out(seq).ok()) continue;  // the host slab is full too: try the next
    spdlog::debug("{}: KV space full, sequence {} moved to the host", s.device_name, seq);
    result = op();
    if (result.ok() || result.error().code != core::ErrorCode::kResourceExhausted) break;
  }
  return result;
}

// Brings the KV of those of `seqs` on the host onto the device.
core::Result<void> swap_in_all(GpuWorkerState& s, const std::vector<worker::SeqId>& seqs) {
  for (auto seq : seqs) {
    if (s.device->holds_device_kv(seq)) continue;
    AEGAEON_TRY(with_kv_room(s, seqs, [&] { return s.device->swap_in(seq); }));
  }
  return core::ok();
}

// Whether a switch moved weights (an activation of a resident model is not a switch).
bool copied(const worker::SwitchStats& stats) { return stats.bytes_copied > 0 || stats.from_prefetch; }

GpuWorkerActor::behavior_type gpu_worker(GpuWorkerActor::stateful_pointer<GpuWorkerState> self,
                                        std::shared_ptr<std::unique_ptr<worker::DeviceWorker>> device,
                                        std::string name, std::shared_ptr<ServingMetrics> metrics,
                                        std::shared_ptr<ResidencyBoard> residency, size_t slot) {
  auto& s = self->state;
  s.device = std::move(*device);
  s.device_name = std::move(name);
  s.metrics = std::move(metrics);
  s.series = std::make_unique<DeviceSeries>(*s.metrics, s.device_name);
  s.residency = std::move(residency);
  s.slot = slot;
  // A detached actor initializes on its own thread: name it for top -H and bench/e2e.
  core::set_current_thread_name(core::thread_names::kDevice);
  return {
      [self](switch_atom, core::ModelId model) -> caf::result<worker::SwitchStats> {
        auto& s = self->state;
        auto stats = s.device->switch_model(model);
        if (!stats.ok()) return failure(stats.error());
        report(s, copied(*stats) ? &*stats : nullptr);
        return *stats;
      },
      [self](prefetch_atom, core::ModelId model) {
        if (auto started = self->state.device->prefetch(model); !started.ok()) {
          spdlog::warn("{}: prefetch of model {} failed: {}", self->state.device_name, model, started.error().message);
        }
      },
      [self](prefill_atom, const worker::PrefillItem& item) -> caf::result<PrefillOutcome> {
        auto& s = self->state;
        auto start = Clock::now();
        auto tokens = engine_call(s, [&] { return s.device->prefill(std::span<const worker::PrefillItem>(&item, 1)); });
        if (!tokens.ok()) return failure(tokens.error());
        PrefillOutcome outcome;
        outcome.first = tokens->at(0);
        outcome.seconds = since(start);
        // A prefill device keeps no KV: it goes to decode with the request.
        auto kv = s.device->export_sequence(item.seq);
        if (!kv.ok()) return failure(kv.error());
        outcome.kv = std::move(*kv);
        report(s);
        return outcome;
      },
      [self](import_atom, ImportCommand& command) -> caf::result<bool> {
        auto& s = self->state;
        worker::SeqId seq = command.kv.seq;
        auto imported = s.device->import_sequence(std::move(command.kv));
        if (!imported.ok()) return failure(imported.error());
        // An import for a non-resident model already lands on the host slab.
        if (command.park && s.device->holds_device_kv(seq)) {
          if (auto parked = s.device->swap_out(seq); !parked.ok()) return failure(parked.error());
        }
        report(s);
        return true;
      },
      [self](switch_atom, const SwitchBatchCommand& command) -> caf::result<worker::SwitchStats> {
        auto& s = self->state;
        for (auto model : command.evict) s.device->forget_model(model);
        for (auto seq : command.swap_out) {
          if (!s.device->holds_device_kv(seq)) continue;
          if (auto out = s.device->swap_out(seq); !out.ok()) return failure(out.error());
        }
        worker::SwitchStats stats;
        if (command.load) {
          auto switched = s.device->switch_model(*command.load);
          if (!switched.ok()) return failure(switched.error());
          stats = *switched;
        }
        if (auto in = swap_in_all(s, command.swap_in); !in.ok()) return failure(in.error());
        report(s, copied(stats) ? &stats : nullptr);
        return stats;
      },
      [self](decode_atom, const DecodeCommand& command) -> caf::result<DecodeOutcome> {
        auto& s = self->state;
        auto switched = s.device->switch_model(command.model);
        if (!switched.ok()) return failure(switched.error());
        if (auto in = swap_in_all(s, command.seqs); !in.ok()) return failure(in.error());
        auto start = Clock::now();  // the step alone: the decode cost model learns from it
        auto tokens = with_kv_room(s, command.seqs, [&] { return engine_call(s, [&] { return s.device->decode_step(command.seqs); }); });
        if (!tokens.ok()) return failure(tokens.error());
        DecodeOutcome outcome{std::move(*tokens), since(start), s.device->kv_usage()};
        report(s, copied(*switched) ? &*switched : nullptr);
        return outcome;
      },
      [self](swapout_atom, const std::vector<worker::SeqId>& seqs) {
        for (auto seq : seqs) {
          if (auto out = self->state.device->swap_out(seq); !out.ok()) {
            spdlog::warn("{}: swap-out of {} failed: {}", self->state.device_name, seq, out.error().message);
          }
        }
        report(self->state);
      },
      [self](forget_atom, core::ModelId model) {
        self->state.device->forget_model(model);
        report(self->state);
        return true;
      },
      [self](release_atom, worker::SeqId seq) {
        self->state.device->release(seq);
        report(self->state);
      },
  };
}

}  // namespace

GpuWorkerActor spawn_gpu_worker(caf::actor_system& system, std::unique_ptr<worker::DeviceWorker> device,
                                std::string name, std::shared_ptr<ServingMetrics> metrics,
                                std::shared_ptr<ResidencyBoard> residency, size_t slot) {
  // CAF copies spawn arguments; the device travels inside a shared_ptr and is moved out once.
  auto holder = std::make_shared<std::unique_ptr<worker::DeviceWorker>>(std::move(device));
  return system.spawn<caf::detached>(gpu_worker, std::move(holder), std::move(name), std::move(metrics),
                                     std::move(residency), slot);
}

}  // namespace aegaeon::actors
