// The bytes of one KV region, shared by every KV geometry on a device (elastic KV across
// models, as kvcached does with virtual memory): a block of a geometry whose blocks take
// `block_bytes` has id b and occupies [b·block_bytes, (b+1)·block_bytes) of the region. Each
// geometry keeps its own KvLayout, so the attention ops address blocks as before, while free
// space moves between models as their sequences come and go instead of being split up front.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/result.hpp"
#include "gpu/backend/backend.hpp"

namespace aegaeon::memory {

/// Owned by the device's thread (with the KvCaches over it); not thread-safe.
class KvSpace {
 public:
  /// Tracks `region` in units of the greatest common divisor of `block_sizes` (every geometry
  /// that will take blocks from it).
  KvSpace(backend::Backend& backend, const backend::DeviceRegion& region, std::span<const std::size_t> block_sizes);

  [[nodiscard]] void* base() const { return region_.data; }
  [[nodiscard]] std::size_t bytes() const { return region_.bytes; }
  /// Bytes free, counting blocks whose release still waits on a copy.
  [[nodiscard]] std::size_t free_bytes() const;

  /// Takes `count` blocks of `block_bytes`, lowest addresses first; kResourceExhausted when they
  /// do not fit (nothing is taken then). When free space runs short it reclaims blocks whose
  /// release waits on a copy, oldest first, ordering later compute after that copy.
  core::Result<std::vector<std::int32_t>> take(std::size_t block_bytes, int count);
  /// Returns blocks of `block_bytes`. With `copy_done`, a copy still reads or writes them: they
  /// are handed out again only once space runs short, and compute waits for the copy then.
  void give(std::size_t block_bytes, std::vector<std::int32_t> blocks,
            std::unique_ptr<backend::Event> copy_done = nullptr);

 private:
  struct Pending {
    std::size_t block_bytes;
    std::vector<std::int32_t> blocks;
    std::unique_ptr<backend::Event> copy_done;
  };
  void mark(std::size_t block_bytes, std::int32_t block, bool used);
  [[nodiscard]] bool is_free(std::size_t first_unit, std::size_t units) const;

  backend::Backend& backend_;
  backend::DeviceRegion region_;
  std::size_t unit_ = 1;
  std::vector<bool> used_;  // per unit
  std::size_t free_units_ = 0;
  std::size_t first_free_ = 0;  // no unit below this is free (a search hint)
  std::vector<Pending> pending_;
};

}  // namespace aegaeon::memory
