// The controller's routing choice: least in-flight first, heartbeat load breaks ties, then id.
#include "actors/policy/worker_choice.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace aegaeon::policy {
namespace {

TEST(WorkerChoiceTest, NoCandidateNoChoice) {
  EXPECT_EQ(least_loaded_worker({}), std::nullopt);
}

TEST(WorkerChoiceTest, FewestInFlightWins) {
  std::vector<WorkerLoad> workers = {{1, 3, 0}, {2, 1, 9}, {3, 2, 0}};
  EXPECT_EQ(least_loaded_worker(workers), 2u);
}

TEST(WorkerChoiceTest, ReportedLoadThenIdBreakTies) {
  std::vector<WorkerLoad> workers = {{4, 1, 5}, {2, 1, 2}, {7, 1, 2}};
  EXPECT_EQ(least_loaded_worker(workers), 2u);
  std::vector<WorkerLoad> equal = {{9, 0, 0}, {5, 0, 0}};
  EXPECT_EQ(least_loaded_worker(equal), 5u);
}

}  // namespace
}  // namespace aegaeon::policy
