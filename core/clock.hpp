// Time as aegaeon's scheduling code sees it: a monotonic clock behind an interface, so the same
// policy code runs on real time in servers and on virtual time in the simulator and tests.
#pragma once

#include <atomic>
#include <chrono>

#include "core/result.hpp"

namespace aegaeon::core {

/// Monotonic time since an arbitrary epoch. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock();
  /// The current time; never decreases.
  [[nodiscard]] virtual std::chrono::nanoseconds now() const = 0;
};

/// Real time from std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::nanoseconds now() const override;
};

/// Time that moves only when told to: the simulator advances it event by event, tests step it
/// explicitly. Reads and writes are atomic, so actors on other threads may read it.
class VirtualClock final : public Clock {
 public:
  /// Starts at `start` (zero by default).
  explicit VirtualClock(std::chrono::nanoseconds start = std::chrono::nanoseconds{0})
      : now_ns_(start.count()) {}

  [[nodiscard]] std::chrono::nanoseconds now() const override {
    return std::chrono::nanoseconds{now_ns_.load(std::memory_order_acquire)};
  }

  /// Moves time forward by `delta`; a negative delta is an error and leaves time unchanged.
  [[nodiscard]] Result<void> advance(std::chrono::nanoseconds delta);

  /// Moves time to `time`; going backwards is an error and leaves time unchanged (time set
  /// by several threads only ever moves forward).
  [[nodiscard]] Result<void> set(std::chrono::nanoseconds time);

 private:
  std::atomic<std::chrono::nanoseconds::rep> now_ns_;
};

}  // namespace aegaeon::core
