// The CUDA factory of a build without the CUDA toolkit: callers link the same API everywhere
// and learn at run time that no CUDA backend exists here.
#include "gpu/backend/cuda/cuda_backend.hpp"

namespace aegaeon::backend::cuda {

int cuda_device_count() { return 0; }

core::Result<std::unique_ptr<Backend>> make_cuda_backend(std::string_view device_name,
                                                         CudaBackendOptions /*options*/) {
  auto device = parse_cuda_device(device_name);
  if (!device.ok()) return device.error();
  return core::error(core::ErrorCode::kUnavailable,
                     "device '" + std::string(device_name) +
                         "': aegaeon was built without CUDA (configure with -DAEGAEON_CUDA=ON "
                         "where nvcc is installed)");
}

core::Result<std::unique_ptr<HostRegistration>> register_host_memory(Backend& /*backend*/, std::byte* /*data*/,
                                                                     std::size_t /*bytes*/) {
  return core::error(core::ErrorCode::kUnavailable, "aegaeon was built without CUDA");
}

core::Result<std::unique_ptr<HostRegistration>> register_host_memory(int /*device*/, std::byte* /*data*/,
                                                                     std::size_t /*bytes*/) {
  return core::error(core::ErrorCode::kUnavailable, "aegaeon was built without CUDA");
}

}  // namespace aegaeon::backend::cuda
