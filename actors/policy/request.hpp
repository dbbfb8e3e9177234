// Vocabulary shared by the scheduling policies: ids, SLOs and what a policy knows of a request.
#pragma once

#include <cstdint>

#include "core/generation.hpp"

namespace aegaeon::policy {

using core::ModelId;
using core::RequestId;
/// Index of a prefill or decode instance (one per device).
using InstanceId = std::int32_t;

/// Latency objectives of a request: time to first token and time between tokens.
struct Slo {
  double ttft_s = 10.0;
  double tbt_s = 0.1;
};

/// What the schedulers know about a request when it arrives.
struct RequestInfo {
  RequestId id = 0;
  ModelId model = 0;
  double arrival_s = 0.0;
  std::int32_t input_tokens = 0;
  /// Upper bound of generated tokens (the request's max_tokens; the traces' output length).
  std::int32_t max_output_tokens = 1;
};

}  // namespace aegaeon::policy
