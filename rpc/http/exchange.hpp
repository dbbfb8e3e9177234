// The state one request shares between the kj side of the HTTP server and the Responder /
// EventStream handles held by other threads. Internal to rpc/http.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "rpc/http/http_types.hpp"

namespace aegaeon::rpc::http::detail {

/// One request's answer in flight. Every field is guarded by `mutex`; `waker` is how producers
/// wake the kj side (it fulfills a kj cross-thread promise) and is always called unlocked.
struct Exchange {
  enum class Phase { kPending, kResponded, kStreaming };

  std::mutex mutex;
  Phase phase = Phase::kPending;
  HttpResponse response;             ///< the answer, or the stream's status and headers
  std::deque<std::string> chunks;    ///< stream frames not yet written
  bool stream_closed = false;        ///< no more frames will come
  bool cancelled = false;            ///< client gone or server shutting down
  std::vector<std::function<void()>> cancel_callbacks;
  std::function<void()> waker;       ///< set by the kj side while it waits for a change

  /// Runs `change` under the lock, then wakes the kj side if it is waiting.
  template <typename Change>
  void update(Change&& change) {
    std::function<void()> wake;
    {
      std::lock_guard lock(mutex);
      change();
      wake = std::move(waker);
      waker = nullptr;
    }
    if (wake) wake();
  }

  /// Marks the exchange cancelled and runs the cancel callbacks once (kj side).
  void cancel();
  /// Runs `callback` once on cancel(), or at once if the exchange is already cancelled.
  void on_cancel(std::function<void()> callback);
};

}  // namespace aegaeon::rpc::http::detail
