// The kj-thread side of KjRuntime. Only rpc/*.cpp include this (kj headers are heavy and kj
// objects must never leave the kj thread).
#pragma once

#include <kj/async-io.h>
#include <kj/async.h>

namespace aegaeon::rpc {

/// Handles valid only on the kj thread, for the lifetime of the KjRuntime.
struct KjContext {
  kj::AsyncIoProvider& io;
  kj::Network& network;
  kj::Timer& timer;
  /// Background promises owned by the loop; errors are logged, and all are cancelled when the
  /// runtime stops.
  kj::TaskSet& tasks;
};

}  // namespace aegaeon::rpc
