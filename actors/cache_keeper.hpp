// CacheKeeper: a cluster worker's host model cache, kept to what the controller's placement asks
// (Worker.hold). It unloads the models no longer wanted once their generations have ended (the
// controller sends them none meanwhile), then loads the wanted ones, as many as fit the host
// cache's size, through the ServingNode's unload and load. What it holds goes back to the
// controller in the heartbeats (ServingNode::models()).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace aegaeon::actors {

class ServingNode;

class CacheKeeper {
 public:
  /// Keeps `node`'s models within `cache_bytes` of weights (0: no limit). `node` must outlive
  /// the keeper.
  CacheKeeper(const ServingNode& node, std::uint64_t cache_bytes);
  /// Stops the keeper's thread (a load in progress finishes in the node's loader thread).
  ~CacheKeeper();
  CacheKeeper(const CacheKeeper&) = delete;
  CacheKeeper& operator=(const CacheKeeper&) = delete;

  /// The models to hold from now on (the latest call wins). Names the node does not serve are
  /// logged and ignored. Non-blocking; callable from any thread (the kj thread).
  void want(std::vector<std::string> models);
  /// The models loaded and still wanted: what controllers may send work for (a model on its
  /// way out is left out, so no controller sends it more). Callable from any thread.
  [[nodiscard]] std::vector<std::string> held() const;

  struct State;  ///< opaque; defined in cache_keeper.cpp

 private:
  std::shared_ptr<State> state_;
};

}  // namespace aegaeon::actors
