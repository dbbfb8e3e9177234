#include "actors/actor_runtime.hpp"

#include <caf/all.hpp>

#include <thread>

namespace aegaeon::actors {

struct ActorRuntime::Impl {
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
};

ActorRuntime::ActorRuntime(std::size_t worker_threads) : impl_(std::make_unique<Impl>()) {
  if (worker_threads == 0) worker_threads = std::max(2u, std::thread::hardware_concurrency());
  impl_->config.set("scheduler.max-threads", worker_threads);
  // CAF's own log and console output stay quiet: aegaeon logs through spdlog.
  impl_->config.set("logger.console", caf::atom("none"));
  impl_->system = std::make_unique<caf::actor_system>(impl_->config);
}

ActorRuntime::~ActorRuntime() = default;  // the actor_system destructor awaits all actors

caf::actor_system& ActorRuntime::system() { return *impl_->system; }

}  // namespace aegaeon::actors
