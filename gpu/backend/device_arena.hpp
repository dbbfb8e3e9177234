// The device memory arena: one fixed-capacity block reserved at start and carved into named
// regions (KV blocks | weights | scratch | prefetch), so the hot path never calls an allocator.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::backend {

/// A carved range of device memory. `data` is a device address: only the CPU backend may
/// dereference it on the host. Non-owning; the arena owns the memory.
struct DeviceRegion {
  void* data = nullptr;
  std::size_t bytes = 0;
  std::string label;

  /// Device address `offset` bytes into the region.
  [[nodiscard]] void* at(std::size_t offset) const { return static_cast<std::byte*>(data) + offset; }
};

/// Hands out sub-ranges of a region front to back (activations, per-step metadata). Reset
/// between uses; never frees individually.
class RegionCursor {
 public:
  /// Starts at the beginning of `region`.
  explicit RegionCursor(DeviceRegion region) : region_(std::move(region)) {}

  /// Next `bytes` (aligned to `alignment`), or kResourceExhausted naming the region.
  core::Result<void*> take(std::size_t bytes, std::size_t alignment = 64);

  /// Forgets everything taken so far.
  void reset() { used_bytes_ = 0; }

  /// Bytes taken so far, padding included.
  [[nodiscard]] std::size_t used_bytes() const { return used_bytes_; }

  /// The region being carved.
  [[nodiscard]] const DeviceRegion& region() const { return region_; }

 private:
  DeviceRegion region_;
  std::size_t used_bytes_ = 0;
};

/// Bookkeeping for the arena's address range; backends own the memory and hand its base here.
/// Regions are carved front to back and released in reverse order (a stack), which fits the
/// worker's lifetime: carved at start, the top (prefetch/scratch) region re-carved at will.
class DeviceArena {
 public:
  /// Manages `capacity_bytes` starting at device address `base` (not owned).
  DeviceArena(void* base, std::size_t capacity_bytes) : base_(base), capacity_bytes_(capacity_bytes) {}

  /// Carves the next `bytes` (aligned to `alignment`); kResourceExhausted when it does not fit.
  core::Result<DeviceRegion> carve(std::size_t bytes, std::string label, std::size_t alignment = 256);

  /// Releases the most recently carved region; kInvalidArgument if `region` is not the top one.
  core::Result<void> release(const DeviceRegion& region);

  /// Total bytes the arena manages.
  [[nodiscard]] std::size_t capacity_bytes() const { return capacity_bytes_; }

  /// Bytes carved so far (padding included).
  [[nodiscard]] std::size_t used_bytes() const { return used_bytes_; }

  /// Bytes still available for carving (ignoring alignment padding).
  [[nodiscard]] std::size_t free_bytes() const { return capacity_bytes_ - used_bytes_; }

  /// True when `[ptr, ptr+bytes)` lies inside the arena (for checking op arguments).
  [[nodiscard]] bool contains(const void* ptr, std::size_t bytes) const;

 private:
  struct Carved {
    std::size_t begin;  // offset before alignment padding
    std::size_t offset;
    std::size_t bytes;
  };
  void* base_;
  std::size_t capacity_bytes_;
  std::size_t used_bytes_ = 0;
  std::vector<Carved> carved_;
};

}  // namespace aegaeon::backend
