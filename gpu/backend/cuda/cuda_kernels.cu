// Element-wise, normalization, rope, KV scatter, GEMV and argmax kernels of the CUDA backend.
// Every op widens weights to F32 and accumulates in F32, as the CPU backend does, so the two
// agree to rounding.
#include <cfloat>
#include <climits>

#include "gpu/backend/cuda/cuda_device_util.cuh"
#include "gpu/backend/cuda/cuda_kernels.hpp"

namespace aegaeon::backend::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kGemvWarps = 8;

unsigned grid_for(std::size_t count, int threads = kThreads) {
  const std::size_t blocks = (count + static_cast<std::size_t>(threads) - 1) /
                             static_cast<std::size_t>(threads);
  // Grid-stride loops cover the rest; 65535·8 blocks keep every SM busy.
  return static_cast<unsigned>(blocks < 524280 ? (blocks == 0 ? 1 : blocks) : 524280);
}

template <typename W>
__global__ void embedding_kernel(const W* table, const std::int32_t* ids, int hidden, float* out) {
  const std::size_t t = blockIdx.x;
  const std::size_t row = static_cast<std::size_t>(ids[t]);
  const auto width = static_cast<std::size_t>(hidden);
  for (std::size_t i = threadIdx.x; i < width; i += blockDim.x) {
    out[t * width + i] = to_f32(table[row * width + i]);
  }
}

// One warp per output column; R ≥ m activation rows share each weight load. VEC: 16-byte
// weight loads (k a multiple of 16/sizeof(W), rows 16-byte aligned).
template <typename W, int R, bool VEC>
__global__ void gemv_kernel(const float* x, const W* w, const W* bias, float* y, int m, int n,
                            int k) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int col = static_cast<int>(blockIdx.x) * kGemvWarps + static_cast<int>(threadIdx.x) / kWarp;
  if (col >= n) return;
  const auto ku = static_cast<std::size_t>(k);
  const W* row = w + static_cast<std::size_t>(col) * ku;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  if constexpr (VEC) {
    constexpr int kV = 16 / static_cast<int>(sizeof(W));
    const auto* chunks = reinterpret_cast<const uint4*>(row);
    const int num_chunks = k / kV;
    for (int c = lane; c < num_chunks; c += kWarp) {
      const uint4 raw = __ldg(chunks + c);
      const W* e = reinterpret_cast<const W*>(&raw);
      float wv[kV];
#pragma unroll
      for (int v = 0; v < kV; ++v) wv[v] = to_f32(e[v]);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r < m) {
          const auto* xr = reinterpret_cast<const float4*>(x + static_cast<std::size_t>(r) * ku +
                                                           static_cast<std::size_t>(c) * kV);
#pragma unroll
          for (int v = 0; v < kV / 4; ++v) {
            const float4 xv = xr[v];
            acc[r] += wv[4 * v] * xv.x + wv[4 * v + 1] * xv.y + wv[4 * v + 2] * xv.z +
                      wv[4 * v + 3] * xv.w;
          }
        }
      }
    }
  } else {
    for (int i = lane; i < k; i += kWarp) {
      const float wv = to_f32(row[i]);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r < m) acc[r] += wv * x[static_cast<std::size_t>(r) * ku + static_cast<std::size_t>(i)];
      }
    }
  }
  const float b = bias != nullptr ? to_f32(bias[col]) : 0.0f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (r < m) {
      const float sum = warp_sum(acc[r]);
      if (lane == 0) y[static_cast<std::size_t>(r) * static_cast<std::size_t>(n) + col] = sum + b;
    }
  }
}

template <typename W, bool VEC>
void launch_gemv_rows(const float* x, const W* w, const W* bias, float* y, int m, int n, int k,
                      cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((n + kGemvWarps - 1) / kGemvWarps));
  const dim3 block(kGemvWarps * kWarp);
  if constexpr (!VEC) {
    // Odd shapes only (k not a multiple of the vector width): one instantiation is enough.
    gemv_kernel<W, 16, false><<<grid, block, 0, stream>>>(x, w, bias, y, m, n, k);
  } else if (m <= 1) {
    gemv_kernel<W, 1, true><<<grid, block, 0, stream>>>(x, w, bias, y, m, n, k);
  } else if (m <= 2) {
    gemv_kernel<W, 2, true><<<grid, block, 0, stream>>>(x, w, bias, y, m, n, k);
  } else if (m <= 4) {
    gemv_kernel<W, 4, true><<<grid, block, 0, stream>>>(x, w, bias, y, m, n, k);
  } else if (m <= 8) {
    gemv_kernel<W, 8, true><<<grid, block, 0, stream>>>(x, w, bias, y, m, n, k);
  } else {
    gemv_kernel<W, 16, true><<<grid, block, 0, stream>>>(x, w, bias, y, m, n, k);
  }
}

template <typename W>
__global__ void add_bias_kernel(float* y, const W* bias, std::size_t rows, std::size_t cols) {
  const std::size_t count = rows * cols;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    y[i] += to_f32(bias[i % cols]);
  }
}

__global__ void cast_bf16_kernel(const float* src, __nv_bfloat16* dst, std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    dst[i] = __float2bfloat16_rn(src[i]);
  }
}

__global__ void cast_f16_kernel(const float* src, __half* dst, std::size_t count) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    dst[i] = __float2half_rn(src[i]);
  }
}

template <typename W>
__global__ void rms_norm_kernel(const float* x, const W* weight, float eps, int hidden, float* y) {
  const auto width = static_cast<std::size_t>(hidden);
  const float* in = x + blockIdx.x * width;
  float* out = y + blockIdx.x * width;
  float sum = 0.0f;
  for (std::size_t i = threadIdx.x; i < width; i += blockDim.x) sum += in[i] * in[i];
  sum = block_sum(sum);
  const float inv = 1.0f / sqrtf(sum / static_cast<float>(hidden) + eps);
  for (std::size_t i = threadIdx.x; i < width; i += blockDim.x) {
    out[i] = in[i] * inv * to_f32(weight[i]);
  }
}

// Pairs (i, i + head_dim/2) as HF rotate_half; cos/sin of a (token, i) shared by all heads.
__global__ void rope_kernel(float* x, const std::int32_t* positions, int num_heads, int head_dim,
                            RopeFreqs freqs) {
  const std::size_t t = blockIdx.x;
  const int half = head_dim / 2;
  const auto pos = static_cast<float>(positions[t]);
  for (int i = static_cast<int>(threadIdx.x); i < half; i += static_cast<int>(blockDim.x)) {
    const float angle = pos * freqs.inv_freq[i];
    const float c = cosf(angle);
    const float s = sinf(angle);
    for (int h = 0; h < num_heads; ++h) {
      float* row = x + (t * static_cast<std::size_t>(num_heads) + static_cast<std::size_t>(h)) *
                           static_cast<std::size_t>(head_dim);
      const float a = row[i];
      const float b = row[i + half];
      row[i] = a * c - b * s;
      row[i + half] = b * c + a * s;
    }
  }
}

// The paged layout without KvLayout's host-only member functions.
struct PagedKv {
  float* base;
  std::size_t block_floats;  // one block across all layers
  std::size_t kv_floats;     // one layer's K (or V) of a block: block_tokens · row_floats
  int row_floats;
  int block_tokens;
};

PagedKv paged_of(const KvLayout& layout) {
  return PagedKv{static_cast<float*>(layout.base), layout.block_bytes() / sizeof(float),
                 static_cast<std::size_t>(layout.block_tokens) * layout.row_floats(),
                 static_cast<int>(layout.row_floats()), layout.block_tokens};
}

__global__ void write_kv_kernel(const float* k, const float* v, int layer, PagedKv kv,
                                TokenBatch batch) {
  const std::size_t t = blockIdx.x;
  const int seq = batch.token_seq[t];
  const int pos = batch.token_pos[t];
  const std::int32_t block = batch.block_tables[batch.block_table_offsets[seq] + pos / kv.block_tokens];
  const std::size_t row = static_cast<std::size_t>(kv.row_floats);
  float* k_dst = kv.base + static_cast<std::size_t>(block) * kv.block_floats +
                 static_cast<std::size_t>(layer) * 2 * kv.kv_floats +
                 static_cast<std::size_t>(pos % kv.block_tokens) * row;
  float* v_dst = k_dst + kv.kv_floats;
  for (std::size_t i = threadIdx.x; i < row; i += blockDim.x) {
    k_dst[i] = k[t * row + i];
    v_dst[i] = v[t * row + i];
  }
}

__global__ void silu_mul_kernel(const float* gate, const float* up, std::size_t count, float* out) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_kernel(const float* a, const float* b, std::size_t count, float* out) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    out[i] = a[i] + b[i];
  }
}

__global__ void gather_rows_kernel(const float* x, const std::int32_t* rows, int width, float* out) {
  const auto w = static_cast<std::size_t>(width);
  const std::size_t src = static_cast<std::size_t>(rows[blockIdx.x]) * w;
  for (std::size_t i = threadIdx.x; i < w; i += blockDim.x) out[blockIdx.x * w + i] = x[src + i];
}

// Keeps the larger value, and on equal values the smaller index (first maximum, like
// std::max_element); NaN never wins.
__device__ __forceinline__ void better(float& best, int& best_index, float value, int index) {
  if (value > best || (value == best && index < best_index)) {
    best = value;
    best_index = index;
  }
}

__global__ void argmax_kernel(const float* logits, int vocab, std::int32_t* out) {
  __shared__ float best_values[kWarp];
  __shared__ int best_indices[kWarp];
  const float* row = logits + blockIdx.x * static_cast<std::size_t>(vocab);
  float best = -FLT_MAX;
  int best_index = INT_MAX;
  for (int i = static_cast<int>(threadIdx.x); i < vocab; i += static_cast<int>(blockDim.x)) {
    better(best, best_index, row[i], i);
  }
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    better(best, best_index, __shfl_xor_sync(0xffffffffu, best, offset),
           __shfl_xor_sync(0xffffffffu, best_index, offset));
  }
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  if (lane == 0) {
    best_values[warp] = best;
    best_indices[warp] = best_index;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = static_cast<int>(blockDim.x) / kWarp;
    best = lane < warps ? best_values[lane] : -FLT_MAX;
    best_index = lane < warps ? best_indices[lane] : INT_MAX;
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      better(best, best_index, __shfl_xor_sync(0xffffffffu, best, offset),
             __shfl_xor_sync(0xffffffffu, best_index, offset));
    }
    if (lane == 0) out[blockIdx.x] = best_index == INT_MAX ? 0 : best_index;
  }
}

}  // namespace

void launch_embedding(Weight table, const std::int32_t* ids, int num_tokens, int hidden,
                      float* out, cudaStream_t stream) {
  if (num_tokens <= 0) return;
  dispatch_weight(table.dtype, [&](auto tag) {
    using W = typename decltype(tag)::type;
    embedding_kernel<W><<<static_cast<unsigned>(num_tokens), kThreads, 0, stream>>>(
        static_cast<const W*>(table.data), ids, hidden, out);
  });
}

void launch_gemv(const float* x, Weight w, Weight bias, float* y, int m, int n, int k,
                 cudaStream_t stream) {
  if (m <= 0 || n <= 0) return;
  dispatch_weight(w.dtype, [&](auto tag) {
    using W = typename decltype(tag)::type;
    const W* b = bias.data != nullptr && bias.dtype == w.dtype ? static_cast<const W*>(bias.data)
                                                                : nullptr;
    constexpr int kV = 16 / static_cast<int>(sizeof(W));
    const bool vec = k % kV == 0 && reinterpret_cast<std::uintptr_t>(w.data) % 16 == 0 &&
                     reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
    if (vec) {
      launch_gemv_rows<W, true>(x, static_cast<const W*>(w.data), b, y, m, n, k, stream);
    } else {
      launch_gemv_rows<W, false>(x, static_cast<const W*>(w.data), b, y, m, n, k, stream);
    }
  });
  // A bias of another dtype than the weight (never seen in HF checkpoints) is added apart.
  if (bias.data != nullptr && bias.dtype != w.dtype) launch_add_bias(y, bias, m, n, stream);
}

void launch_add_bias(float* y, Weight bias, int m, int n, cudaStream_t stream) {
  const auto rows = static_cast<std::size_t>(m);
  const auto cols = static_cast<std::size_t>(n);
  dispatch_weight(bias.dtype, [&](auto tag) {
    using W = typename decltype(tag)::type;
    add_bias_kernel<W><<<grid_for(rows * cols), kThreads, 0, stream>>>(
        y, static_cast<const W*>(bias.data), rows, cols);
  });
}

void launch_cast_f32(const float* src, void* dst, DType dtype, std::size_t count,
                     cudaStream_t stream) {
  if (dtype == DType::kBF16) {
    cast_bf16_kernel<<<grid_for(count), kThreads, 0, stream>>>(
        src, static_cast<__nv_bfloat16*>(dst), count);
  } else if (dtype == DType::kF16) {
    cast_f16_kernel<<<grid_for(count), kThreads, 0, stream>>>(src, static_cast<__half*>(dst),
                                                               count);
  }
}

void launch_rms_norm(const float* x, Weight weight, float eps, int rows, int hidden, float* y,
                     cudaStream_t stream) {
  if (rows <= 0) return;
  dispatch_weight(weight.dtype, [&](auto tag) {
    using W = typename decltype(tag)::type;
    rms_norm_kernel<W><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        x, static_cast<const W*>(weight.data), eps, hidden, y);
  });
}

void launch_rope(float* x, const std::int32_t* positions, int num_tokens, int num_heads,
                 int head_dim, const RopeFreqs& freqs, cudaStream_t stream) {
  if (num_tokens <= 0) return;
  const int half = head_dim / 2;
  const int threads = half >= 128 ? 128 : ((half + kWarp - 1) / kWarp) * kWarp;
  rope_kernel<<<static_cast<unsigned>(num_tokens), static_cast<unsigned>(threads), 0, stream>>>(
      x, positions, num_heads, head_dim, freqs);
}

void launch_write_kv(const float* k, const float* v, int layer, const KvLayout& layout,
                     const TokenBatch& batch, cudaStream_t stream) {
  if (batch.num_tokens <= 0) return;
  write_kv_kernel<<<static_cast<unsigned>(batch.num_tokens), 128, 0, stream>>>(
      k, v, layer, paged_of(layout), batch);
}

void launch_silu_mul(const float* gate, const float* up, std::size_t count, float* out,
                     cudaStream_t stream) {
  if (count == 0) return;
  silu_mul_kernel<<<grid_for(count), kThreads, 0, stream>>>(gate, up, count, out);
}

void launch_add(const float* a, const float* b, std::size_t count, float* out,
                cudaStream_t stream) {
  if (count == 0) return;
  add_kernel<<<grid_for(count), kThreads, 0, stream>>>(a, b, count, out);
}

void launch_gather_rows(const float* x, const std::int32_t* rows, int num_rows, int width,
                        float* out, cudaStream_t stream) {
  if (num_rows <= 0) return;
  gather_rows_kernel<<<static_cast<unsigned>(num_rows), kThreads, 0, stream>>>(x, rows, width,
                                                                               out);
}

void launch_argmax(const float* logits, int rows, int vocab, std::int32_t* out,
                   cudaStream_t stream) {
  if (rows <= 0) return;
  argmax_kernel<<<static_cast<unsigned>(rows), 1024, 0, stream>>>(logits, vocab, out);
}

}  // namespace aegaeon::backend::cuda
