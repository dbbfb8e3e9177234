#include "actors/policy/cost_model.hpp"

#include <algorithm>
#include <cmath>

namespace aegaeon::policy {

void LinearFit3::add(double x1, double x2, double y, double w) {
  const std::array<double, 3> x{1.0, x1, x2};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) xtx_[i * 3 + j] += w * x[i] * x[j];
    xty_[i] += w * x[i] * y;
  }
  x1_min_ = samples_ == 0 ? x1 : std::min(x1_min_, x1);
  x1_max_ = samples_ == 0 ? x1 : std::max(x1_max_, x1);
  ++samples_;
}

core::Result<std::array<double, 3>> LinearFit3::solve() const {
  if (samples_ < 3) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "least-squares fit: need at least 3 samples, have " +
                           std::to_string(samples_));
  }
  // Gaussian elimination with partial pivoting on the 3x4 augmented matrix. The features have
  // very different scales (1, tokens, tokens²), so scale columns first for conditioning.
  std::array<double, 3> scale{};
  for (int i = 0; i < 3; ++i) scale[i] = xtx_[i * 3 + i] > 0 ? 1.0 / std::sqrt(xtx_[i * 3 + i]) : 1.0;
  double m[3][4];
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) m[i][j] = xtx_[i * 3 + j] * scale[i] * scale[j];
    m[i][3] = xty_[i] * scale[i];
  }
  for (int col = 0; col < 3; ++col) {
    int pivot = col;
    for (int r = col + 1; r < 3; ++r) {
      if (std::fabs(m[r][col]) > std::fabs(m[pivot][col])) pivot = r;
    }
    if (std::fabs(m[pivot][col]) < 1e-12) {
      return core::error(core::ErrorCode::kInvalidArgument,
                         "least-squares fit: samples are degenerate (a feature never varies)");
    }
    if (pivot != col) {
      for (int j = 0; j < 4; ++j) std::swap(m[pivot][j], m[col][j]);
    }
    for (int r = 0; r < 3; ++r) {
      if (r == col) continue;
      const double f = m[r][col] / m[col][col];
      for (int j = col; j < 4; ++j) m[r][j] -= f * m[col][j];
    }
  }
  std::array<double, 3> p{};
  for (int i = 0; i < 3; ++i) p[i] = m[i][3] / m[i][i] * scale[i];
  return p;
}

core::Result<ExecutionEstimator> ExecutionEstimator::fit(std::span<const ProfileSample> samples) {
  ExecutionEstimator est;
  for (const auto& s : samples) {
    if (s.input_len <= 0 || s.batch_size <= 0) continue;
    const double sum_len = s.input_len * s.batch_size;
    if (s.prefill_s > 0) est.observe_prefill(sum_len, s.input_len * s.input_len * s.batch_size, s.prefill_s);
    if (s.decode_step_s > 0) est.observe_decode(sum_len, s.batch_size, s.decode_step_s);
  }
  auto prefill = est.prefill_fit_.solve();
  if (!prefill.ok()) return prefill.error().with_context("prefill profile");
  auto decode = est.decode_fit_.solve();
  if (!decode.ok()) return decode.error().with_context("decode profile");
  est.prefill_ = PrefillCost{(*prefill)[0], (*prefill)[1], (*prefill)[2]};
  est.decode_ = DecodeCost{(*decode)[0], (*decode)[1], (*decode)[2]};
  return est;
}

void ExecutionEstimator::observe_prefill(double sum_len, double sum_len_sq, double measured_s) {
  if (!(measured_s > 0)) return;  // weighted by 1/t²: a zero (or NaN) time would poison the fit
  prefill_fit_.add(sum_len, sum_len_sq, measured_s, 1.0 / (measured_s * measured_s));
}

void ExecutionEstimator::observe_decode(double sum_ctx, double batch, double measured_s) {
  if (!(measured_s > 0)) return;
  decode_fit_.add(sum_ctx, batch, measured_s, 1.0 / (measured_s * measured_s));
}

void ExecutionEstimator::refit() {
  const bool spread = prefill_fit_.x1_max() >= kMinPrefillLengthSpread * prefill_fit_.x1_min();
  if (auto p = prefill_fit_.solve(); p.ok() && spread && (*p)[1] >= 0 && (*p)[2] >= 0) {
    prefill_ = PrefillCost{(*p)[0], (*p)[1], (*p)[2]};
  }
  if (auto d = decode_fit_.solve(); d.ok()) decode_ = DecodeCost{(*d)[0], (*d)[1], (*d)[2]};
}

}  // namespace aegaeon::policy
