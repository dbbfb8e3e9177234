// Launchers of the CUDA backend's kernels (cuda_kernels.cu, cuda_attention.cu). Internal to
// gpu/backend/cuda/: it includes the CUDA runtime header, so no other layer may include it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/backend/backend.hpp"

namespace aegaeon::backend::cuda {

/// Largest head_dim the attention kernels take (CudaBackend::kMaxHeadDim).
inline constexpr int kMaxAttentionHeadDim = 256;

/// Largest head_dim/2 the rope kernel takes (inverse frequencies pass by value).
inline constexpr int kMaxRopeHalf = 256;

/// The rope inverse frequencies as a by-value kernel argument (no device table to manage).
struct RopeFreqs {
  float inv_freq[kMaxRopeHalf];
};

/// out[i,:] = float(table[ids[i],:]).
void launch_embedding(Weight table, const std::int32_t* ids, int num_tokens, int hidden,
                      float* out, cudaStream_t stream);
/// y = x·wᵀ + bias for m ≤ CudaBackend::kGemvMaxRows: one warp per output column.
void launch_gemv(const float* x, Weight w, Weight bias, float* y, int m, int n, int k,
                 cudaStream_t stream);
/// y[r,c] += bias[c] over an [m,n] F32 matrix.
void launch_add_bias(float* y, Weight bias, int m, int n, cudaStream_t stream);
/// dst = src rounded to `dtype` (kBF16 or kF16), `count` elements.
void launch_cast_f32(const float* src, void* dst, DType dtype, std::size_t count,
                     cudaStream_t stream);
/// RMSNorm per row (y may alias x).
void launch_rms_norm(const float* x, Weight weight, float eps, int rows, int hidden, float* y,
                     cudaStream_t stream);
/// In-place rotate_half RoPE with the given inverse frequencies.
void launch_rope(float* x, const std::int32_t* positions, int num_tokens, int num_heads,
                 int head_dim, const RopeFreqs& freqs, cudaStream_t stream);
/// Scatters each token's K and V rows into its paged block for `layer`.
void launch_write_kv(const float* k, const float* v, int layer, const KvLayout& layout,
                     const TokenBatch& batch, cudaStream_t stream);
/// out = silu(gate) * up.
void launch_silu_mul(const float* gate, const float* up, std::size_t count, float* out,
                     cudaStream_t stream);
/// out = a + b.
void launch_add(const float* a, const float* b, std::size_t count, float* out,
                cudaStream_t stream);
/// out[i,:] = x[rows[i],:] (out must not overlap x).
void launch_gather_rows(const float* x, const std::int32_t* rows, int num_rows, int width,
                        float* out, cudaStream_t stream);
/// out[r] = argmax of logits[r,:], first index on ties.
void launch_argmax(const float* logits, int rows, int vocab, std::int32_t* out,
                   cudaStream_t stream);
/// Paged attention with one CTA per (token, head), context split over 4 warps: the decode path.
void launch_attention_decode(const AttentionArgs& args, cudaStream_t stream);
/// Tiled paged attention: a CTA per (8 consecutive tokens, head) stages each 16-token K/V block
/// in shared memory once for the tile when the tile's tokens share a sequence: the prefill path.
void launch_attention_prefill(const AttentionArgs& args, cudaStream_t stream);

}  // namespace aegaeon::backend::cuda
