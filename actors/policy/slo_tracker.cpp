#include "actors/policy/slo_tracker.hpp"

#include <algorithm>

namespace aegaeon::policy {

SloTracker::SloTracker(Slo slo, double arrival_s)
    : slo_(slo), arrival_s_(arrival_s), anchor_s_(arrival_s + slo.ttft_s), anchor_token_(0) {}

double SloTracker::next_deadline_s() const {
  return anchor_s_ + static_cast<double>(tokens_ - anchor_token_) * slo_.tbt_s;
}

void SloTracker::on_token(double t_s) {
  const double previous_s = tokens_ > 0 ? last_s_ : arrival_s_;
  const double deadline_s = next_deadline_s();
  const double gap_s = std::max(0.0, t_s - previous_s);
  if (t_s <= deadline_s) {
    good_s_ += gap_s;
  } else {
    // Late: the schedule restarts at this token (PAPER-NOTES "start resets to a late token").
    anchor_s_ = t_s;
    anchor_token_ = tokens_;
  }
  if (tokens_ == 0) {
    first_s_ = t_s;
  } else {
    max_itl_s_ = std::max(max_itl_s_, gap_s);
  }
  last_s_ = t_s;
  ++tokens_;
}

double SloTracker::tpot_s() const {
  if (tokens_ < 2) return 0.0;
  return (last_s_ - first_s_) / static_cast<double>(tokens_ - 1);
}

double SloTracker::qos() const {
  const double total_s = e2e_s();
  if (tokens_ == 0) return 0.0;
  if (total_s <= 0.0) return 1.0;
  return std::clamp(good_s_ / total_s, 0.0, 1.0);
}

bool SloTracker::meets_request_slo() const {
  return tokens_ > 0 && ttft_s() <= slo_.ttft_s && tpot_s() <= slo_.tbt_s;
}

void AttainmentAccumulator::add(const SloTracker& tracker) {
  ++requests_;
  qos_sum_ += tracker.qos();
  if (tracker.meets_request_slo()) ++met_;
}

}  // namespace aegaeon::policy
