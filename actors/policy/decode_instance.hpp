// The decode policy of one decode instance (batches of one model each, weighted round-robin
// turns, swap-out, prefetch and batch truncation) and decode dispatch across instances
// (PAPER-NOTES.md "Decode dispatch" and "Decode round").
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "actors/policy/cost_model.hpp"
#include "actors/policy/decode_round.hpp"
#include "actors/policy/model_pins.hpp"
#include "actors/policy/request.hpp"
#include "actors/policy/weight_cache.hpp"

namespace aegaeon::policy {

/// Id of a decode batch, unique within its instance.
using BatchId = std::int64_t;

/// Knobs of a decode instance.
struct DecodeInstanceConfig {
  DecodeRoundConfig round;
  std::int32_t max_batch_size = 128;
  bool prefetch = true;  ///< emit prefetch hints for the next different model
  /// true: weighted round-robin turns with quotas, a batch may be stopped between two tokens.
  /// false (request-level baseline): the batch on the device runs until its last request ends;
  /// then the device keeps its model while it has batches of it, else takes the oldest batch.
  bool preemptive = true;
  /// Device bytes for weights and KV together. > 0 (elastic memory): several models stay
  /// resident while they fit (a WeightCache), every batch's KV stays on the device while it
  /// fits, and a switch evicts only what the incoming batch needs, the cheapest loss first:
  /// idle models, then other batches' KV (the batch whose turn is furthest first), then their
  /// models. With everything resident a round costs nothing (c = 0) and turns are single steps,
  /// as spatial multiplexing interleaves them. 0: the paper's device, one model's weights and
  /// one batch's KV at a time, every turn a switch.
  double memory_bytes = 0.0;
  /// A new batch gets its turn right after the running one, with the quota a round including it
  /// would give it. false (the paper): it waits for the next round with quota 0, which near α ≈ 1
  /// is several seconds without a token.
  bool immediate_turns = false;
  /// > 0 (with memory_bytes): the device keeps weights in this many regions of their own, each
  /// holding any one model (the runtime's DeviceWorker), and memory_bytes is its KV space alone.
  /// 0 (the simulator's devices): weights and KV share memory_bytes.
  std::int32_t weight_slots = 0;
};

/// A request in the decode phase.
struct DecodeRequest {
  RequestInfo info;
  std::int32_t context_tokens = 0;    ///< KV tokens held (prompt + generated)
  std::int32_t remaining_tokens = 0;  ///< tokens still to generate
};

/// A batch: requests of one model decoded together.
struct DecodeBatch {
  BatchId id = 0;
  ModelId model = 0;
  std::vector<DecodeRequest> requests;
  std::int64_t context_tokens = 0;  ///< Σ context of its requests (its KV size in tokens)
};

/// What a decode instance should do next.
struct DecodeAction {
  /// kLoad and kPrefill come only from prompts queued with add_prefill (elastic memory).
  enum class Kind { kIdle, kSwitch, kStep, kLoad, kPrefill };
  Kind kind = Kind::kIdle;
  RequestId request = 0;             ///< kPrefill: the prompt to prefill
  BatchId batch = 0;                 ///< kSwitch: batch to make current; kStep: batch to step
  ModelId model = 0;                 ///< that batch's model (kLoad, kPrefill: the prompt's model)
  bool load_model = false;           ///< kSwitch: its weights are not resident (kLoad: always)
  std::vector<ModelId> evict;        ///< kSwitch, kLoad: models whose weights leave the device first
  std::vector<BatchId> swap_out;     ///< kSwitch, kLoad: batches whose KV leaves the device first
  std::int64_t swap_out_tokens = 0;  ///< their KV size
  std::int64_t swap_in_tokens = 0;   ///< kSwitch: KV tokens to bring in for `batch`
  std::optional<ModelId> prefetch_model;  ///< next different model of the round
};

/// Result of one decode step.
struct StepOutcome {
  std::vector<RequestId> finished;      ///< requests that produced their last token
  std::optional<BatchId> split_batch;   ///< truncation: new batch holding requests moved out
  std::int64_t split_tokens = 0;        ///< KV tokens moved out (to swap to host)
  /// Elastic memory: the batch's KV grew past what the device holds, so these models left and
  /// these other batches' KV went to host (swap_out_tokens in all) before any truncation.
  std::vector<ModelId> evicted;
  std::vector<BatchId> swapped_out;
  std::int64_t swap_out_tokens = 0;
};

/// Decode policy state of one instance. Event methods return decisions; nothing blocks.
class DecodeInstance {
 public:
  /// An instance planning with `costs` (borrowed; must outlive the instance).
  DecodeInstance(DecodeInstanceConfig config, std::span<const ModelCosts> costs);

  /// A batch of `model` this request (with `context_tokens` of KV) may join: same model, not
  /// full, and its KV still fits on the device.
  [[nodiscard]] std::optional<BatchId> joinable_batch(ModelId model, std::int64_t context_tokens) const;
  /// Adds a prefilled request (its first token already produced) to `batch`, or to a new batch
  /// (quota 0 until the next round) when `batch` is empty. Returns the batch used. With
  /// `kv_here` (elastic memory) a new batch's KV counts as on the device already (the caller
  /// placed the request's KV there).
  BatchId add_request(const RequestInfo& request, std::optional<BatchId> batch, bool kv_here = false);
  /// The next thing to do at `now_s`, given the model resident on the device. Preemptive:
  /// starts turns, ends them when their quota is spent and starts new rounds. Otherwise steps the
  /// current batch until it is empty (see DecodeInstanceConfig::preemptive).
  DecodeAction next_action(double now_s, std::optional<ModelId> resident);
  /// Queues a prompt to prefill on this device (elastic memory): next_action interleaves
  /// prefills with turns, one prefill between two decode steps, loading its model (kLoad) when
  /// it is not resident.
  void add_prefill(const RequestInfo& request);
  /// The kLoad action was carried out: the model is resident, what it evicted has left.
  void on_loaded();
  /// The kPrefill of `request` finished (its first token is out): it joins a same-model batch
  /// whose KV is on the device, or opens one there. Returns the batch, or nothing when the
  /// request produced its only token.
  std::optional<BatchId> on_prefilled(RequestId request);
  /// A request prefilled elsewhere, placed here (elastic memory): it joins its batch at the next
  /// decision point (next_action), never in the middle of a step.
  void add_arrival(const RequestInfo& request);
  /// Prompts queued here and not yet prefilled.
  [[nodiscard]] std::size_t queued_prefills() const { return prefills_.size(); }
  /// The kSwitch action for `batch` was carried out: its KV and model are on the device, and
  /// what the action evicted and swapped out has left it.
  void on_switched(BatchId batch);
  /// The kStep on the current batch finished: every request got one token. `eos` lists requests
  /// that ended early. Truncates the batch when its KV outgrew the device.
  StepOutcome on_step_done(std::span<const RequestId> eos = {});

  /// The batch with this id, or nullptr.
  [[nodiscard]] const DecodeBatch* batch(BatchId id) const;
  /// Batches on this instance.
  [[nodiscard]] const std::vector<DecodeBatch>& batches() const { return batches_; }
  /// Batch whose KV is on the device, if any.
  [[nodiscard]] std::optional<BatchId> current_batch() const { return current_; }
  /// The plan of the running round.
  [[nodiscard]] const RoundPlan& round() const { return plan_; }
  /// α the next round would have if a request of `model` with `context_tokens` joined here by
  /// the dispatch rule (for admission control).
  /// Elastic memory counts the request's KV at its full length (`max_output_tokens`) and the
  /// requests placed here that have not joined a batch yet.
  [[nodiscard]] double what_if_alpha(ModelId model, std::int64_t context_tokens,
                                     std::optional<ModelId> resident, std::int32_t max_output_tokens = 1) const;
  /// Requests held by this instance.
  [[nodiscard]] std::int64_t requests() const;
  /// Whether `model`'s weights are on the device (elastic memory: any resident model; else the
  /// model of the batch last switched in).
  [[nodiscard]] bool holds_model(ModelId model) const { return weights_.contains(model); }
  /// The share of this device's decode time (the sum of its batches' step times) that `model`'s
  /// batches take; 0 when it has none.
  [[nodiscard]] double decode_share(ModelId model) const;
  /// Bytes of KV its batches will hold once every request has produced its last token.
  [[nodiscard]] double kv_bytes_at_completion() const;
  /// Seconds until the first of its requests ends, at the TBT SLO's pace (infinite when idle):
  /// when a request waiting for room here could expect it.
  [[nodiscard]] double first_finish_s() const;
  /// Bytes free on the device for weights and KV (elastic memory only; 0 otherwise).
  [[nodiscard]] double free_bytes() const;
  /// Whether `batch`'s KV is on the device (elastic memory: any batch's; else the current one).
  [[nodiscard]] bool holds_kv(BatchId batch) const { return kv_on_device(batch); }
  /// Elastic memory: whether a prefilled request joining `join` (or opening a batch, when empty)
  /// should bring its KV onto the device: where its batch's KV is, or for a new batch while the
  /// KV fits the free bytes. Always false for the paper's device (only the running batch's KV
  /// is there, which the caller knows). The argument to give add_request.
  [[nodiscard]] bool kv_lands_here(const RequestInfo& request, std::optional<BatchId> join) const;
  /// The knobs this instance runs with.
  [[nodiscard]] const DecodeInstanceConfig& config() const { return config_; }

 private:
  [[nodiscard]] BatchLoad load_of(ModelId model, std::int64_t context_tokens, std::int64_t size) const;
  void start_round(std::optional<ModelId> resident);
  [[nodiscard]] DecodeAction next_run_to_completion(std::optional<ModelId> resident) const;
  DecodeBatch* find(BatchId id);
  [[nodiscard]] std::optional<ModelId> prefetch_after(std::size_t pos, ModelId model) const;
  [[nodiscard]] bool elastic() const { return config_.memory_bytes > 0.0; }
  [[nodiscard]] bool kv_on_device(BatchId id) const;
  [[nodiscard]] double kv_bytes(const DecodeBatch& b) const;
  [[nodiscard]] double used_bytes() const;
  // Bytes `model`'s weights take from memory_bytes (none when they have slots of their own).
  [[nodiscard]] double weight_bytes(ModelId model) const;
  // Whether one more model fits the weight slots (always, without slots).
  [[nodiscard]] bool slot_free(std::size_t resident) const;
  [[nodiscard]] std::int64_t batch_capacity_tokens(ModelId model) const;
  // Fills `action` with what must leave the device so that `target` and its model fit.
  void make_room(const DecodeBatch& target, DecodeAction& action, double now_s) const;
  // Batches other than `keep` with KV on the device, the one whose next turn is furthest first.
  [[nodiscard]] std::vector<BatchId> swap_candidates(std::optional<BatchId> keep) const;
  void insert_turn(BatchId id);
  // Appends `request` (first token out) to `batch`, or to a new batch (whose KV is on the device
  // when `kv_here`), giving a new batch its turn (immediate_turns). Returns the batch.
  BatchId add_to_batch(const RequestInfo& request, std::optional<BatchId> batch, bool kv_here);
  // Round loads for the batches, the requests placed here and not batched yet, and `extra`: elastic memory keeps the
  // models and KV that fit resident through the round, the ones there now first; the rest cycle.
  [[nodiscard]] std::vector<BatchLoad> round_loads(std::optional<RequestInfo> extra = {}) const;
  void apply_pending();
  [[nodiscard]] std::optional<DecodeAction> next_prefill(double now_s);

  DecodeInstanceConfig config_;
  std::span<const ModelCosts> costs_;
  std::vector<DecodeBatch> batches_;
  BatchId next_batch_id_ = 1;
  std::optional<BatchId> current_;
  WeightCache weights_;
  std::vector<BatchId> kv_on_device_;  // batches whose KV is on the device
  DecodeAction pending_switch_;        // the kSwitch or kLoad in flight (applied on completion)
  std::vector<RequestInfo> prefills_;  // prompts to prefill here, FCFS
  std::vector<RequestInfo> arrivals_;  // prefilled elsewhere, to join a batch at the next decision
  bool prefilled_last_ = false;        // the last action was a prefill: a step comes next
  RoundPlan plan_;
  std::vector<BatchId> order_;         // this round's batches in execution order
  std::vector<double> order_quota_s_;  // their quotas
  std::size_t pos_ = 0;
  bool turn_started_ = false;
  double turn_start_s_ = 0.0;
};

/// Where a prompt of `model` should be prefilled when there are prefill instances too: on the
/// elastic decode instance that holds the model and would stay within the TBT SLO with the new
/// batch (lowest α first), so its weights need not be loaded on a prefill device as well; else
/// nothing (the prefill instances take it). Without prefill instances every prompt is prefilled
/// on a decode instance: decode_prefill_site picks one.
std::optional<InstanceId> resident_prefill_site(std::span<const DecodeInstance> instances, const RequestInfo& request,
                                                const ModelPins& pins = {});

/// Where a prefilled request goes for decoding.
struct DecodeDispatch {
  InstanceId instance = 0;
  std::optional<BatchId> batch;  ///< empty: open a new batch
};

/// Decode dispatch: join the first same-model batch (instance order) whose KV still fits, else
/// open a new batch on the instance with the fewest batches (ties: fewest requests, lowest index).
/// Elastic instances choose by cost instead: join a fitting same-model batch on an instance that
/// holds the model, else any fitting one; else open a batch where the next round's α would be
/// lowest (ties: the model resident, then most free memory, then fewest requests). Every choice
/// is confined to the instances `pins` allows for the model.
DecodeDispatch dispatch_decode(std::span<const DecodeInstance> instances, ModelId model,
                               std::int64_t context_tokens, const ModelPins& pins = {});

/// Placement with admission for elastic instances: the cost-aware choice of dispatch_decode, but
/// only where the next round's α stays ≤ 1 (every batch there keeps its TBT SLO). When no
/// instance can take the request so, nothing: it waits (FCFS, as request-level scaling queues),
/// which costs its own latency only, where overloading an instance would slow every batch on it
/// and, past α ≈ 1, turn its rounds into switches.
std::optional<DecodeDispatch> place_decode(std::span<const DecodeInstance> instances, const RequestInfo& request,
                                           const ModelPins& pins = {});

}  // namespace aegaeon::policy
