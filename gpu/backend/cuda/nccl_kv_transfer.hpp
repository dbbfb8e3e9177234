// KV handoff between two GPUs with NCCL (prefill instance → decode instance, same or different
// hosts): a sequence's paged KV blocks are sent and received as whole blocks. Compiled only when
// NCCL is found (AEGAEON_HAVE_NCCL). UNTESTED ON HARDWARE: written without a GPU at hand; it is
// not wired into the cluster's KV handoff path yet. No NCCL or CUDA header here.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "gpu/backend/backend.hpp"

namespace aegaeon::backend::cuda {

class CudaBackend;

/// One rank's end of a NCCL communicator used to move KV blocks between devices.
class NcclKvTransfer {
 public:
  /// Bytes of an NCCL unique id (ncclUniqueId).
  static constexpr std::size_t kUniqueIdBytes = 128;

  /// A fresh unique id: rank 0 creates it and ships it to the peer out of band (e.g. over RPC).
  static core::Result<std::string> create_unique_id();

  /// Joins the communicator `unique_id` as `rank` of `num_ranks` on `backend`'s device. Blocks
  /// until every rank has joined. kInvalidArgument for a malformed id or rank.
  static core::Result<std::unique_ptr<NcclKvTransfer>> connect(CudaBackend& backend,
                                                               std::string_view unique_id,
                                                               int rank, int num_ranks = 2);
  ~NcclKvTransfer();
  NcclKvTransfer(const NcclKvTransfer&) = delete;
  NcclKvTransfer& operator=(const NcclKvTransfer&) = delete;

  /// Enqueues sending `blocks` of `layout` to `peer` on Queue::kCompute (after the prefill that
  /// wrote them); record an event on kCompute to learn when the blocks may be reused.
  core::Result<void> send_blocks(const KvLayout& layout, std::span<const std::int32_t> blocks,
                                 int peer);
  /// Enqueues receiving into `blocks` of `layout` (same block shape as the sender's, any ids)
  /// from `peer` on Queue::kCompute; later compute on kCompute sees the received KV.
  core::Result<void> recv_blocks(const KvLayout& layout, std::span<const std::int32_t> blocks,
                                 int peer);

 private:
  struct Impl;
  explicit NcclKvTransfer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::backend::cuda
