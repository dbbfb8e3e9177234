#include "rpc/shared_kv.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace aegaeon::rpc {
namespace {

using core::ErrorCode;

std::string errno_text() { return std::strerror(errno); }

// Closes a descriptor opened for a failed step. `message` is built before the call, so an
// errno_text() in it still reads the failed step's errno.
core::Error close_and_fail(int fd, std::string message) {
  ::close(fd);
  return core::error(ErrorCode::kUnavailable, std::move(message));
}

// What a reader relies on: the bytes it maps never change, and the file never shrinks under a
// mapping (a read past its end would be SIGBUS).
constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

// Unmaps a reader's mapping when the last HostBytes sharing it goes.
struct Mapping {
  void* data;
  std::size_t size;
  Mapping(void* d, std::size_t s) : data(d), size(s) {}
  ~Mapping() { ::munmap(data, size); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

// Writes all of `data` at the start of `fd`.
bool write_all(int fd, std::span<const std::byte> data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

const std::string& shared_memory_host_key() {
  static const std::string key = [] {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(in, id);
    return id;  // empty when unknown: then no peer matches and shared memory is never used
  }();
  return key;
}

SharedKvBlob::SharedKvBlob(int fd, const std::byte* data, std::size_t size, std::string name)
    : fd_(fd), data_(data), size_(size), name_(std::move(name)),
      path_("/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd)) {}

SharedKvBlob::~SharedKvBlob() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  ::close(fd_);
}

core::Result<std::unique_ptr<SharedKvBlob>> SharedKvBlob::create(std::span<const std::byte> blob) {
  static std::atomic<std::uint64_t> next{1};
  std::string name = "aegaeon-kv-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
  // Close-on-exec: a child process has no use for it; readers open it through /proc.
  const int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return core::error(ErrorCode::kUnavailable, "memfd_create: " + errno_text());
  if (::ftruncate(fd, static_cast<off_t>(blob.size())) != 0 || !write_all(fd, blob)) {
    return close_and_fail(fd, "writing the KV memory file: " + errno_text());
  }
  // Before any mapping exists (a writable shared one would make F_SEAL_WRITE fail).
  if (::fcntl(fd, F_ADD_SEALS, kSeals | F_SEAL_SEAL) != 0) {
    return close_and_fail(fd, "sealing the KV memory file: " + errno_text());
  }
  const std::byte* data = nullptr;
  if (!blob.empty()) {
    void* mapped = ::mmap(nullptr, blob.size(), PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) return close_and_fail(fd, "mapping the KV memory file: " + errno_text());
    data = static_cast<const std::byte*>(mapped);
  }
  return std::unique_ptr<SharedKvBlob>(new SharedKvBlob(fd, data, blob.size(), std::move(name)));
}

core::Result<core::HostBytes> map_shared_kv(const std::string& path, const std::string& name, std::uint64_t bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return core::error(ErrorCode::kUnavailable, "opening " + path + ": " + errno_text());
  // The mapping keeps the file alive; the descriptor is needed only until then.
  // What was opened, by its name: a memory file links as "/memfd:NAME (deleted)".
  char link[256] = {};
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t length = ::readlink(self.c_str(), link, sizeof link - 1);
  if (length < 0 || std::string(link, static_cast<std::size_t>(length)) != "/memfd:" + name + " (deleted)") {
    return close_and_fail(fd, path + " is not the memory file '" + name + "' any more");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != bytes) {
    return close_and_fail(fd, path + " holds " + std::to_string(st.st_size) + " bytes, not the " +
                                  std::to_string(bytes) + " the handoff announced");
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & kSeals) != kSeals) {
    return close_and_fail(fd, path + " is not sealed against writes and resizing");
  }
  if (bytes == 0) {
    ::close(fd);
    return core::HostBytes();
  }
  // Populated now: the page-table work is part of the handoff, not of the first decode step.
  void* mapped = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (mapped == MAP_FAILED) return close_and_fail(fd, "mapping " + path + ": " + errno_text());
  ::close(fd);
  auto mapping = std::make_shared<const Mapping>(mapped, bytes);
  return core::HostBytes(std::span<const std::byte>(static_cast<const std::byte*>(mapped), bytes), mapping);
}

}  // namespace aegaeon::rpc
