// The CPU execution backend: the arena is host memory of a fixed configured size, copies run on
// their own thread (the copy engine), compute ops run on a thread pool with AVX2 kernels and
// OpenBLAS sgemm for the large matmuls of prefill.
#pragma once

#include <cstddef>
#include <memory>

#include "gpu/backend/backend.hpp"

namespace aegaeon::backend::cpu {

class ThreadPool;
class CopyQueue;

/// How to build a CpuBackend.
struct CpuBackendOptions {
  std::size_t arena_bytes = std::size_t{1} << 30;  ///< the "device memory" size
  int num_threads = 1;                             ///< compute threads (copy thread extra)
};

/// Backend whose device is the host: real execution, fixed memory, asynchronous copy engine.
/// Compute ops run synchronously on the calling thread (with the pool), so the compute queue
/// is always drained when an op returns; copies on Queue::kCopy run on the copy thread.
class CpuBackend final : public Backend {
 public:
  /// Reserves the arena and starts the threads; kResourceExhausted if the arena can't be had.
  static core::Result<std::unique_ptr<CpuBackend>> create(const CpuBackendOptions& options);
  ~CpuBackend() override;

  [[nodiscard]] std::string_view name() const override { return "cpu"; }
  DeviceArena& arena() override { return arena_; }
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

  /// Compute threads in use.
  [[nodiscard]] int num_threads() const;

  /// Rows at and above which matmul uses OpenBLAS sgemm instead of the GEMV kernel
  /// (benchmarks tune and report it).
  static constexpr int kGemmMinRows = 16;

 private:
  CpuBackend(std::byte* arena_memory, std::size_t arena_bytes, int num_threads);
  void matmul_gemv(const MatmulArgs& args);
  void matmul_gemm(const MatmulArgs& args);

  std::byte* arena_memory_;  // owned; freed in the destructor
  DeviceArena arena_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<CopyQueue> copy_queue_;
};

}  // namespace aegaeon::backend::cpu
