// Admission control: reject a request early (HTTP 429 + Retry-After) when the SLO cannot be
// met, instead of degrading every running request (the artifact admits everything).
#pragma once

#include <string>

#include "actors/policy/request.hpp"

namespace aegaeon::policy {

/// Knobs of admission control.
struct AdmissionConfig {
  bool enabled = true;
  /// Reject when the best decode instance's α with this request would exceed this (1 = the TBT
  /// SLO just holds on average).
  double alpha_limit = 1.0;
  /// Reject when the predicted TTFT exceeds `ttft_factor` × the TTFT SLO.
  double ttft_factor = 1.0;
  /// Retry-After bounds, seconds.
  double min_retry_after_s = 1.0;
  double max_retry_after_s = 60.0;
};

/// What the front door should do with a request.
struct AdmissionDecision {
  bool admit = true;
  double retry_after_s = 0.0;  ///< when rejected: suggested Retry-After
  std::string reason;          ///< when rejected: which SLO was infeasible and by how much
};

/// What admission knows about the cluster for one request.
struct AdmissionInput {
  double decode_alpha = 0.0;  ///< α of the decode instance dispatch would pick, with this request
  double predicted_ttft_s = 0.0;  ///< queue wait + switches + own prefill on its prefill instance
  /// Seconds until the decode side frees capacity (e.g. the earliest batch completion); used
  /// as the Retry-After hint for TBT rejections.
  double decode_drain_s = 0.0;
};

/// Decides one request. Pure: same inputs, same answer.
AdmissionDecision decide_admission(const AdmissionConfig& config, const Slo& slo,
                                   const AdmissionInput& input);

/// When a prompt that has not started yet is turned away (429): a prompt waits for room (elastic
/// devices place it only where its decode keeps the TBT SLO; a baseline queues it) until this
/// time. By then it has missed its TTFT SLO; serving it late would also delay every prompt queued
/// behind it, where turning it away lets them start on time.
double admission_deadline_s(const AdmissionConfig& config, const Slo& slo, double arrival_s);

}  // namespace aegaeon::policy
