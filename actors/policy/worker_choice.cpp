#include "actors/policy/worker_choice.hpp"

#include <tuple>

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

}  // namespace aegaeon::policy
