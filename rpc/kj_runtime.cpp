#include "rpc/kj_runtime.hpp"

#include <spdlog/spdlog.h>

#include <future>
#include <thread>

#include "core/thread_info.hpp"
#include "rpc/kj_context.hpp"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace aegaeon::rpc {
namespace {

// kj::Executor::executeSync hands `work` to the loop and waits for it through kj's own futex-based
// mutex inside libkj-async, which ThreadSanitizer cannot see (Debian's kj is not instrumented).
// These state the two happens-before edges executeSync guarantees: the caller's writes before the
// call are visible to `work`, and `work`'s writes are visible to the caller once it returns. With
// them TSan still checks everything either side does, instead of reporting the handoff itself.
void tsan_release([[maybe_unused]] const void* handoff) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(handoff));
#endif
}
void tsan_acquire([[maybe_unused]] const void* handoff) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(handoff));
#endif
}

// Logs failures of background tasks; one failing connection must not stop the loop.
class LoggingErrorHandler final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& exception) override {
    if (exception.getType() == kj::Exception::Type::DISCONNECTED) {
      spdlog::debug("kj task ended: peer disconnected: {}", exception.getDescription().cStr());
    } else {
      spdlog::warn("kj task failed: {}", kj::str(exception).cStr());
    }
  }
};

}  // namespace

struct KjRuntime::Impl {
  std::thread thread;
  std::thread::id thread_id;
  kj::Own<const kj::Executor> executor;  // set once the loop runs; null after it stopped
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop;
  KjContext* context = nullptr;

  // Body of the kj thread: sets up I/O, reports readiness, runs until stop is fulfilled.
  void run(std::promise<core::Result<void>>& ready) {
    core::set_current_thread_name(core::thread_names::kKj);
    try {
      auto io = kj::setupAsyncIo();
      LoggingErrorHandler error_handler;
      auto tasks = kj::heap<kj::TaskSet>(error_handler);
      KjContext ctx{*io.provider, io.provider->getNetwork(), io.provider->getTimer(), *tasks};
      auto stop_pair = kj::newPromiseAndCrossThreadFulfiller<void>();
      stop = kj::mv(stop_pair.fulfiller);
      executor = kj::getCurrentThreadExecutor().addRef();
      context = &ctx;
      thread_id = std::this_thread::get_id();
      ready.set_value(core::ok());
      stop_pair.promise.wait(io.waitScope);
      // Cancel in dependency order: tasks use ctx, which uses io.
      context = nullptr;
      tasks = nullptr;
    } catch (const kj::Exception& e) {
      auto message = std::string("kj event loop: ") + e.getDescription().cStr();
      try {
        ready.set_value(core::error(core::ErrorCode::kInternal, message));
      } catch (const std::future_error&) {
        spdlog::error("{}", message);  // failed after start: nobody waits for `ready` anymore
      }
    }
  }
};

KjRuntime::KjRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

core::Result<std::unique_ptr<KjRuntime>> KjRuntime::start() {
  auto impl = std::make_unique<Impl>();
  std::promise<core::Result<void>> ready;
  auto ready_future = ready.get_future();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw, &ready] { raw->run(ready); });
  auto started = ready_future.get();
  if (!started.ok()) {
    impl->thread.join();
    return started.error();
  }
  return std::unique_ptr<KjRuntime>(new KjRuntime(std::move(impl)));
}

KjRuntime::~KjRuntime() {
  if (!impl_) return;
  // Run the stop on the loop itself so that no execute_sync is half-way through.
  execute_sync([this](KjContext&) { impl_->stop->fulfill(); });
  impl_->thread.join();
  impl_->executor = nullptr;
}

bool KjRuntime::execute_sync(const std::function<void(KjContext&)>& work) const {
  if (on_loop_thread()) {
    if (impl_->context == nullptr) return false;
    work(*impl_->context);
    return true;
  }
  if (!impl_->executor || !impl_->executor->isLive()) return false;
  bool ran = false;
  tsan_release(&ran);
  try {
    impl_->executor->executeSync([&] {
      tsan_acquire(&ran);
      KJ_DEFER(tsan_release(&ran));  // also when `work` throws
      if (impl_->context != nullptr) {
        work(*impl_->context);
        ran = true;
      }
    });
  } catch (const kj::Exception& e) {
    if (e.getType() != kj::Exception::Type::DISCONNECTED) throw;  // the loop is gone: not run
  }
  tsan_acquire(&ran);
  return ran;
}

bool KjRuntime::on_loop_thread() const { return std::this_thread::get_id() == impl_->thread_id; }

}  // namespace aegaeon::rpc
