#include "tests/fuzz/loopback_exchange.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tests/fuzz/fuzz_targets.hpp"

namespace aegaeon::fuzz {
namespace {

using Clock = std::chrono::steady_clock;

// Owns one socket descriptor.
struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

// A signal (libFuzzer's timers) may interrupt a blocking connect(); the kernel goes on with it,
// so wait for it to finish instead of calling connect() again. Returns its errno, 0 on success.
int finish_interrupted_connect(int fd) {
  pollfd p{fd, POLLOUT, 0};
  int ready = 0;
  do {
    ready = ::poll(&p, 1, 5000);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return ready == 0 ? ETIMEDOUT : errno;
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
  return error;
}

}  // namespace

LoopbackReply loopback_exchange(std::uint16_t port, const std::uint8_t* data, std::size_t size,
                                std::chrono::milliseconds deadline, std::size_t keep_bytes) {
  const auto until = Clock::now() + deadline;
  Socket s;
  s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0) fuzz_fail(std::string("socket(): ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno == EINTR ? finish_interrupted_connect(s.fd) : errno;
    if (error != 0) fuzz_fail("connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(error));
  }
  ::fcntl(s.fd, F_SETFL, ::fcntl(s.fd, F_GETFL) | O_NONBLOCK);

  LoopbackReply reply;
  std::size_t sent = 0;
  bool write_open = true;
  if (size == 0) {
    ::shutdown(s.fd, SHUT_WR);
    write_open = false;
  }
  char buffer[16384];
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return reply;  // closed stays false: the server hung
    pollfd p{s.fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) fuzz_fail(std::string("poll(): ") + std::strerror(errno));
    if (ready == 0) continue;
    if (write_open && (p.revents & POLLOUT)) {
      ssize_t n = ::send(s.fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) write_open = false;  // peer gone
      if (sent == size && write_open) {
        ::shutdown(s.fd, SHUT_WR);
        write_open = false;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(s.fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        const auto keep = std::min(static_cast<std::size_t>(n), keep_bytes - std::min(keep_bytes, reply.bytes.size()));
        reply.bytes.append(buffer, keep);
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        reply.closed = true;  // EOF or reset: either way the server let go of us
        return reply;
      }
    }
  }
}

}  // namespace aegaeon::fuzz
