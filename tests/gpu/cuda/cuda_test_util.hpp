// Shared setup of the CUDA parity tests: a CPU and a CUDA backend side by side, mirrored device
// buffers filled with the same seeded random data, and the skip when no GPU is present.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "gpu/backend/cpu/cpu_backend.hpp"
#include "gpu/backend/cuda/cuda_backend.hpp"

namespace aegaeon::backend::cuda::testing {

/// Skips the current test with a clear reason when this machine has no usable CUDA device.
#define AEGAEON_SKIP_WITHOUT_CUDA()                                                         \
  do {                                                                                     \
    if (::aegaeon::backend::cuda::cuda_device_count() == 0) {                              \
      GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount reports none): CUDA test skipped"; \
    }                                                                                      \
  } while (false)

/// Seeded uniform floats in [lo, hi).
inline std::vector<float> random_floats(std::size_t count, std::uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(count);
  for (float& v : values) v = dist(rng);
  return values;
}

/// `values` stored as `dtype` (F32, BF16 or F16), as raw bytes.
inline std::vector<std::byte> encode(const std::vector<float>& values, DType dtype) {
  std::vector<std::byte> bytes(values.size() * dtype_bytes(dtype));
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(bytes.data() + i * 4, &values[i], 4);
    } else {
      const std::uint16_t bits =
          dtype == DType::kBF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(bytes.data() + i * 2, &bits, 2);
    }
  }
  return bytes;
}

/// A CPU backend and a CUDA backend; every buffer exists in both arenas.
class BackendPair {
 public:
  /// Both backends with `arena_bytes` each; check ok() (fails the test when CUDA can't start).
  explicit BackendPair(std::size_t arena_bytes = std::size_t{256} << 20) {
    auto cpu = cpu::CpuBackend::create({arena_bytes, 2});
    EXPECT_TRUE(cpu.ok());
    if (cpu.ok()) cpu_ = std::move(cpu).value();
    CudaBackendOptions options;
    options.arena_bytes = arena_bytes;
    auto gpu = CudaBackend::create(options);
    EXPECT_TRUE(gpu.ok()) << (gpu.ok() ? "" : gpu.error().message);
    if (gpu.ok()) gpu_ = std::move(gpu).value();
  }

  [[nodiscard]] bool ok() const { return cpu_ != nullptr && gpu_ != nullptr; }
  cpu::CpuBackend& cpu() { return *cpu_; }
  CudaBackend& gpu() { return *gpu_; }

  /// A buffer of `bytes` in each arena.
  struct Buffer {
    void* cpu = nullptr;
    void* gpu = nullptr;
    std::size_t bytes = 0;
    template <typename T>
    T* c() const { return static_cast<T*>(cpu); }
    template <typename T>
    T* g() const { return static_cast<T*>(gpu); }
  };

  /// Carves `bytes` in both arenas.
  Buffer alloc(std::size_t bytes) {
    auto c = cpu_->arena().carve(bytes, "test");
    auto g = gpu_->arena().carve(bytes, "test");
    EXPECT_TRUE(c.ok() && g.ok()) << "test arena too small for " << bytes << " bytes";
    return Buffer{c.ok() ? c->data : nullptr, g.ok() ? g->data : nullptr, bytes};
  }

  /// A buffer holding `data` in both arenas.
  Buffer put(const void* data, std::size_t bytes) {
    Buffer b = alloc(bytes);
    std::memcpy(b.cpu, data, bytes);
    gpu_->copy(Queue::kCompute, b.gpu, data, bytes, CopyKind::kHostToDevice);
    gpu_->synchronize(Queue::kCompute);
    return b;
  }
  template <typename T>
  Buffer put(const std::vector<T>& values) {
    return put(values.data(), values.size() * sizeof(T));
  }

  /// The CUDA copy of `b` as `count` values of T (waits for the compute queue).
  template <typename T>
  std::vector<T> gpu_values(const Buffer& b, std::size_t count) {
    std::vector<T> out(count);
    gpu_->copy(Queue::kCompute, out.data(), b.gpu, count * sizeof(T), CopyKind::kDeviceToHost);
    gpu_->synchronize(Queue::kCompute);
    EXPECT_TRUE(gpu_->status().ok()) << gpu_->status().error().message;
    return out;
  }
  /// The CPU copy of `b` as `count` values of T.
  template <typename T>
  std::vector<T> cpu_values(const Buffer& b, std::size_t count) {
    std::vector<T> out(count);
    std::memcpy(out.data(), b.cpu, count * sizeof(T));
    return out;
  }

  /// Expects |gpu - cpu| ≤ abs_tol + rel_tol·|cpu| for every element of `b`.
  void expect_close(const Buffer& b, std::size_t count, float abs_tol, float rel_tol,
                    const char* what) {
    const auto want = cpu_values<float>(b, count);
    const auto got = gpu_values<float>(b, count);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const float limit = abs_tol + rel_tol * std::fabs(want[i]);
      if (!(std::fabs(got[i] - want[i]) <= limit)) {
        if (++bad <= 5) {
          ADD_FAILURE() << what << "[" << i << "]: cuda " << got[i] << " vs cpu " << want[i];
        }
      }
    }
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << count << " elements differ";
  }

 private:
  std::unique_ptr<cpu::CpuBackend> cpu_;
  std::unique_ptr<CudaBackend> gpu_;
};

}  // namespace aegaeon::backend::cuda::testing
