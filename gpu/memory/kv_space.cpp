#include "gpu/memory/kv_space.hpp"

#include <algorithm>
#include <cassert>
#include <numeric>
#include <string>

namespace aegaeon::memory {

KvSpace::KvSpace(backend::Backend& backend, const backend::DeviceRegion& region,
                 std::span<const std::size_t> block_sizes)
    : backend_(backend), region_(region) {
  std::size_t unit = 0;
  for (std::size_t size : block_sizes) unit = std::gcd(unit, size);
  unit_ = std::max<std::size_t>(unit, 1);
  used_.assign(region_.bytes / unit_, false);
  free_units_ = used_.size();
}

std::size_t KvSpace::free_bytes() const {
  std::size_t pending = 0;
  for (const Pending& p : pending_) pending += p.blocks.size() * p.block_bytes;
  return free_units_ * unit_ + pending;
}

bool KvSpace::is_free(std::size_t first_unit, std::size_t units) const {
  for (std::size_t u = first_unit; u < first_unit + units; ++u) {
    if (used_[u]) return false;
  }
  return true;
}

void KvSpace::mark(std::size_t block_bytes, std::int32_t block, bool used) {
  const std::size_t units = block_bytes / unit_;
  const std::size_t first = static_cast<std::size_t>(block) * units;
  for (std::size_t u = first; u < first + units; ++u) {
    assert(used_[u] != used);
    used_[u] = used;
  }
  if (used) {
    free_units_ -= units;
    while (first_free_ < used_.size() && used_[first_free_]) ++first_free_;
  } else {
    free_units_ += units;
    first_free_ = std::min(first_free_, first);
  }
}

core::Result<std::vector<std::int32_t>> KvSpace::take(std::size_t block_bytes, int count) {
  assert(block_bytes % unit_ == 0);
  const std::size_t units = block_bytes / unit_;
  const std::size_t blocks_in_region = used_.size() / units;
  std::vector<std::int32_t> out;
  auto search = [&] {
    for (std::size_t b = first_free_ / units; b < blocks_in_region && out.size() < static_cast<std::size_t>(count); ++b) {
      if (is_free(b * units, units)) out.push_back(static_cast<std::int32_t>(b));
    }
  };
  search();
  // Reclaim releases still waiting on copies, oldest first, until the blocks fit.
  while (out.size() < static_cast<std::size_t>(count) && !pending_.empty()) {
    Pending p = std::move(pending_.front());
    pending_.erase(pending_.begin());
    backend_.wait(backend::Queue::kCompute, *p.copy_done);
    for (std::int32_t b : p.blocks) mark(p.block_bytes, b, false);
    out.clear();
    search();
  }
  if (out.size() < static_cast<std::size_t>(count)) {
    return core::error(core::ErrorCode::kResourceExhausted,
                       "kv cache: need " + std::to_string(count) + " blocks of " + std::to_string(block_bytes) +
                           " bytes but " + std::to_string(out.size()) + " fit in the " +
                           std::to_string(free_units_ * unit_) + " free bytes of " + std::to_string(region_.bytes));
  }
  for (std::int32_t b : out) mark(block_bytes, b, true);
  return out;
}

void KvSpace::give(std::size_t block_bytes, std::vector<std::int32_t> blocks,
                   std::unique_ptr<backend::Event> copy_done) {
  if (blocks.empty()) return;
  if (copy_done != nullptr && !backend_.query(*copy_done)) {
    pending_.push_back(Pending{block_bytes, std::move(blocks), std::move(copy_done)});
    return;
  }
  for (std::int32_t b : blocks) mark(block_bytes, b, false);
}

}  // namespace aegaeon::memory
