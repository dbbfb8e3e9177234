// Read-only bytes in host memory together with whatever keeps them alive: a vector this process
// filled, or a mapping of a file another process wrote (a handed-off KV read in place, with no
// copy into fresh pages). Copies share the owner, so a blob can be held by a KV source, a
// handoff message and a device's parked sequence at once without copying its bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace aegaeon::core {

class HostBytes {
 public:
  HostBytes() = default;
  /// Takes `bytes` over (no copy).
  explicit HostBytes(std::vector<std::byte> bytes) {
    auto owned = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
    view_ = std::span<const std::byte>(*owned);
    owner_ = std::move(owned);
  }
  /// `view` stays valid while `owner` lives (e.g. an object that unmaps in its destructor).
  HostBytes(std::span<const std::byte> view, std::shared_ptr<const void> owner)
      : view_(view), owner_(std::move(owner)) {}

  [[nodiscard]] const std::byte* data() const { return view_.data(); }
  [[nodiscard]] std::size_t size() const { return view_.size(); }
  [[nodiscard]] bool empty() const { return view_.empty(); }
  [[nodiscard]] std::span<const std::byte> span() const { return view_; }
  [[nodiscard]] auto begin() const { return view_.begin(); }
  [[nodiscard]] auto end() const { return view_.end(); }

  friend bool operator==(const HostBytes& a, const HostBytes& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }

 private:
  std::span<const std::byte> view_;
  std::shared_ptr<const void> owner_;
};

}  // namespace aegaeon::core
