// One round of weighted round-robin decoding: per-batch time quotas from step-time estimates
// and switch costs (PAPER-NOTES.md "Decode round").
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "actors/policy/request.hpp"

namespace aegaeon::policy {

/// Knobs of the decode round.
struct DecodeRoundConfig {
  double tbt_slo_s = 0.1;
  double q_max_s = 4.0;        ///< longest quota any batch gets (paper: 4 s)
  double alpha_floor = 0.5;    ///< α never drops below this (paper: 0.5)
  /// Also charge each batch's KV swap-in to the round's switch cost `c` when the round has more
  /// than one batch (the paper's `c` counts model loads only; swaps are real time too).
  bool count_kv_swap = true;
  /// Longest round (0: unbounded, the paper). A batch that arrives just after its turn waits
  /// nearly a round for its next token, and a new request has only its TTFT slack banked, so
  /// with Q_max alone (rounds of 4 s × batches) a device that time-shares many batches misses
  /// every newcomer's SLO while α ≤ 1 says it keeps the average. Bounding the round raises α
  /// instead: quotas amortize switches less, and admission sees the device as fuller.
  double max_round_s = 0.0;
};

/// What the round planner needs to know about one batch.
struct BatchLoad {
  ModelId model = 0;
  double step_s = 0.0;         ///< d_i: estimated decode step time of the batch
  double model_switch_s = 0.0; ///< time to load the batch's model weights
  double kv_swap_s = 0.0;      ///< time to swap the batch's KV back in
  /// The model's weights stay on the device through the round (several resident models): its
  /// turn costs no load.
  bool model_stays = false;
  /// The batch's KV stays on the device through the round (elastic KV): no swap-in.
  bool kv_stays = false;
};

/// Quotas and order of one round.
struct RoundPlan {
  double alpha = 0.0;          ///< α: mean TBT / TBT SLO the round achieves (≤ 1: SLO holds)
  double switch_s = 0.0;       ///< c: switch time spent per round
  double round_s = 0.0;        ///< Σq + c
  std::vector<double> quota_s; ///< q_i, indexed like the input batches
  std::vector<std::size_t> order;  ///< execution order: batches grouped by model
  /// True when α ≤ 1, i.e. the TBT SLO holds on average for every batch.
  [[nodiscard]] bool tbt_feasible() const { return alpha <= 1.0 + 1e-9; }
};

/// Plans a round (PAPER-NOTES): n_i = TBT/d_i; c = Σ distinct-model switch times (+ KV swaps),
/// leaving out models and KV that stay on the device;
/// α = max(c/(min n·Q_max) + Σ1/n, floor, Σ1/n · R/(R − c) for a bound R on the round);
/// q_i = c / (n_i (α − Σ 1/n)), so the round Σq + c = c·α/(α − Σ1/n) ≤ R. The order puts
/// `resident`'s batches first, then models in first-appearance order, so a round switches
/// model once per distinct model. With one batch, c = 0 and its quota is 0 (one step per round).
/// With several and c = 0 (all resident), q_i = TBT/(n_i Σ1/n): the round lasts one TBT SLO.
RoundPlan plan_round(std::span<const BatchLoad> batches, const DecodeRoundConfig& config,
                     std::optional<ModelId> resident = std::nullopt);

}  // namespace aegaeon::policy
