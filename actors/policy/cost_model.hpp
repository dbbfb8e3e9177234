// Execution-time estimators the schedulers plan with, fitted by least squares from measured
// profiles and refittable online (PAPER-NOTES.md "Execution-time fits").
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "core/result.hpp"

namespace aegaeon::policy {

/// Weighted least squares for y ≈ p0 + p1·x1 + p2·x2. Keeps only the normal-equation sums, so
/// adding a measurement and refitting are O(1) (used to refit online from real step times).
class LinearFit3 {
 public:
  /// Adds one observation with weight `w` (use 1/y² to minimise relative error).
  void add(double x1, double x2, double y, double w = 1.0);
  /// Solves the normal equations; fails when fewer than 3 samples or they are degenerate.
  [[nodiscard]] core::Result<std::array<double, 3>> solve() const;
  /// Observations added so far.
  [[nodiscard]] std::int64_t samples() const { return samples_; }
  /// The smallest and largest x1 added (0 before any).
  [[nodiscard]] double x1_min() const { return samples_ > 0 ? x1_min_ : 0.0; }
  [[nodiscard]] double x1_max() const { return samples_ > 0 ? x1_max_ : 0.0; }

 private:
  std::array<double, 9> xtx_{};  // row-major 3x3 of Σ w·x xᵀ with x = (1, x1, x2)
  std::array<double, 3> xty_{};
  std::int64_t samples_ = 0;
  double x1_min_ = 0.0, x1_max_ = 0.0;
};

/// Prefill time of a batch: a + b·Σlen + c·Σlen² (Σlen² = Σ of squared prompt lengths).
struct PrefillCost {
  double a_s = 0.0, b_s = 0.0, c_s = 0.0;
  /// Estimated seconds for a batch with the given token sums.
  [[nodiscard]] double estimate_s(double sum_len, double sum_len_sq) const {
    return a_s + b_s * sum_len + c_s * sum_len_sq;
  }
  /// Estimated seconds for one prompt of `len` tokens.
  [[nodiscard]] double single_s(double len) const { return estimate_s(len, len * len); }
};

/// Decode step time of a batch: a + b·Σctx + c·B.
struct DecodeCost {
  double a_s = 0.0, b_s = 0.0, c_s = 0.0;
  /// Estimated seconds for one step of `batch` requests holding `sum_ctx` context tokens.
  [[nodiscard]] double estimate_s(double sum_ctx, double batch) const {
    return a_s + b_s * sum_ctx + c_s * batch;
  }
};

/// Per-model costs a decode instance plans with (index = ModelId). The caller owns the table
/// and may refit it between rounds.
struct ModelCosts {
  DecodeCost decode;
  double model_switch_s = 0.0;        ///< load the weights (bytes / host→device bandwidth)
  double kv_swap_s_per_token = 0.0;   ///< move one token of KV between host and device
  std::int64_t kv_capacity_tokens = 0;///< KV tokens one batch of this model may hold on device
  double weight_bytes = 0.0;          ///< the weights' size (elastic device memory only)
  double kv_bytes_per_token = 0.0;    ///< one token of KV (elastic device memory only)
};

/// Host→device copy time: bytes / (bandwidth · efficiency) + fixed latency.
struct TransferCost {
  double bandwidth_bytes_per_s = 32.0 * 1024 * 1024 * 1024;
  double efficiency = 1.0;
  double fixed_s = 0.0;
  /// Estimated seconds to move `bytes` across the link.
  [[nodiscard]] double estimate_s(double bytes) const {
    return bytes <= 0.0 ? 0.0 : fixed_s + bytes / (bandwidth_bytes_per_s * efficiency);
  }
};

/// One row of a measured profile: a batch of `batch_size` prompts of `input_len` tokens.
struct ProfileSample {
  double input_len = 0.0;
  double batch_size = 0.0;
  double prefill_s = 0.0;
  double decode_step_s = 0.0;
};

/// Prefill and decode estimators of one model on one device kind, refittable from measurements.
class ExecutionEstimator {
 public:
  /// Fits both estimators from profile rows (relative-error weighting); fails with fewer than
  /// 3 usable rows.
  static core::Result<ExecutionEstimator> fit(std::span<const ProfileSample> samples);
  /// An estimator with fixed coefficients (tests, hand-made devices).
  ExecutionEstimator(PrefillCost prefill, DecodeCost decode) : prefill_(prefill), decode_(decode) {}

  /// Current prefill estimator.
  [[nodiscard]] const PrefillCost& prefill() const { return prefill_; }
  /// Current decode estimator.
  [[nodiscard]] const DecodeCost& decode() const { return decode_; }

  /// Adds a measured prefill batch (caller refits when it wants new coefficients). Times that are
  /// not positive (a failed run) are ignored: samples are weighted by 1/t².
  void observe_prefill(double sum_len, double sum_len_sq, double measured_s);
  /// Adds a measured decode step.
  void observe_decode(double sum_ctx, double batch, double measured_s);
  /// Refits from every sample seen (profile + observed); keeps the old fit when degenerate. The
  /// prefill fit is taken only when its samples span prompt lengths at least
  /// kMinPrefillLengthSpread apart and its coefficients are non-negative: fitted on prompts of
  /// nearly one length, the quadratic term is noise, and extrapolated to a long prompt it
  /// predicted minutes for a prefill of a second (and admission refused it).
  void refit();
  static constexpr double kMinPrefillLengthSpread = 4.0;

 private:
  ExecutionEstimator() = default;
  PrefillCost prefill_;
  DecodeCost decode_;
  LinearFit3 prefill_fit_;
  LinearFit3 decode_fit_;
};

}  // namespace aegaeon::policy
