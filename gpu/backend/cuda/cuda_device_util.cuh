// Device helpers shared by the CUDA backend's kernels: element widening per weight type,
// dispatch from a runtime DType to a kernel template, warp and block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "gpu/backend/dtype.hpp"

namespace aegaeon::backend::cuda {

inline constexpr int kWarp = 32;

/// Widens one stored weight element to float (exact for every type).
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

/// Names a C++ element type at run time for dispatch_weight.
template <typename T>
struct TypeTag {
  using type = T;
};

/// Calls f(TypeTag<T>{}) with T the device type of a float `dtype`; false for kI32.
template <typename F>
bool dispatch_weight(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32: f(TypeTag<float>{}); return true;
    case DType::kBF16: f(TypeTag<__nv_bfloat16>{}); return true;
    case DType::kF16: f(TypeTag<__half>{}); return true;
    case DType::kI32: return false;
  }
  return false;
}

/// Sum over the 32 lanes of a warp, result in every lane.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

/// Max over the 32 lanes of a warp, result in every lane.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

/// Sum over a whole block (blockDim.x a multiple of 32, ≤ 1024), result in every thread.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[kWarp];
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  const int warps = static_cast<int>(blockDim.x) / kWarp;
  v = warp_sum(v);
  __syncthreads();  // partial may still be read by an earlier call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = lane < warps ? partial[lane] : 0.0f;
  return warp_sum(total);
}

}  // namespace aegaeon::backend::cuda
