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

namespace aegaeon::policy {

/// Id of a decode batch, unique within its instance.
using BatchId = std::int64_t;

/// Per-model costs a decode instance plans with (index = ModelId). The caller owns the table
/// and may refit it between rounds.
struct ModelCosts {
  DecodeCost decode;
  double model_switch_s = 0.0;        ///< load the weights (bytes / host→device bandwidth)
  double kv_swap_s_per_token = 0.0;   ///< move one token of KV between host and device
  std::int64_t kv_capacity_tokens = 0;///< KV tokens one batch of this model may hold on device
};

/// Knobs of a decode instance.
struct DecodeInstanceConfig {
  DecodeRoundConfig round;
  std::int32_t max_batch_size = 128;
  bool prefetch = true;  ///< emit prefetch hints for the next different model
  /// true: weighted round-robin turns with quotas, a batch may be stopped between two tokens.
  /// false (request-level baseline): the batch on the device runs until its last request ends;
  /// then the device keeps its model while it has batches of it, else takes the oldest batch.
  bool preemptive = true;
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
  enum class Kind { kIdle, kSwitch, kStep };
  Kind kind = Kind::kIdle;
  BatchId batch = 0;                 ///< kSwitch: batch to make current; kStep: batch to step
  ModelId model = 0;                 ///< that batch's model
  bool load_model = false;           ///< kSwitch: its weights are not resident
  std::optional<BatchId> swap_out;   ///< kSwitch: batch whose KV leaves the device first
  std::int64_t swap_out_tokens = 0;  ///< its KV size
  std::int64_t swap_in_tokens = 0;   ///< kSwitch: KV tokens to bring in for `batch`
  std::optional<ModelId> prefetch_model;  ///< next different model of the round
};

/// Result of one decode step.
struct StepOutcome {
  std::vector<RequestId> finished;      ///< requests that produced their last token
  std::optional<BatchId> split_batch;   ///< truncation: new batch holding requests moved out
  std::int64_t split_tokens = 0;        ///< KV tokens moved out (to swap to host)
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
  /// (quota 0 until the next round) when `batch` is empty. Returns the batch used.
  BatchId add_request(const RequestInfo& request, std::optional<BatchId> batch);
  /// The next thing to do at `now_s`, given the model resident on the device. Preemptive:
  /// starts turns, ends them when their quota is spent and starts new rounds. Otherwise steps the
  /// current batch until it is empty (see DecodeInstanceConfig::preemptive).
  DecodeAction next_action(double now_s, std::optional<ModelId> resident);
  /// The kSwitch action for `batch` was carried out: its KV and model are on the device.
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
  [[nodiscard]] double what_if_alpha(ModelId model, std::int64_t context_tokens,
                                     std::optional<ModelId> resident) const;
  /// Requests held by this instance.
  [[nodiscard]] std::int64_t requests() const;

 private:
  [[nodiscard]] BatchLoad load_of(ModelId model, std::int64_t context_tokens, std::int64_t size) const;
  void start_round(std::optional<ModelId> resident);
  [[nodiscard]] DecodeAction next_run_to_completion(std::optional<ModelId> resident) const;
  DecodeBatch* find(BatchId id);
  [[nodiscard]] std::optional<ModelId> prefetch_after(std::size_t pos, ModelId model) const;

  DecodeInstanceConfig config_;
  std::span<const ModelCosts> costs_;
  std::vector<DecodeBatch> batches_;
  BatchId next_batch_id_ = 1;
  std::optional<BatchId> current_;
  RoundPlan plan_;
  std::vector<BatchId> order_;         // this round's batches in execution order
  std::vector<double> order_quota_s_;  // their quotas
  std::size_t pos_ = 0;
  bool turn_started_ = false;
  double turn_start_s_ = 0.0;
};

/// Where a prefilled request goes for decoding.
struct DecodeDispatch {
  InstanceId instance = 0;
  std::optional<BatchId> batch;  ///< empty: open a new batch
};

/// Decode dispatch: join the first same-model batch (instance order) whose KV still fits, else
/// open a new batch on the instance with the fewest batches (ties: fewest requests, lowest index).
/// Both choices are confined to the instances `pins` allows for the model.
DecodeDispatch dispatch_decode(std::span<const DecodeInstance> instances, ModelId model,
                               std::int64_t context_tokens, const ModelPins& pins = {});

}  // namespace aegaeon::policy
