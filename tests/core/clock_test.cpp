#include "core/clock.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace aegaeon::core {
namespace {

using std::chrono::nanoseconds;
using namespace std::chrono_literals;

TEST(SteadyClock, IsMonotonicAndTracksSteadyClock) {
  SteadyClock clock;
  const nanoseconds before = std::chrono::steady_clock::now().time_since_epoch();
  const nanoseconds a = clock.now();
  const nanoseconds b = clock.now();
  const nanoseconds after = std::chrono::steady_clock::now().time_since_epoch();
  EXPECT_LE(a, b);
  EXPECT_LE(before, a);
  EXPECT_LE(b, after);
}

TEST(VirtualClock, StartsWhereToldAndMovesOnlyWhenTold) {
  VirtualClock clock(5s);
  EXPECT_EQ(clock.now(), 5s);
  EXPECT_EQ(clock.now(), 5s);
  ASSERT_TRUE(clock.advance(250ms).ok());
  EXPECT_EQ(clock.now(), 5250ms);
  ASSERT_TRUE(clock.set(7s).ok());
  EXPECT_EQ(clock.now(), 7s);
  ASSERT_TRUE(clock.set(7s).ok());  // setting the same time is fine
  ASSERT_TRUE(clock.advance(0ns).ok());
  EXPECT_EQ(clock.now(), 7s);
}

TEST(VirtualClock, RefusesToGoBack) {
  VirtualClock clock;
  ASSERT_TRUE(clock.advance(10ns).ok());
  const Result<void> back = clock.set(9ns);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(back.error().message, "VirtualClock::set: time 9 ns is before the current time 10 ns");
  const Result<void> negative = clock.advance(-1ns);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().message,
            "VirtualClock::advance: expected a non-negative duration, got -1 ns");
  EXPECT_EQ(clock.now(), 10ns);
}

TEST(VirtualClock, ConcurrentAdvancesAreNotLost) {
  VirtualClock clock;
  constexpr int kThreads = 4;
  constexpr int kSteps = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kSteps; ++i) {
        ASSERT_TRUE(clock.advance(3ns).ok());
      }
    });
  }
  // A reader on another thread only ever sees time move forward.
  nanoseconds last{0};
  for (int i = 0; i < 1000; ++i) {
    const nanoseconds now = clock.now();
    EXPECT_GE(now, last);
    last = now;
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(clock.now(), nanoseconds{3LL * kThreads * kSteps});
}

TEST(Clock, UsableThroughTheInterface) {
  std::unique_ptr<Clock> clock = std::make_unique<VirtualClock>(42ns);
  EXPECT_EQ(clock->now(), 42ns);
}

}  // namespace
}  // namespace aegaeon::core
