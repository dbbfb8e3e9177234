// The controller's routing choice: least in-flight first, heartbeat load breaks ties, then id;
// a worker already running the request's model keeps it unless it is too much busier.
#include "actors/policy/worker_choice.hpp"

#include <gtest/gtest.h>

#include <set>
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

TEST(WorkerChoiceTest, AModelStaysWithTheWorkersRunningItWithinTheSlack) {
  // node 1 runs 3 of this model, node 2 is idle: within a slack of 4, node 1 keeps it.
  std::vector<WorkerLoad> workers = {{1, 3, 0, 3}, {2, 0, 0, 0}};
  EXPECT_EQ(choose_worker(workers, 4), 1u);
  EXPECT_EQ(choose_worker(workers, 2), 2u) << "3 more in flight than the idle one: past a slack of 2";
  EXPECT_EQ(choose_worker(workers, 0), 2u) << "no slack: plain least loaded";
}

TEST(WorkerChoiceTest, AmongWorkersRunningTheModelTheLeastLoadedWins) {
  std::vector<WorkerLoad> workers = {{1, 4, 0, 1}, {2, 2, 0, 2}, {3, 0, 0, 0}};
  EXPECT_EQ(choose_worker(workers, 4), 2u);
}

TEST(WorkerChoiceTest, WithoutAWorkerRunningTheModelTheLeastLoadedWins) {
  std::vector<WorkerLoad> workers = {{1, 2, 0, 0}, {2, 1, 0, 0}};
  EXPECT_EQ(choose_worker(workers, 4), 2u);
  EXPECT_EQ(choose_worker({}, 4), std::nullopt);
}

// A burst alternating over 4 models placed one request at a time on 2 idle workers: each model
// ends up on one worker, two models per worker (what fits the demo arena), the load even.
TEST(WorkerChoiceTest, ABurstOverFourModelsGathersEachModelOnOneWorker) {
  std::vector<std::int64_t> in_flight(2, 0);
  std::vector<std::vector<std::int64_t>> per_model(2, std::vector<std::int64_t>(4, 0));
  std::vector<std::set<int>> models_on(2);
  for (int i = 0; i < 32; ++i) {
    const int model = i % 4;
    std::vector<WorkerLoad> workers;
    for (int w = 0; w < 2; ++w) workers.push_back({static_cast<std::uint64_t>(w + 1), in_flight[w], 0, per_model[w][model]});
    const auto chosen = choose_worker(workers);
    ASSERT_TRUE(chosen.has_value());
    const int w = static_cast<int>(*chosen) - 1;
    ++in_flight[w];
    ++per_model[w][model];
    models_on[w].insert(model);
  }
  EXPECT_EQ(models_on[0].size(), 2u);
  EXPECT_EQ(models_on[1].size(), 2u);
  EXPECT_EQ(in_flight[0], 16);
  EXPECT_EQ(in_flight[1], 16);
}

}  // namespace
}  // namespace aegaeon::policy
