#include "actors/policy/admission.hpp"

#include <algorithm>
#include <cstdio>

namespace aegaeon::policy {

namespace {
std::string format(const char* fmt, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}
}  // namespace

AdmissionDecision decide_admission(const AdmissionConfig& config, const Slo& slo,
                                   const AdmissionInput& input) {
  AdmissionDecision d;
  if (!config.enabled) return d;
  const double ttft_limit_s = config.ttft_factor * slo.ttft_s;
  if (input.predicted_ttft_s > ttft_limit_s) {
    d.admit = false;
    // The queue ahead drains in about the excess.
    d.retry_after_s = std::clamp(input.predicted_ttft_s - ttft_limit_s, config.min_retry_after_s,
                                 config.max_retry_after_s);
    d.reason = format("predicted time to first token %.2f s exceeds the SLO of %.2f s",
                      input.predicted_ttft_s, ttft_limit_s);
    return d;
  }
  if (input.decode_alpha > config.alpha_limit) {
    d.admit = false;
    d.retry_after_s = std::clamp(input.decode_drain_s, config.min_retry_after_s, config.max_retry_after_s);
    d.reason = format("decode load would stretch time between tokens to %.2fx the SLO (limit %.2fx)",
                      input.decode_alpha, config.alpha_limit);
    return d;
  }
  return d;
}

double admission_deadline_s(const AdmissionConfig& config, const Slo& slo, double arrival_s) {
  return arrival_s + config.ttft_factor * slo.ttft_s;
}

}  // namespace aegaeon::policy
