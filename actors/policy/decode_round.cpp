#include "actors/policy/decode_round.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace aegaeon::policy {

RoundPlan plan_round(std::span<const BatchLoad> batches, const DecodeRoundConfig& config,
                     std::optional<ModelId> resident) {
  RoundPlan plan;
  const std::size_t k = batches.size();
  plan.quota_s.assign(k, 0.0);
  if (k == 0) return plan;

  // Order: resident model first, then by first appearance; stable within a model.
  std::vector<ModelId> models;
  if (resident) {
    for (const auto& b : batches) {
      if (b.model == *resident) {
        models.push_back(*resident);
        break;
      }
    }
  }
  for (const auto& b : batches) {
    if (std::find(models.begin(), models.end(), b.model) == models.end()) models.push_back(b.model);
  }
  for (ModelId m : models) {
    for (std::size_t i = 0; i < k; ++i) {
      if (batches[i].model == m) plan.order.push_back(i);
    }
  }

  double sum_inv_n = 0.0;
  double min_n = std::numeric_limits<double>::infinity();
  std::vector<double> n(k);
  for (std::size_t i = 0; i < k; ++i) {
    n[i] = config.tbt_slo_s / std::max(batches[i].step_s, 1e-9);
    sum_inv_n += 1.0 / n[i];
    min_n = std::min(min_n, n[i]);
  }
  if (models.size() > 1) {
    for (ModelId m : models) {
      for (const auto& b : batches) {
        if (b.model == m) {
          if (!b.model_stays) plan.switch_s += b.model_switch_s;
          break;
        }
      }
    }
  }
  if (config.count_kv_swap && k > 1) {
    for (const auto& b : batches) plan.switch_s += b.kv_stays ? 0.0 : b.kv_swap_s;
  }
  const double c = plan.switch_s;
  const double paper_alpha = std::max(c / (min_n * config.q_max_s) + sum_inv_n, config.alpha_floor);
  plan.alpha = paper_alpha;
  if (config.max_round_s > 0.0 && c > 0.0) {
    // Σq + c = c·α/(α − Σ1/n) ≤ R  ⇔  α ≥ Σ1/n · R/(R − c); a switch time of R or more leaves no
    // quota at all.
    const double r = config.max_round_s;
    plan.alpha = std::max(plan.alpha, c < r ? sum_inv_n * r / (r - c) : std::numeric_limits<double>::infinity());
  }
  if (c > 0.0) {
    // An overloaded round (α > 1 even bounded) misses the SLO either way; it amortizes its
    // switches as the paper does rather than spend the device on them.
    const double quota_alpha = plan.alpha <= 1.0 ? plan.alpha : paper_alpha;
    const double denom = quota_alpha - sum_inv_n;  // ≥ c/(min n·Q_max) > 0 by α's definition
    for (std::size_t i = 0; i < k; ++i) plan.quota_s[i] = c / (n[i] * denom);
  } else if (k > 1) {
    // Nothing to switch (everything stays resident): each batch gets the same number of steps a
    // turn, 1/Σ(1/n), so the round lasts one TBT SLO. No token then waits longer than the SLO
    // for its batch's next turn, and a stream's tokens come in runs at the step time rather than
    // one per round (same throughput, same mean TBT, a short median gap).
    for (std::size_t i = 0; i < k; ++i) plan.quota_s[i] = config.tbt_slo_s / (n[i] * sum_inv_n);
  }
  plan.round_s = c;
  for (double q : plan.quota_s) plan.round_s += q;
  return plan;
}

}  // namespace aegaeon::policy
