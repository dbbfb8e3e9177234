// The CUDA execution backend behind the one backend interface (DESIGN.md rule 2). This header
// has no CUDA includes, so any layer may create a CUDA backend by device name ("cuda:N"); the
// CUDA state lives in a pimpl defined in cuda_backend.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "gpu/backend/backend.hpp"

namespace aegaeon::backend::cuda {

/// How to build a CudaBackend.
struct CudaBackendOptions {
  int device = 0;                                        ///< CUDA device ordinal
  std::size_t arena_bytes = std::size_t{1} << 30;        ///< one cudaMalloc, carved by the arena
  std::size_t gemm_workspace_bytes = std::size_t{64} << 20;  ///< BF16/F16 activation casts
};

/// Number of usable CUDA devices; 0 when built without CUDA, without a driver or without a GPU.
int cuda_device_count();

/// Parses "cuda" (device 0) or "cuda:N"; kInvalidArgument naming the expected spelling.
core::Result<int> parse_cuda_device(std::string_view device_name);

/// Creates the CUDA backend for `device_name` ("cuda:N"; options.device is overridden).
/// kUnavailable "built without CUDA" / "no CUDA device" when it cannot exist here.
core::Result<std::unique_ptr<Backend>> make_cuda_backend(std::string_view device_name,
                                                         CudaBackendOptions options = {});

/// One contiguous copy of a batch (KV block swaps: one entry per block).
struct CopyRange {
  void* dst = nullptr;
  const void* src = nullptr;
  std::size_t bytes = 0;
};

/// Host memory allocated elsewhere (e.g. an mmap'ed model file) page-locked with
/// cudaHostRegister for the lifetime of this object; does not own the memory itself.
class HostRegistration {
 public:
  virtual ~HostRegistration() = default;
  /// The registered range's start.
  [[nodiscard]] virtual std::byte* data() const = 0;
  /// The registered range's size in bytes.
  [[nodiscard]] virtual std::size_t bytes() const = 0;
};

/// Page-locks `bytes` of existing host memory at `data` through `backend`, which must be a
/// backend make_cuda_backend returned (kInvalidArgument otherwise; kUnavailable without CUDA).
/// Copies from registered memory run at the full host-to-device bandwidth instead of being staged.
core::Result<std::unique_ptr<HostRegistration>> register_host_memory(Backend& backend, std::byte* data,
                                                                     std::size_t bytes);
/// The same on CUDA device `device` without a backend at hand (the host model cache registers a
/// reloaded model after its devices' backends were made). kUnavailable without CUDA.
core::Result<std::unique_ptr<HostRegistration>> register_host_memory(int device, std::byte* data,
                                                                     std::size_t bytes);

/// Backend on one NVIDIA GPU: a cudaMalloc arena carved like the CPU one, page-locked host
/// buffers, three streams (compute; copy split into an H2D "swap-in" and a D2H "swap-out" stream
/// kept in submission order by events), cuBLAS GEMMs with F32 accumulation, and CUDA kernels
/// for the rest of the forward pass. Ops report CUDA failures through status() (the interface's
/// ops return void).
class CudaBackend final : public Backend {
 public:
  /// Selects options.device, creates streams, cuBLAS and the arena; kUnavailable without a
  /// device, kResourceExhausted when the arena does not fit.
  static core::Result<std::unique_ptr<CudaBackend>> create(const CudaBackendOptions& options);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  [[nodiscard]] std::string_view name() const override;
  DeviceArena& arena() override { return *arena_; }
  core::Result<std::unique_ptr<PinnedBuffer>> allocate_pinned(std::size_t bytes) override;

  std::unique_ptr<Event> create_event() override;
  void record(Queue queue, Event& event) override;
  void wait(Queue queue, const Event& event) override;
  [[nodiscard]] bool query(const Event& event) override;
  void synchronize(const Event& event) override;
  void synchronize(Queue queue) override;
  void copy(Queue queue, void* dst, const void* src, std::size_t bytes, CopyKind kind) override;

  void embedding(Weight table, const std::int32_t* ids, int num_tokens, int hidden,
                 float* out) override;
  void matmul(const MatmulArgs& args) override;
  void rms_norm(const float* x, Weight weight, float eps, int rows, int hidden,
                float* y) override;
  void rope(float* x, const std::int32_t* positions, int num_tokens, int num_heads, int head_dim,
            const RopeParams& params) override;
  void write_kv(const float* k, const float* v, int layer, const KvLayout& layout,
                const TokenBatch& batch) override;
  void attention(const AttentionArgs& args) override;
  void silu_mul(const float* gate, const float* up, std::size_t count, float* out) override;
  void add(const float* a, const float* b, std::size_t count, float* out) override;
  void gather_rows(const float* x, const std::int32_t* rows, int num_rows, int width,
                   float* out) override;

  // ---- CUDA-only extras (not in the interface yet) -----------------------------------------
  /// out[r] = index of the largest logits[r,:] (first on ties), on Queue::kCompute: greedy
  /// sampling without copying logits to the host.
  void argmax(const float* logits, int rows, int vocab, std::int32_t* out);
  /// Several copies of one kind as one batch on `queue` (KV block swaps).
  void copy_batch(Queue queue, std::span<const CopyRange> ranges, CopyKind kind);
  /// Page-locks existing host memory so copies from it run at full bandwidth.
  core::Result<std::unique_ptr<HostRegistration>> register_host(std::byte* data,
                                                                std::size_t bytes);
  /// The first CUDA/cuBLAS failure of any op so far (sticky), or ok.
  [[nodiscard]] core::Result<void> status() const;
  /// The CUDA device ordinal.
  [[nodiscard]] int device() const;
  /// The cudaStream_t behind `queue` as an opaque pointer (kCopy: the H2D stream), for
  /// interop such as NCCL; ordering rules of the interface still apply.
  [[nodiscard]] void* native_stream(Queue queue) const;

  /// Rows at and below which matmul runs the GEMV kernel (weights read once) instead of cuBLAS.
  static constexpr int kGemvMaxRows = 16;
  /// Largest head_dim the attention kernels support.
  static constexpr int kMaxHeadDim = 256;

 private:
  struct Impl;
  explicit CudaBackend(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  std::unique_ptr<DeviceArena> arena_;
};

}  // namespace aegaeon::backend::cuda
