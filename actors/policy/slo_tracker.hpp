// Per-request SLO accounting: token deadlines, the paper's time-based qos and the field's
// request-level SLO check (PAPER-NOTES.md "Metrics").
#pragma once

#include <cstdint>
#include <vector>

#include "actors/policy/request.hpp"

namespace aegaeon::policy {

/// Follows one request's tokens and scores them against its SLO.
///
/// Paper metric: token k (0 = first token) is due at `start + TTFT + k·TBT`. The interval
/// between the previous token (or the arrival) and token k counts as "within SLO" when token k
/// meets its deadline. A late token re-anchors the schedule at itself (later tokens are due
/// `TBT` apart from it), so one stall is charged once instead of failing every later token.
/// qos = time within SLO / total service time (arrival to last token).
class SloTracker {
 public:
  /// Starts accounting for a request that arrived at `arrival_s`.
  SloTracker(Slo slo, double arrival_s);

  /// Records the next token, produced at `t_s` (non-decreasing).
  void on_token(double t_s);

  /// Deadline of the next token under the paper's schedule.
  [[nodiscard]] double next_deadline_s() const;
  /// Tokens produced so far.
  [[nodiscard]] std::int32_t tokens() const { return tokens_; }
  /// Time of the first token minus arrival; 0 before the first token.
  [[nodiscard]] double ttft_s() const { return tokens_ > 0 ? first_s_ - arrival_s_ : 0.0; }
  /// Time of the last token minus arrival.
  [[nodiscard]] double e2e_s() const { return tokens_ > 0 ? last_s_ - arrival_s_ : 0.0; }
  /// Mean time per output token after the first: (E2E − TTFT) / (tokens − 1); 0 for one token.
  [[nodiscard]] double tpot_s() const;
  /// Paper's qos in [0, 1]: share of the service time spent within the SLO.
  [[nodiscard]] double qos() const;
  /// Field's request-level check: TTFT ≤ SLO and TPOT ≤ SLO.
  [[nodiscard]] bool meets_request_slo() const;
  /// Longest gap between consecutive tokens (the worst inter-token latency).
  [[nodiscard]] double max_itl_s() const { return max_itl_s_; }
  /// The request's SLO.
  [[nodiscard]] const Slo& slo() const { return slo_; }

 private:
  Slo slo_;
  double arrival_s_;
  double anchor_s_;            // deadline of token `anchor_token_`
  std::int32_t anchor_token_;  // token index the anchor refers to
  std::int32_t tokens_ = 0;
  double first_s_ = 0.0;
  double last_s_ = 0.0;
  double good_s_ = 0.0;
  double max_itl_s_ = 0.0;
};

/// Aggregates finished (or rejected) requests into the two attainment figures.
class AttainmentAccumulator {
 public:
  /// Adds a served request.
  void add(const SloTracker& tracker);
  /// Adds a request that was rejected or never served: qos 0, fails the request-level check.
  void add_failed() { ++requests_; }

  /// Requests counted.
  [[nodiscard]] std::int64_t requests() const { return requests_; }
  /// Paper's attainment: mean qos over all requests (failed ones count 0).
  [[nodiscard]] double mean_qos() const { return requests_ ? qos_sum_ / static_cast<double>(requests_) : 1.0; }
  /// Field's attainment: share of requests meeting both TTFT and TPOT SLOs.
  [[nodiscard]] double request_attainment() const {
    return requests_ ? static_cast<double>(met_) / static_cast<double>(requests_) : 1.0;
  }

 private:
  std::int64_t requests_ = 0;
  std::int64_t met_ = 0;
  double qos_sum_ = 0.0;
};

}  // namespace aegaeon::policy
