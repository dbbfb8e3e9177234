// The decode matmul kernel: against a plain double-precision dot product, and batch-invariant
// (a row's result does not depend on how many other rows share the call).
#include "gpu/backend/cpu/cpu_kernels.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace aegaeon::backend::cpu {
namespace {

TEST(CpuKernelsTest, MatmulRowsMatchesReferenceAndIsBatchInvariant) {
  // k = 203 leaves a tail after the 8-wide steps; n = 7 leaves weight rows outside 4-row tiles.
  const std::size_t n = 7, k = 203;
  const int max_m = 5;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(max_m) * k);
  for (float& v : x) v = dist(rng);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    std::vector<float> w(n * k);
    std::vector<std::uint16_t> w16(n * k);
    for (std::size_t i = 0; i < w.size(); ++i) {
      const float v = dist(rng);
      w16[i] = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      w[i] = dtype == DType::kF32 ? v : dtype == DType::kBF16 ? bf16_to_f32(w16[i]) : f16_to_f32(w16[i]);
    }
    const void* weights = dtype == DType::kF32 ? static_cast<const void*>(w.data()) : w16.data();
    std::vector<float> all(static_cast<std::size_t>(max_m) * n);
    matmul_rows(dtype, weights, n, x.data(), max_m, k, all.data(), n);
    for (int j = 0; j < max_m; ++j) {
      std::vector<float> alone(n);
      matmul_rows(dtype, weights, n, x.data() + static_cast<std::size_t>(j) * k, 1, k, alone.data(), n);
      for (std::size_t r = 0; r < n; ++r) {
        double reference = 0;
        for (std::size_t i = 0; i < k; ++i) reference += double{x[j * k + i]} * w[r * k + i];
        const float got = all[static_cast<std::size_t>(j) * n + r];
        EXPECT_NEAR(got, reference, 1e-4 * std::sqrt(static_cast<double>(k)))
            << to_string(dtype) << " row " << j << " weight row " << r;
        EXPECT_EQ(got, alone[r]) << to_string(dtype) << ": row " << j << " alone differs";
        float dot;
        dot_rows(dtype, static_cast<const std::byte*>(weights) + r * k * dtype_bytes(dtype),
                 x.data() + static_cast<std::size_t>(j) * k, k, 1, k, &dot);
        EXPECT_EQ(got, dot) << to_string(dtype) << ": dot_rows differs";
      }
    }
  }
}

}  // namespace
}  // namespace aegaeon::backend::cpu
