#include "actors/policy/worker_choice.hpp"

#include <tuple>
#include <vector>

namespace aegaeon::policy {

std::optional<std::uint64_t> least_loaded_worker(std::span<const WorkerLoad> workers) {
  const WorkerLoad* best = nullptr;
  for (const auto& w : workers) {
    if (best == nullptr || std::tie(w.in_flight, w.reported, w.node_id) <
                               std::tie(best->in_flight, best->reported, best->node_id)) {
      best = &w;
    }
  }
  if (best == nullptr) return std::nullopt;
  return best->node_id;
}

std::optional<std::uint64_t> choose_worker(std::span<const WorkerLoad> workers, std::int64_t affinity_slack) {
  const auto least = least_loaded_worker(workers);
  if (!least) return std::nullopt;
  std::int64_t least_in_flight = 0;
  for (const auto& w : workers) {
    if (w.node_id == *least) least_in_flight = w.in_flight;
  }
  std::vector<WorkerLoad> affine;
  for (const auto& w : workers) {
    if (w.same_model > 0 && w.in_flight <= least_in_flight + affinity_slack) affine.push_back(w);
  }
  return affine.empty() ? least : least_loaded_worker(affine);
}

}  // namespace aegaeon::policy
