// Paged attention kernels over the layout [block][layer][k/v][block_tokens][kv_heads][head_dim]:
// a decode kernel (one CTA per token and head, the context split over warps and merged at the
// end) and a tiled prefill kernel (8 consecutive tokens of one sequence share every K/V chunk
// staged in shared memory). Both use the online softmax of the CPU backend; causal by position,
// and with AttentionArgs::window only the last `window` positions (sliding-window attention).
#include <climits>
#include <cmath>

#include "gpu/backend/cuda/cuda_device_util.cuh"
#include "gpu/backend/cuda/cuda_kernels.hpp"

namespace aegaeon::backend::cuda {

namespace {

constexpr int kMaxDims = kMaxAttentionHeadDim / kWarp;  // head dims per lane
constexpr int kChunk = 16;                                  // positions scored together
constexpr int kDecodeWarps = 4;
constexpr int kTileTokens = 8;  // one warp per query token in the prefill kernel

struct AttnParams {
  const float* q;
  float* out;
  float* kv_base;
  std::size_t block_floats;  // one block across all layers
  std::size_t kv_floats;     // one layer's K (or V) in a block
  int row_floats;            // kv_heads · head_dim
  int block_tokens;
  int num_heads;
  int group;  // query heads per kv head
  int head_dim;
  int layer;
  float scale;
  TokenBatch batch;
  int window;  // > 0: sliding window (AttentionArgs::window)
};

// Running softmax state of one warp: max, sum of weights, weighted V (lane's dims).
struct WarpState {
  float m;
  float l;
  float acc[kMaxDims];
};

__device__ __forceinline__ void init_state(WarpState& s) {
  s.m = -INFINITY;
  s.l = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxDims; ++j) s.acc[j] = 0.0f;
}

// Folds `count` (≤ kChunk) consecutive positions, K/V rows `stride` floats apart, into `s`.
__device__ __forceinline__ void attend_rows(const float* k_rows, const float* v_rows,
                                            std::size_t stride, int count,
                                            const float (&q)[kMaxDims], int head_dim, float scale,
                                            WarpState& s, int lane) {
  float score[kChunk];
#pragma unroll
  for (int p = 0; p < kChunk; ++p) {
    float partial = 0.0f;
    if (p < count) {
      const float* key = k_rows + static_cast<std::size_t>(p) * stride;
#pragma unroll
      for (int j = 0; j < kMaxDims; ++j) {
        const int d = lane + j * kWarp;
        if (d < head_dim) partial += q[j] * key[d];
      }
    }
    score[p] = partial;
  }
  float chunk_max = -INFINITY;
#pragma unroll
  for (int p = 0; p < kChunk; ++p) {
    score[p] = warp_sum(score[p]) * scale;
    if (p < count) chunk_max = fmaxf(chunk_max, score[p]);
  }
  const float new_m = fmaxf(s.m, chunk_max);
  const float correction = expf(s.m - new_m);
  s.l *= correction;
#pragma unroll
  for (int j = 0; j < kMaxDims; ++j) s.acc[j] *= correction;
#pragma unroll
  for (int p = 0; p < kChunk; ++p) {
    if (p < count) {
      const float weight = expf(score[p] - new_m);
      s.l += weight;
      const float* value = v_rows + static_cast<std::size_t>(p) * stride;
#pragma unroll
      for (int j = 0; j < kMaxDims; ++j) {
        const int d = lane + j * kWarp;
        if (d < head_dim) s.acc[j] += weight * value[d];
      }
    }
  }
  s.m = new_m;
}

// K rows (which = 0) or V rows (which = 1) of `kv_head` in `block` for the layer.
__device__ __forceinline__ const float* block_rows(const AttnParams& p, std::int32_t block,
                                                   int which, int kv_head) {
  return p.kv_base + static_cast<std::size_t>(block) * p.block_floats +
         (static_cast<std::size_t>(p.layer) * 2 + static_cast<std::size_t>(which)) * p.kv_floats +
         static_cast<std::size_t>(kv_head) * static_cast<std::size_t>(p.head_dim);
}

__device__ __forceinline__ void load_q(const AttnParams& p, int t, int h, int lane,
                                       float (&q)[kMaxDims]) {
  const float* row = p.q + (static_cast<std::size_t>(t) * static_cast<std::size_t>(p.num_heads) +
                            static_cast<std::size_t>(h)) *
                               static_cast<std::size_t>(p.head_dim);
#pragma unroll
  for (int j = 0; j < kMaxDims; ++j) {
    const int d = lane + j * kWarp;
    q[j] = d < p.head_dim ? row[d] : 0.0f;
  }
}

// The oldest position a query at `last` attends to.
__device__ __forceinline__ int first_position(const AttnParams& p, int last) {
  return p.window > 0 ? max(0, last - p.window + 1) : 0;
}

// Positions [first, last] of `seq` from global memory: the blocks holding them, starting
// `block_offset` blocks in and then every `block_stride`-th.
__device__ void attend_global(const AttnParams& p, int seq, int first, int last, int kv_head,
                              const float (&q)[kMaxDims], int block_offset, int block_stride,
                              WarpState& s, int lane) {
  const std::int32_t* table = p.batch.block_tables + p.batch.block_table_offsets[seq];
  const int num_blocks = last / p.block_tokens + 1;
  const auto stride = static_cast<std::size_t>(p.row_floats);
  for (int b = first / p.block_tokens + block_offset; b < num_blocks; b += block_stride) {
    const std::int32_t block = table[b];
    const int begin = max(0, first - b * p.block_tokens);
    const int end = min(p.block_tokens, last - b * p.block_tokens + 1);
    const float* keys = block_rows(p, block, 0, kv_head);
    const float* values = block_rows(p, block, 1, kv_head);
    for (int off = begin; off < end; off += kChunk) {
      attend_rows(keys + static_cast<std::size_t>(off) * stride,
                  values + static_cast<std::size_t>(off) * stride, stride,
                  min(kChunk, end - off), q, p.head_dim, p.scale, s, lane);
    }
  }
}

__device__ __forceinline__ void store_out(const AttnParams& p, int t, int h, int lane,
                                          const WarpState& s) {
  float* row = p.out + (static_cast<std::size_t>(t) * static_cast<std::size_t>(p.num_heads) +
                        static_cast<std::size_t>(h)) *
                           static_cast<std::size_t>(p.head_dim);
  const float inv = 1.0f / s.l;
#pragma unroll
  for (int j = 0; j < kMaxDims; ++j) {
    const int d = lane + j * kWarp;
    if (d < p.head_dim) row[d] = s.acc[j] * inv;
  }
}

__global__ void __launch_bounds__(kDecodeWarps * kWarp) attention_decode_kernel(AttnParams p) {
  __shared__ float warp_m[kDecodeWarps];
  __shared__ float warp_l[kDecodeWarps];
  __shared__ float warp_acc[kDecodeWarps][kMaxAttentionHeadDim];
  const int t = static_cast<int>(blockIdx.x);
  const int h = static_cast<int>(blockIdx.y);
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  const int seq = p.batch.token_seq[t];
  const int last = p.batch.token_pos[t];
  float q[kMaxDims];
  load_q(p, t, h, lane, q);
  WarpState s;
  init_state(s);
  attend_global(p, seq, first_position(p, last), last, h / p.group, q, warp, kDecodeWarps, s,
                lane);
  if (lane == 0) {
    warp_m[warp] = s.m;
    warp_l[warp] = s.l;
  }
#pragma unroll
  for (int j = 0; j < kMaxDims; ++j) {
    const int d = lane + j * kWarp;
    if (d < p.head_dim) warp_acc[warp][d] = s.acc[j];
  }
  __syncthreads();
  if (warp != 0) return;
  // Merge the warps' partial softmaxes; a warp that saw no block has m = -inf, weight 0.
  float m = -INFINITY;
  for (int w = 0; w < kDecodeWarps; ++w) m = fmaxf(m, warp_m[w]);
  WarpState merged;
  init_state(merged);
  merged.m = m;
  for (int w = 0; w < kDecodeWarps; ++w) {
    const float f = warp_l[w] > 0.0f ? expf(warp_m[w] - m) : 0.0f;
    merged.l += warp_l[w] * f;
#pragma unroll
    for (int j = 0; j < kMaxDims; ++j) {
      const int d = lane + j * kWarp;
      if (d < p.head_dim) merged.acc[j] += warp_acc[w][d] * f;
    }
  }
  store_out(p, t, h, lane, merged);
}

__global__ void __launch_bounds__(kTileTokens * kWarp) attention_prefill_kernel(AttnParams p) {
  __shared__ float chunk_k[kChunk][kMaxAttentionHeadDim];
  __shared__ float chunk_v[kChunk][kMaxAttentionHeadDim];
  __shared__ int tile_seq[kTileTokens];
  __shared__ int tile_last[kTileTokens];
  __shared__ int uniform;
  const int h = static_cast<int>(blockIdx.y);
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  const int first = static_cast<int>(blockIdx.x) * kTileTokens;
  const int t = first + warp;
  const bool valid = t < p.batch.num_tokens;
  if (threadIdx.x < kTileTokens) {
    const int tt = first + static_cast<int>(threadIdx.x);
    const bool ok = tt < p.batch.num_tokens;
    tile_seq[threadIdx.x] = ok ? p.batch.token_seq[tt] : -1;
    tile_last[threadIdx.x] = ok ? p.batch.token_pos[tt] : -1;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int same = 1;
    for (int i = 1; i < kTileTokens; ++i) {
      if (tile_seq[i] >= 0 && tile_seq[i] != tile_seq[0]) same = 0;
    }
    uniform = same;
  }
  __syncthreads();
  const int kv_head = h / p.group;
  float q[kMaxDims] = {};
  WarpState s;
  init_state(s);
  if (valid) load_q(p, t, h, lane, q);
  const int my_last = valid ? tile_last[warp] : -1;
  const int my_first = first_position(p, my_last);
  if (uniform != 0) {
    // The tile's positions span [min_first, max_last]; the same for the whole CTA.
    int max_last = 0;
    int min_first = INT_MAX;
    for (int i = 0; i < kTileTokens; ++i) {
      if (tile_seq[i] < 0) continue;
      max_last = max(max_last, tile_last[i]);
      min_first = min(min_first, first_position(p, tile_last[i]));
    }
    const std::int32_t* table = p.batch.block_tables + p.batch.block_table_offsets[tile_seq[0]];
    const auto stride = static_cast<std::size_t>(p.row_floats);
    const int num_blocks = max_last / p.block_tokens + 1;
    for (int b = min_first / p.block_tokens; b < num_blocks; ++b) {
      const float* keys = block_rows(p, table[b], 0, kv_head);
      const float* values = block_rows(p, table[b], 1, kv_head);
      for (int off = 0; off < p.block_tokens; off += kChunk) {
        const int base_pos = b * p.block_tokens + off;
        if (base_pos > max_last) break;  // same for the whole CTA
        const int n = min(min(kChunk, p.block_tokens - off), max_last - base_pos + 1);
        if (base_pos + n <= min_first) continue;  // before every window (same for the CTA)
        for (int i = static_cast<int>(threadIdx.x); i < n * p.head_dim;
             i += static_cast<int>(blockDim.x)) {
          const int row = i / p.head_dim;
          const int d = i % p.head_dim;
          const std::size_t at = static_cast<std::size_t>(off + row) * stride + static_cast<std::size_t>(d);
          chunk_k[row][d] = keys[at];
          chunk_v[row][d] = values[at];
        }
        __syncthreads();
        // This warp's rows of the chunk: [begin, end) within [my_first, my_last].
        const int begin = max(0, my_first - base_pos);
        const int end = min(n, my_last - base_pos + 1);
        if (valid && begin < end) {
          attend_rows(&chunk_k[begin][0], &chunk_v[begin][0], kMaxAttentionHeadDim, end - begin,
                      q, p.head_dim, p.scale, s, lane);
        }
        __syncthreads();
      }
    }
  } else if (valid) {
    attend_global(p, tile_seq[warp], my_first, my_last, kv_head, q, 0, 1, s, lane);
  }
  if (valid) store_out(p, t, h, lane, s);
}

AttnParams params_of(const AttentionArgs& args) {
  const KvLayout& layout = args.layout;
  return AttnParams{args.q,
                    args.out,
                    static_cast<float*>(layout.base),
                    layout.block_bytes() / sizeof(float),
                    static_cast<std::size_t>(layout.block_tokens) * layout.row_floats(),
                    static_cast<int>(layout.row_floats()),
                    layout.block_tokens,
                    args.num_heads,
                    args.num_heads / layout.kv_heads,
                    layout.head_dim,
                    args.layer,
                    args.scale,
                    args.batch,
                    args.window};
}

}  // namespace

void launch_attention_decode(const AttentionArgs& args, cudaStream_t stream) {
  if (args.batch.num_tokens <= 0) return;
  const dim3 grid(static_cast<unsigned>(args.batch.num_tokens), static_cast<unsigned>(args.num_heads));
  attention_decode_kernel<<<grid, kDecodeWarps * kWarp, 0, stream>>>(params_of(args));
}

void launch_attention_prefill(const AttentionArgs& args, cudaStream_t stream) {
  if (args.batch.num_tokens <= 0) return;
  const dim3 grid(static_cast<unsigned>((args.batch.num_tokens + kTileTokens - 1) / kTileTokens),
                  static_cast<unsigned>(args.num_heads));
  attention_prefill_kernel<<<grid, kTileTokens * kWarp, 0, stream>>>(params_of(args));
}

}  // namespace aegaeon::backend::cuda
