// The CPU backend's thread pool: every item of every loop runs exactly once, in chunks aligned
// to the grain, whichever thread claims them, and loops run back to back without mixing.
#include "gpu/backend/cpu/thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace aegaeon::backend::cpu {
namespace {

TEST(ThreadPoolTest, EveryItemOnceInGrainAlignedChunks) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (std::size_t count : {1u, 7u, 64u, 1000u, 4099u}) {
      for (std::size_t grain : {1u, 16u, 64u}) {
        std::vector<std::atomic<int>> hits(count);
        std::atomic<bool> misaligned{false};
        pool.parallel_for(count, grain, [&](std::size_t begin, std::size_t end) {
          if (begin % grain != 0 || (end != count && (end - begin) % grain != 0)) misaligned = true;
          for (std::size_t i = begin; i < end; ++i) hits[i].fetch_add(1);
        });
        EXPECT_FALSE(misaligned) << threads << " threads, count " << count << ", grain " << grain;
        for (std::size_t i = 0; i < count; ++i) {
          ASSERT_EQ(hits[i].load(), 1) << threads << " threads, count " << count << ", item " << i;
        }
      }
    }
  }
}

// Thousands of short loops in a row: a worker that wakes late must not run a finished loop's
// body or take items of the next one twice.
TEST(ThreadPoolTest, BackToBackShortLoopsStayExact) {
  ThreadPool pool(3);
  std::vector<std::atomic<long>> sums(64);
  for (int loop = 0; loop < 5000; ++loop) {
    pool.parallel_for(sums.size(), 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) sums[i].fetch_add(loop);
    });
  }
  const long expected = 5000L * 4999L / 2;
  for (const auto& sum : sums) EXPECT_EQ(sum.load(), expected);
}

TEST(ThreadPoolTest, EmptyAndTinyLoops) {
  ThreadPool pool(2);
  int calls = 0;
  pool.parallel_for(0, 1, [&](std::size_t, std::size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  // At most one grain: the caller runs it alone, in one call.
  pool.parallel_for(10, 16, [&](std::size_t begin, std::size_t end) {
    ++calls;
    EXPECT_EQ(begin, 0u);
    EXPECT_EQ(end, 10u);
  });
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace aegaeon::backend::cpu
