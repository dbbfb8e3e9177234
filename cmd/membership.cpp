#include "cmd/membership.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

namespace aegaeon::cmd {

Membership::Membership(rpc::KjRuntime& kj, HostPort controller, std::shared_ptr<const rpc::TlsContext> tls,
                       core::NodeRegistration node, std::string token,
                       std::shared_ptr<const rpc::WorkerHandlers> handlers,
                       std::function<core::HeartbeatReport()> report, std::chrono::milliseconds backoff_max)
    : kj_(kj), controller_(std::move(controller)), tls_(std::move(tls)), node_(std::move(node)), token_(std::move(token)),
      handlers_(std::move(handlers)), report_(std::move(report)), backoff_max_(backoff_max),
      waiter_(pthread_self()), thread_([this] { run(); }) {}

Membership::~Membership() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::optional<std::string> Membership::refusal() const {
  std::lock_guard lock(mutex_);
  return refusal_;
}

// Waits up to `delay`; false when stopping.
bool Membership::sleep(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, delay, [this] { return stopping_; });
}

// Waits for the next heartbeat: `interval`, or less when the models held differ from `sent`
// (the controllers route by them: a model just loaded gets its requests at once). False when
// stopping.
bool Membership::sleep_until_beat(std::chrono::milliseconds interval, const std::vector<std::string>& sent) {
  constexpr auto kHeldCheck = std::chrono::milliseconds(50);
  const auto due = std::chrono::steady_clock::now() + interval;
  while (std::chrono::steady_clock::now() < due) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - std::chrono::steady_clock::now());
    if (!sleep(std::min(left, kHeldCheck))) return false;
    if (report_().held_models != sent) return true;
  }
  return true;
}

void Membership::run() {
  const std::chrono::milliseconds first_backoff = std::min(std::chrono::milliseconds(100), backoff_max_);
  std::chrono::milliseconds backoff = first_backoff;
  std::string address = controller_.host + ":" + std::to_string(controller_.port);
  while (true) {
    auto client = rpc::ClusterClient::connect(kj_, controller_.host, controller_.port, tls_);
    node_.held_models = report_().held_models;
    auto reply = client.ok() ? (*client)->register_node(node_, token_, handlers_)
                             : core::Result<core::RegistrationReply>(client.error());
    if (!reply.ok()) {
      auto code = reply.error().code;
      if (code == core::ErrorCode::kUnauthenticated || code == core::ErrorCode::kInvalidArgument) {
        spdlog::error("controller at {} refused this node: {}", address, reply.error().message);
        {
          std::lock_guard lock(mutex_);
          refusal_ = reply.error().message;
        }
        // To the waiting thread itself: a signal to the process may go to a thread that does not
        // block SIGTERM (OpenBLAS starts its pool before main), whose default action kills
        // the process with no message. A thread-directed one stays pending until sigwait.
        pthread_kill(waiter_, SIGTERM);
        return;
      }
      spdlog::warn("cannot join controller at {} ({}); retrying in {} ms", address,
                   reply.error().message, backoff.count());
      if (!sleep(backoff)) return;
      backoff = std::min(backoff * 2, backoff_max_);
      continue;
    }
    backoff = first_backoff;
    spdlog::info("{} '{}' joined controller at {} as node {}", handlers_ ? "worker" : "controller", node_.node_name,
                 address, reply->node_id);
    core::HeartbeatReport beat;
    beat.held_models = node_.held_models;
    std::uint64_t sequence = 0;
    while (sleep_until_beat(std::chrono::milliseconds(reply->heartbeat_interval_ms), beat.held_models)) {
      beat = report_();
      beat.node_id = reply->node_id;
      beat.sequence = ++sequence;
      auto known = (*client)->heartbeat(beat);
      if (!known.ok() || !*known) {
        spdlog::warn("lost controller at {} ({}); re-joining", address,
                     known.ok() ? "it no longer knows this node" : known.error().message);
        break;
      }
    }
    std::lock_guard lock(mutex_);
    if (stopping_) return;
  }
}

}  // namespace aegaeon::cmd
