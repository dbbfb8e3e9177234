// A client side for the socket fuzz targets: send raw bytes to a loopback server while reading
// its answer, half-close, and read until the server closes, all under one deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace aegaeon::fuzz {

/// What the server sent back before closing the connection (at most the first `keep_bytes`).
struct LoopbackReply {
  std::string bytes;
  bool closed = false;  ///< false: the deadline passed with the connection still open
};

/// Connects to 127.0.0.1:`port`, writes `size` bytes (reading concurrently so a server that
/// answers pipelined requests never deadlocks against us), shuts down the write side, then
/// reads until EOF or reset. Aborts via fuzz_fail when it cannot connect.
LoopbackReply loopback_exchange(std::uint16_t port, const std::uint8_t* data, std::size_t size,
                                std::chrono::milliseconds deadline,
                                std::size_t keep_bytes = 1 << 16);

}  // namespace aegaeon::fuzz
