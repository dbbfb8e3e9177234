// A handed-off KV blob in shared memory, for a decode worker on the same host as the prefill
// worker: it maps the prefill worker's memory file and imports the KV from that mapping instead
// of pulling it in chunks through the controller (two TCP hops) into fresh pages. The RPC pull
// stays the fallback and the path between hosts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/host_bytes.hpp"
#include "core/result.hpp"

namespace aegaeon::rpc {

/// What identifies this host's memory: the kernel's boot id. Two processes with the same key can
/// open each other's files under /proc (if allowed); network namespaces of one machine share it.
const std::string& shared_memory_host_key();

/// An anonymous memory file (memfd) holding one KV blob, readable by other processes of this
/// host through path() while this object lives. Sealed once written: nobody can write, shrink
/// or grow it, so a reader's mapping can neither change nor fault under it. The file goes with
/// the last descriptor or mapping: when the holder and its readers drop it, or die, nothing is
/// left behind in /dev/shm.
class SharedKvBlob {
 public:
  /// Copies `blob` into a new memory file. kUnavailable when memfd_create is not allowed (the
  /// caller keeps the blob in its own memory and serves it over RPC only).
  static core::Result<std::unique_ptr<SharedKvBlob>> create(std::span<const std::byte> blob);
  ~SharedKvBlob();
  SharedKvBlob(const SharedKvBlob&) = delete;
  SharedKvBlob& operator=(const SharedKvBlob&) = delete;

  /// "/proc/<pid>/fd/<fd>": how another process of this host opens it.
  [[nodiscard]] const std::string& path() const { return path_; }
  /// The file's name, unique on this host ("aegaeon-kv-<pid>-<n>"): a reader checks it, since
  /// once this object is gone its path may lead to another file.
  [[nodiscard]] const std::string& name() const { return name_; }
  /// The blob, mapped read-only (what the RPC fallback serves).
  [[nodiscard]] std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  SharedKvBlob(int fd, const std::byte* data, std::size_t size, std::string name);
  int fd_;
  const std::byte* data_;
  std::size_t size_;
  std::string name_;
  std::string path_;
};

/// Maps a SharedKvBlob another process of this host published at `path` under `name`, which
/// must hold exactly `bytes` bytes and be sealed. The pages are the writer's (no copy, no fresh
/// memory) and stay readable after the writer drops its file. Errors name the path (the file is
/// gone, not allowed, another file, another size, not sealed): the caller falls back to the RPC
/// pull.
core::Result<core::HostBytes> map_shared_kv(const std::string& path, const std::string& name, std::uint64_t bytes);

}  // namespace aegaeon::rpc
