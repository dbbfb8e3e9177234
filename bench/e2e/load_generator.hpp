// The client side of the end-to-end benchmark: replays requests at their arrival times against
// a live `aegaeon serve` on loopback, streaming each one (SSE) and timing every token as the
// client receives it. Open loop: a request is sent at its arrival time whatever the server does,
// unless every client thread is busy (then it is sent late, and `sent_s` says so).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bench/statistics.hpp"  // percentile, for the reports of its users

namespace aegaeon::bench {

/// One request to replay.
struct LoadRequest {
  double arrival_s = 0;  ///< offset from the start of the replay
  std::string model;     ///< served model name
  std::string prompt;
  std::int32_t max_tokens = 1;
};

/// What the client saw of one request; times are seconds from the start of the replay.
struct RequestTimeline {
  double arrival_s = 0;         ///< scheduled send time
  double sent_s = 0;            ///< actual send time
  int status = 0;               ///< HTTP status; 0 when no response came (connect failure, timeout)
  std::vector<double> token_s;  ///< when each generated token reached the client
  std::int32_t prompt_tokens = 0;  ///< from the usage frame
  bool complete = false;        ///< the stream ended with [DONE]
  std::string error;            ///< why it did not complete
};

/// How to replay.
struct ReplayOptions {
  std::uint16_t port = 0;          ///< the server on 127.0.0.1
  int clients = 64;                ///< client threads, i.e. most requests in flight
  double read_timeout_s = 120;     ///< longest wait for any one frame
  std::string label;               ///< progress lines start with it
};

/// Replays `requests` (sorted by arrival) and returns their timelines in the same order.
/// Prints a progress line to stderr every few seconds.
std::vector<RequestTimeline> replay(std::span<const LoadRequest> requests, const ReplayOptions& options);

/// Streams one request now (the replay's building block; also used by the probes). Times in
/// the timeline are seconds since `origin`; `arrival_s` is copied from the request.
RequestTimeline stream_request(std::uint16_t port, const LoadRequest& request,
                               std::chrono::steady_clock::time_point origin, double read_timeout_s);

/// The model ids GET /v1/models lists on the server at `port`; throws std::runtime_error when
/// there is none.
std::vector<std::string> served_models(std::uint16_t port);

}  // namespace aegaeon::bench
