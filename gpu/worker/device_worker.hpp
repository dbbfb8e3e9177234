// DeviceWorker: everything one device does for the serving runtime, as plain synchronous C++
// (no threads of its own beyond the backend's, no CAF): the arena carved
// `| KV | weight slot × N | scratch |`, a switch (activate a model already in a slot, adopt a
// finished prefetch, or copy its weights into a slot), prefill and decode steps with sampling,
// and per-sequence KV swap and handoff. The gpu_worker actor owns one and calls it from its thread only.
//
// CONTRACT (written by the serving-runtime owner; the implementer may extend it, and must keep
// these calls and their meaning).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/generation.hpp"
#include "core/host_bytes.hpp"
#include "core/result.hpp"
#include "gpu/model/sampler.hpp"
#include "gpu/worker/host_model_cache.hpp"

namespace aegaeon::worker {

using core::ModelId;
/// A sequence is its request: the device names it by the request's id.
using SeqId = core::RequestId;

/// How to build one device.
struct DeviceWorkerOptions {
  std::string device = "cpu";          ///< "cpu", or "cuda" / "cuda:N" (one NVIDIA GPU)
  int threads = 1;                     ///< CPU backend compute threads
  /// Whole device arena; 0: exactly kv_bytes + weights + prefetch + runner scratch. When set,
  /// the KV region gets everything the other regions leave (at least kv_bytes).
  std::uint64_t arena_bytes = 0;
  std::uint64_t kv_bytes = 64 << 20;   ///< KV blocks region (minimum)
  /// Regions for weights, each sized for the largest model and holding any one: 1 = one model
  /// at a time, no prefetch; 2 = the running model and the next one prefetched (the paper's
  /// device); more = several models resident at once (switching among them copies nothing);
  /// 0 = one per served model.
  int weight_slots = 2;
  int host_kv_blocks = 4096;           ///< host slab blocks for swapped-out KV
  int max_batch_tokens = 512;
  int max_batch_seqs = 32;
};

/// The backend of a process's device `index` when its devices are configured as `configured`:
/// "cuda" spreads them over the visible GPUs (device d on GPU d mod their count); "cpu" and
/// "cuda:N" are taken as they are.
std::string device_for(const std::string& configured, int index);

/// Measured cost of a switch (for the cost model's online refit and the metrics).
struct SwitchStats {
  std::uint64_t bytes_copied = 0;  ///< 0 when a finished prefetch was adopted or the model was resident
  double seconds = 0;
  bool from_prefetch = false;
  std::vector<ModelId> resident;   ///< the models in the device's slots afterwards
};

/// Cumulative counts of one device since it was created (for the Prometheus counters).
struct WorkerCounters {
  std::uint64_t switches = 0;            ///< switch_model calls that copied or adopted weights
  std::uint64_t switches_adopted = 0;    ///< of those, adoptions of a finished prefetch
  std::uint64_t weights_copy_bytes = 0;  ///< bytes copied into weight regions (switch + prefetch)
  std::uint64_t kv_swap_bytes = 0;       ///< KV bytes moved by swap_out and swap_in
  std::uint64_t kv_transfer_bytes = 0;   ///< KV bytes moved by export_sequence/import_sequence
};

/// How a device's arena is carved, in bytes (for the start-up log and capacity planning).
struct ArenaLayout {
  std::uint64_t kv_bytes = 0;           ///< paged KV blocks, shared by every model's KV shape
  std::uint64_t weight_slot_bytes = 0;  ///< one weight slot: sized for the largest served model
  std::uint64_t weight_slots = 0;       ///< how many (resident models + prefetch)
  std::uint64_t scratch_bytes = 0;      ///< activations of one forward
  [[nodiscard]] std::uint64_t total_bytes() const {
    return kv_bytes + weight_slots * weight_slot_bytes + scratch_bytes;
  }
};

/// A new sequence to prefill.
struct PrefillItem {
  SeqId seq = 0;
  std::vector<std::int32_t> prompt;
  core::SamplingParams sampling;
  /// A request resumed elsewhere (its worker died): how many of the prompt's last tokens it
  /// generated before. They count for the penalties, and a seeded random stream goes on after
  /// them, so the output continues as if nothing had happened. At most the prompt's size.
  std::int32_t resumed_tokens = 0;
  /// When the sequence ends; the device decides it after each token (SampledToken::finish).
  core::StopConditions stop;
  /// Structured outputs: where the output must start (its sampler clones it), or null.
  std::shared_ptr<const core::TokenConstraint> constraint;
};

/// A token and the model's log-probability of it at that step.
using TokenLogprob = core::TokenLogprob;

/// One sampled token of a sequence, with its log-probability and, when the sequence's
/// SamplingParams::top_logprobs asks for them, the most likely tokens of that step (best first).
struct SampledToken {
  static constexpr std::int32_t kNone = -1;
  SeqId seq = 0;
  /// kNone when nothing was sampled: a prefill with max_tokens 0 only scores its prompt.
  std::int32_t token = 0;
  float logprob = 0;
  std::vector<TokenLogprob> top_logprobs;
  /// kStop: `token` is one of the sequence's stop tokens (it ends the generation and is not part
  /// of its text); kLength: the sequence has its max_tokens; kNone: it goes on.
  core::FinishReason finish = core::FinishReason::kNone;
  /// A prefill's token, when SamplingParams::prompt_logprobs asked: the prompt's scores (as
  /// core::TokenEvent's fields of the same names).
  std::vector<float> prompt_logprobs;
  std::vector<std::vector<TokenLogprob>> prompt_top_logprobs;

  /// Whether `token` is part of the output (not a stop token, not kNone).
  [[nodiscard]] bool is_output() const { return token != kNone && finish != core::FinishReason::kStop; }
};

/// A sequence's KV in host memory, for handoff between devices (prefill → decode).
struct KvExport {
  SeqId seq = 0;
  ModelId model = 0;
  std::int32_t tokens = 0;
  core::HostBytes bytes;  ///< blocks in cache layout, block after block
  // The sequence's state besides its KV, filled by export_sequence (or, across processes, by the
  // adopting worker from the job) so the importer continues exactly.
  core::StopConditions stop;            ///< when it ends
  std::int32_t produced = 0;            ///< tokens this generation sampled so far (max/min tokens count these)
  std::int32_t last_token = -1;          ///< token the next decode step appends
  /// Tokens generated so far, for the penalties: a resumed request's earlier ones included.
  std::vector<std::int32_t> generated;
  /// The sequence's sampler (its settings, the prompt tokens its repetition penalty counts, its
  /// generator state): required. An export moves it; a worker adopting a handoff from another
  /// process builds it from the job, skipping the draws of the tokens generated so far, so a
  /// seeded stream continues as on one device.
  std::optional<model::Sampler> sampler;
};

/// One device. Not thread-safe: one owner thread.
///
/// Weights: `weight_slots` regions; the models in them are resident, and one of them is active
/// (the one prefill and decode_step run). Activating a resident model copies nothing.
///
/// KV placement: one memory::KvCache per distinct KV shape (layers, kv_heads, head_dim), all
/// taking blocks from one memory::KvSpace over the KV region, each with its own host slab: every
/// model's sequences may hold device KV at once, whatever model is active, as long as the space
/// has room.
class DeviceWorker {
 public:
  /// Creates the backend, carves the arena for the largest cached model. kResourceExhausted
  /// when the arena cannot hold weights + KV; the message says how many bytes were needed.
  static core::Result<std::unique_ptr<DeviceWorker>> create(
      DeviceWorkerOptions options, std::shared_ptr<const HostModelCache> cache);
  virtual ~DeviceWorker() = default;

  /// The active model (the one prefill and decode_step run), if any.
  [[nodiscard]] virtual std::optional<ModelId> resident_model() const = 0;
  /// Every model whose weights are in a slot (a prefetch still copying included).
  [[nodiscard]] virtual std::vector<ModelId> resident_models() const = 0;
  /// Makes `model` the active one: at once when it is in a slot (waiting only for a prefetch of
  /// it still copying: an adoption), else copies its weights into a free slot, or over the
  /// slot of an unadopted prefetch, or the least recently active one (8 MiB chunks on the copy
  /// queue, behind copies already queued there) and waits for them. Other models' sequences
  /// keep their KV. Runners for every (model, slot) were bound at create(); nothing is
  /// allocated. kFailedPrecondition when the model is unloaded (HostModelCache::loaded).
  virtual core::Result<SwitchStats> switch_model(ModelId model) = 0;
  /// Starts copying `model` into a slot in the background (a free one, else an unadopted
  /// prefetch's, else the least recently active one other than the active model); no-op if it is
  /// already in a slot or there is only one slot. Never blocks. kFailedPrecondition when the model
  /// is unloaded.
  virtual core::Result<void> prefetch(ModelId model) = 0;
  /// Forgets `model`'s weights on this device: waits for a copy of it still running, then its
  /// slot is free (the next switch copies it afresh). Sequences and their KV are untouched.
  /// After it, nothing of this device reads the model's host memory.
  virtual void forget_model(ModelId model) = 0;

  /// Prefills new sequences of the active model (one forward over all prompts, split into
  /// several when they exceed max_batch_tokens/max_batch_seqs) and samples each one's first
  /// token. Their KV stays on this device. All-or-nothing: on error no sequence is created.
  /// SampledToken::logprob is log softmax of the raw logits (temperature 1, no penalties): the
  /// model's probability of the token, whatever the sampling settings; prompt logprobs alike.
  /// A sequence whose max_tokens is 0 samples nothing (its prompt is scored) and ends there.
  virtual core::Result<std::vector<SampledToken>> prefill(std::span<const PrefillItem> items) = 0;
  /// One decode step for resident sequences of the active model: appends each sequence's last
  /// sampled token and samples the next one (with the sequence's SamplingParams and history).
  virtual core::Result<std::vector<SampledToken>> decode_step(std::span<const SeqId> seqs) = 0;

  /// Moves a sequence's KV to the host slab / back (asynchronous; kv_ready() says when done).
  virtual core::Result<void> swap_out(SeqId seq) = 0;
  virtual core::Result<void> swap_in(SeqId seq) = 0;
  /// True when the sequence's KV is on the device with no copy into it pending, i.e. a step
  /// would not wait for it (false when swapped out, parked or unknown). Never blocks.
  [[nodiscard]] virtual bool kv_ready(SeqId seq) = 0;
  /// Copies a resident sequence's KV (and sampling state) out for another device, then frees it.
  virtual core::Result<KvExport> export_sequence(SeqId seq) = 0;
  /// Adopts a sequence exported by another device (same model) with the state `kv` carries (its
  /// sampler included: kInvalidArgument without one). When its blocks fit, the KV is copied onto the device (asynchronously;
  /// kv_ready() says when); otherwise the worker keeps it on the host like a swapped-out sequence
  /// and swap_in() places it later.
  virtual core::Result<void> import_sequence(KvExport kv) = 0;
  /// Forgets a sequence (finished, cancelled) and frees its KV wherever it is.
  virtual void release(SeqId seq) = 0;
  /// True when the worker knows `seq` (resident, swapped out or parked after an import).
  [[nodiscard]] virtual bool contains(SeqId seq) const = 0;
  /// True when the sequence's KV occupies device blocks (resident, or a copy to the device is
  /// in flight); false when it is on the host slab or unknown.
  [[nodiscard]] virtual bool holds_device_kv(SeqId seq) const = 0;
  /// Every sequence whose KV occupies device blocks, in id order.
  [[nodiscard]] virtual std::vector<SeqId> device_sequences() const = 0;
  /// Tokens whose KV is written for `seq` (its context length), or -1 if unknown.
  [[nodiscard]] virtual std::int32_t context_tokens(SeqId seq) const = 0;

  /// KV tokens one batch of `model` can hold on this device (for the decode policy).
  [[nodiscard]] virtual std::int64_t kv_capacity_tokens(ModelId model) const = 0;
  /// Share of KV blocks in use, 0..1 (for aegaeon_kv_cache_usage_perc).
  [[nodiscard]] virtual double kv_usage() const = 0;
  /// Byte and switch counts so far.
  [[nodiscard]] virtual WorkerCounters counters() const = 0;
  /// The regions carved at create().
  [[nodiscard]] virtual ArenaLayout arena_layout() const = 0;
};

}  // namespace aegaeon::worker
