// ThreadSanitizer builds only: tells TSan about the synchronization inside CAF's actor mailbox.
//
// Debian's libcaf_core is not built with TSan. A message is handed from its sender to the actor
// through atomics inside the library (a lock-free mailbox, the scheduler's queues), which TSan
// cannot see, so every message's payload and every actor's state would be reported as racing
// between the sender and the handler, or between two scheduler threads that ran the actor one
// after the other. Those edges are CAF's contract: everything a sender did before enqueueing a
// message happens before the actor handles it, and one run of an actor (resume) happens before
// its next run on any thread.
//
// This file states exactly those edges, and that spawning an actor happens before its first
// run, by interposing scheduled_actor::launch, enqueue, consume, reactivate and resume (the executable's
// definitions take precedence over the library's for every caller, the library itself and its
// vtables included) and forwarding to CAF's own definitions. Everything handlers and other
// threads do is still checked: a handler that shares memory with another thread without a lock
// or a message is reported (checked by hand: a handler and main() both incrementing one int).
// actors/CMakeLists.txt forces this object into every link of aegaeon_actors under TSan and
// exports the definitions. scripts/tsan-suppressions.txt covers what is left inside CAF.
#if defined(__SANITIZE_THREAD__)

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <caf/scheduled_actor.hpp>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace {

// CAF's own definition of `mangled`, found after this executable's in the lookup order.
template <typename Fn>
Fn caf_definition(const char* mangled) {
  void* found = dlsym(RTLD_NEXT, mangled);
  if (found == nullptr) {
    std::fprintf(stderr, "tsan_caf_sync: %s not found in libcaf_core\n", mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(found);
}

}  // namespace

namespace caf {

void scheduled_actor::launch(execution_unit* eu, bool lazy, bool hide) {
  using Fn = void (*)(scheduled_actor*, execution_unit*, bool, bool);
  static const Fn caf_launch =
      caf_definition<Fn>("_ZN3caf15scheduled_actor6launchEPNS_14execution_unitEbb");
  __tsan_release(this);  // spawning (the actor's arguments and state) happens before its first run
  caf_launch(this, eu, lazy, hide);
}

void scheduled_actor::enqueue(mailbox_element_ptr ptr, execution_unit* eu) {
  using Fn = void (*)(scheduled_actor*, mailbox_element_ptr, execution_unit*);
  static const Fn caf_enqueue = caf_definition<Fn>(
      "_ZN3caf15scheduled_actor7enqueueESt10unique_ptrINS_15mailbox_elementENS_6detail8disposerE"
      "EPNS_14execution_unitE");
  __tsan_release(this);  // the sender's writes, the message included, happen before the handler
  caf_enqueue(this, std::move(ptr), eu);
}

invoke_message_result scheduled_actor::consume(mailbox_element& x) {
  using Fn = invoke_message_result (*)(scheduled_actor*, mailbox_element&);
  static const Fn caf_consume =
      caf_definition<Fn>("_ZN3caf15scheduled_actor7consumeERNS_15mailbox_elementE");
  __tsan_acquire(this);  // a message enqueued while this run was already going
  return caf_consume(this, x);
}

scheduled_actor::activation_result scheduled_actor::reactivate(mailbox_element& x) {
  using Fn = activation_result (*)(scheduled_actor*, mailbox_element&);
  static const Fn caf_reactivate =
      caf_definition<Fn>("_ZN3caf15scheduled_actor10reactivateERNS_15mailbox_elementE");
  // resume runs every message through reactivate (consume inlined into it). The release after
  // each message matters: resume's own release comes only after CAF has marked the actor idle,
  // and a message arriving in between starts the next run on another thread before it.
  __tsan_acquire(this);
  auto result = caf_reactivate(this, x);
  __tsan_release(this);
  return result;
}
resumable::resume_result scheduled_actor::resume(execution_unit* eu, size_t max_throughput) {
  using Fn = resumable::resume_result (*)(scheduled_actor*, execution_unit*, size_t);
  static const Fn caf_resume =
      caf_definition<Fn>("_ZN3caf15scheduled_actor6resumeEPNS_14execution_unitEm");
  __tsan_acquire(this);  // what senders and the previous run did is visible to this run
  auto result = caf_resume(this, eu, max_throughput);
  __tsan_release(this);  // and this run is visible to the next, on whichever thread it runs
  return result;
}

}  // namespace caf

#endif  // __SANITIZE_THREAD__
