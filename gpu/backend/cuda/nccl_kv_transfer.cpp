#include "gpu/backend/cuda/nccl_kv_transfer.hpp"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>

#include "gpu/backend/cuda/cuda_backend.hpp"

namespace aegaeon::backend::cuda {

using core::ErrorCode;

namespace {

static_assert(sizeof(ncclUniqueId) == NcclKvTransfer::kUniqueIdBytes);

core::Result<void> check(ncclResult_t status, const char* what) {
  if (status == ncclSuccess) return {};
  return core::error(ErrorCode::kUnavailable, std::string("nccl kv transfer: ") + what + ": " +
                                                  ncclGetErrorString(status));
}

}  // namespace

struct NcclKvTransfer::Impl {
  CudaBackend* backend = nullptr;
  ncclComm_t comm = nullptr;
  int num_ranks = 0;

  ~Impl() {
    if (comm != nullptr) ncclCommDestroy(comm);
  }

  // Groups consecutive block ids into one call each (a sequence's blocks are often adjacent).
  core::Result<void> transfer(const KvLayout& layout, std::span<const std::int32_t> blocks,
                              int peer, bool send) {
    if (peer < 0 || peer >= num_ranks) {
      return core::error(ErrorCode::kInvalidArgument,
                         "nccl kv transfer: peer " + std::to_string(peer) + " outside 0.." +
                             std::to_string(num_ranks - 1));
    }
    cudaSetDevice(backend->device());
    auto stream = static_cast<cudaStream_t>(backend->native_stream(Queue::kCompute));
    const std::size_t block_bytes = layout.block_bytes();
    AEGAEON_TRY(check(ncclGroupStart(), "ncclGroupStart"));
    std::size_t i = 0;
    while (i < blocks.size()) {
      std::size_t j = i + 1;
      while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1) ++j;
      auto* data = static_cast<std::byte*>(layout.base) +
                   static_cast<std::size_t>(blocks[i]) * block_bytes;
      const std::size_t bytes = (j - i) * block_bytes;
      const ncclResult_t status =
          send ? ncclSend(data, bytes, ncclInt8, peer, comm, stream)
               : ncclRecv(data, bytes, ncclInt8, peer, comm, stream);
      if (status != ncclSuccess) {
        ncclGroupEnd();
        return check(status, send ? "ncclSend" : "ncclRecv");
      }
      i = j;
    }
    return check(ncclGroupEnd(), "ncclGroupEnd");
  }
};

core::Result<std::string> NcclKvTransfer::create_unique_id() {
  ncclUniqueId id;
  AEGAEON_TRY(check(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  return std::string(id.internal, sizeof id.internal);
}

core::Result<std::unique_ptr<NcclKvTransfer>> NcclKvTransfer::connect(CudaBackend& backend,
                                                                     std::string_view unique_id,
                                                                     int rank, int num_ranks) {
  if (unique_id.size() != kUniqueIdBytes) {
    return core::error(ErrorCode::kInvalidArgument,
                       "nccl kv transfer: unique id has " + std::to_string(unique_id.size()) +
                           " bytes, expected " + std::to_string(kUniqueIdBytes));
  }
  if (num_ranks < 2 || rank < 0 || rank >= num_ranks) {
    return core::error(ErrorCode::kInvalidArgument,
                       "nccl kv transfer: rank " + std::to_string(rank) + " of " +
                           std::to_string(num_ranks) + " (need 0 <= rank < num_ranks, >= 2 ranks)");
  }
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), kUniqueIdBytes);
  auto impl = std::make_unique<Impl>();
  impl->backend = &backend;
  impl->num_ranks = num_ranks;
  cudaSetDevice(backend.device());
  AEGAEON_TRY(check(ncclCommInitRank(&impl->comm, num_ranks, id, rank), "ncclCommInitRank"));
  return std::unique_ptr<NcclKvTransfer>(new NcclKvTransfer(std::move(impl)));
}

NcclKvTransfer::NcclKvTransfer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NcclKvTransfer::~NcclKvTransfer() = default;

core::Result<void> NcclKvTransfer::send_blocks(const KvLayout& layout,
                                               std::span<const std::int32_t> blocks, int peer) {
  return impl_->transfer(layout, blocks, peer, true);
}

core::Result<void> NcclKvTransfer::recv_blocks(const KvLayout& layout,
                                               std::span<const std::int32_t> blocks, int peer) {
  return impl_->transfer(layout, blocks, peer, false);
}

}  // namespace aegaeon::backend::cuda
