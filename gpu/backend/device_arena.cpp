#include "gpu/backend/device_arena.hpp"

#include <cstdint>

namespace aegaeon::backend {

namespace {
std::size_t align_up(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}
}  // namespace

core::Result<void*> RegionCursor::take(std::size_t bytes, std::size_t alignment) {
  const std::size_t offset = align_up(used_bytes_, alignment);
  if (offset + bytes > region_.bytes) {
    return core::error(core::ErrorCode::kResourceExhausted,
                       "device region '" + region_.label + "': need " + std::to_string(bytes) +
                           " bytes at offset " + std::to_string(offset) + " but the region has " +
                           std::to_string(region_.bytes));
  }
  used_bytes_ = offset + bytes;
  return region_.at(offset);
}

core::Result<DeviceRegion> DeviceArena::carve(std::size_t bytes, std::string label,
                                              std::size_t alignment) {
  // Align the absolute address, not just the offset, so device pointers meet kernel alignment.
  const auto base_address = reinterpret_cast<std::uintptr_t>(base_);
  const std::size_t offset = align_up(base_address + used_bytes_, alignment) - base_address;
  if (offset + bytes > capacity_bytes_) {
    return core::error(core::ErrorCode::kResourceExhausted,
                       "device arena: region '" + label + "' needs " + std::to_string(bytes) +
                           " bytes but only " + std::to_string(capacity_bytes_ - used_bytes_) +
                           " of " + std::to_string(capacity_bytes_) + " are free");
  }
  carved_.push_back(Carved{used_bytes_, offset, bytes});
  used_bytes_ = offset + bytes;
  return DeviceRegion{static_cast<std::byte*>(base_) + offset, bytes, std::move(label)};
}

core::Result<void> DeviceArena::release(const DeviceRegion& region) {
  if (carved_.empty() ||
      static_cast<std::byte*>(base_) + carved_.back().offset != region.data) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "device arena: region '" + region.label +
                           "' is not the most recently carved region; release in reverse order");
  }
  used_bytes_ = carved_.back().begin;
  carved_.pop_back();
  return core::ok();
}

bool DeviceArena::contains(const void* ptr, std::size_t bytes) const {
  const auto* begin = static_cast<const std::byte*>(base_);
  const auto* p = static_cast<const std::byte*>(ptr);
  return p >= begin && p + bytes <= begin + capacity_bytes_;
}

}  // namespace aegaeon::backend
