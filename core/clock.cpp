#include "core/clock.hpp"

#include <string>

namespace aegaeon::core {

Clock::~Clock() = default;

std::chrono::nanoseconds SteadyClock::now() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

Result<void> VirtualClock::advance(std::chrono::nanoseconds delta) {
  if (delta.count() < 0) {
    return error(ErrorCode::kInvalidArgument,
                 "VirtualClock::advance: expected a non-negative duration, got " +
                     std::to_string(delta.count()) + " ns");
  }
  now_ns_.fetch_add(delta.count(), std::memory_order_acq_rel);
  return ok();
}

Result<void> VirtualClock::set(std::chrono::nanoseconds time) {
  auto current = now_ns_.load(std::memory_order_acquire);
  // CAS so a concurrent advance() is never lost and time never goes back.
  while (true) {
    if (time.count() < current) {
      return error(ErrorCode::kInvalidArgument,
                   "VirtualClock::set: time " + std::to_string(time.count()) +
                       " ns is before the current time " + std::to_string(current) + " ns");
    }
    if (now_ns_.compare_exchange_weak(current, time.count(), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      return ok();
    }
  }
}

}  // namespace aegaeon::core
