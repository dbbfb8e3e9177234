// Device-name parsing shared by the CUDA build and the built-without-CUDA stub.
#include <charconv>
#include <string>

#include "gpu/backend/cuda/cuda_backend.hpp"

namespace aegaeon::backend::cuda {

core::Result<int> parse_cuda_device(std::string_view device_name) {
  if (device_name == "cuda") return 0;
  constexpr std::string_view kPrefix = "cuda:";
  if (device_name.substr(0, kPrefix.size()) == kPrefix) {
    const std::string_view digits = device_name.substr(kPrefix.size());
    int device = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), device);
    if (ec == std::errc() && end == digits.data() + digits.size() && device >= 0) return device;
  }
  return core::error(core::ErrorCode::kInvalidArgument,
                     "device '" + std::string(device_name) + "': expected \"cuda\" or \"cuda:N\"");
}

}  // namespace aegaeon::backend::cuda
