#include "actors/cache_keeper.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "actors/model_catalog.hpp"
#include "actors/serving_node.hpp"

namespace aegaeon::actors {
namespace {

// How often the keeper looks again without being woken: an unload refused because the model
// still had generations is retried at this pace.
constexpr auto kRecheck = std::chrono::milliseconds(250);

}  // namespace

struct CacheKeeper::State {
  const ServingNode& node;
  std::uint64_t cache_bytes = 0;
  std::mutex mutex;
  std::condition_variable wake;
  std::set<std::string> wanted;
  std::set<std::string> busy;    // an unload or a load in flight
  std::set<std::string> failed;  // loads that failed: not tried again until the next want()
  bool stopping = false;
  std::thread thread;

  State(const ServingNode& n, std::uint64_t bytes) : node(n), cache_bytes(bytes) {}

  [[nodiscard]] std::uint64_t weight_bytes(const std::string& model) const {
    const auto* entry = node.catalog().find(model);
    return entry == nullptr ? 0 : node.weight_bytes(entry->id);
  }

  // One pass, planned under the mutex: the models to unload (not wanted) and to load (wanted,
  // fitting), each marked busy until its callback.
  void plan(std::vector<std::string>& unload, std::vector<std::string>& load) {
    std::set<std::string> loaded;
    for (const auto& model : node.models()) loaded.insert(model.name);
    std::uint64_t bytes = 0;
    for (const auto& model : loaded) bytes += weight_bytes(model);
    for (const auto& model : busy) bytes += loaded.count(model) != 0 ? 0 : weight_bytes(model);
    for (const auto& model : loaded) {
      if (wanted.count(model) != 0 || busy.count(model) != 0) continue;
      busy.insert(model);
      unload.push_back(model);
    }
    for (const auto& model : wanted) {
      if (loaded.count(model) != 0 || busy.count(model) != 0 || failed.count(model) != 0) continue;
      const std::uint64_t need = weight_bytes(model);
      // Until the unloads free their memory, a wanted model may not fit yet.
      if (cache_bytes != 0 && bytes + need > cache_bytes) continue;
      busy.insert(model);
      bytes += need;
      load.push_back(model);
    }
  }

  // Starts the planned unloads and loads (mutex not held: a refusal calls back at once).
  static void act(const std::shared_ptr<State>& self, const std::vector<std::string>& unload,
                  const std::vector<std::string>& load) {
    for (const auto& model : unload) {
      // Refused while the model still has generations: tried again at a later pass (the node
      // logs an unload that happens).
      self->node.unload_model(model, [self, model](const core::Result<std::vector<ModelStatus>>&) {
        std::lock_guard lock(self->mutex);
        self->busy.erase(model);
        self->wake.notify_all();
      });
    }
    for (const auto& model : load) {
      self->node.load_model(model, [self, model](core::Result<std::vector<ModelStatus>> done) {
        std::lock_guard lock(self->mutex);
        self->busy.erase(model);
        if (!done.ok()) self->failed.insert(model);  // the node logged why
        self->wake.notify_all();
      });
    }
  }
};

CacheKeeper::CacheKeeper(const ServingNode& node, std::uint64_t cache_bytes)
    : state_(std::make_shared<State>(node, cache_bytes)) {
  state_->thread = std::thread([state = state_.get(), self = std::weak_ptr<State>(state_)] {
    std::unique_lock lock(state->mutex);
    while (!state->stopping) {
      std::vector<std::string> unload;
      std::vector<std::string> load;
      state->plan(unload, load);
      if (!unload.empty() || !load.empty()) {
        lock.unlock();
        State::act(self.lock(), unload, load);
        lock.lock();
      }
      state->wake.wait_for(lock, kRecheck);
    }
  });
}

CacheKeeper::~CacheKeeper() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

std::vector<std::string> CacheKeeper::held() const {
  std::vector<std::string> out;
  const auto loaded = state_->node.models();
  std::lock_guard lock(state_->mutex);
  for (const auto& model : loaded) {
    if (state_->wanted.count(model.name) != 0) out.push_back(model.name);
  }
  return out;
}

void CacheKeeper::want(std::vector<std::string> models) {
  std::set<std::string> wanted;
  for (auto& model : models) {
    if (state_->node.catalog().find(model) == nullptr) {
      spdlog::warn("host cache: the controller placed model '{}' here, which this worker does not have", model);
      continue;
    }
    wanted.insert(std::move(model));
  }
  std::lock_guard lock(state_->mutex);
  if (wanted != state_->wanted) {
    spdlog::info("host cache: the controller places [{}] here", fmt::join(wanted, ", "));
  }
  state_->wanted = std::move(wanted);
  state_->failed.clear();
  state_->wake.notify_all();
}

}  // namespace aegaeon::actors
