// The one backend interface (DESIGN.md rule 2, shaped after ggml-backend): device memory arena,
// pinned host buffers, in-order queues with events, async copies, and the compute ops of a
// Llama-family forward pass. CPU implements it now (backend/cpu/); CUDA later, unchanged above.
//
// Conventions every implementation follows:
// - Pointers named `device` / op tensor pointers are device addresses inside arena(); host
//   pointers are ordinary host memory (pinned for full copy speed).
// - Activations are F32, row-major. Weights are F32, BF16 or F16 (Weight carries the dtype);
//   every op accumulates in F32.
// - Work on one Queue runs in submission order; work on different queues may overlap. Ordering
//   across queues is only by record()/wait() on an Event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "core/result.hpp"
#include "gpu/backend/device_arena.hpp"
#include "gpu/backend/dtype.hpp"
#include "gpu/backend/rope.hpp"

namespace aegaeon::backend {

/// Which in-order queue work goes on. Copies on kCopy overlap compute on kCompute (the KV swap
/// and weight prefetch paths); kCompute also accepts copies that must be ordered with compute.
enum class Queue : std::uint8_t { kCompute, kCopy };

/// Direction of a copy, so a backend can pick the right engine (cudaMemcpyKind on CUDA).
enum class CopyKind : std::uint8_t { kHostToDevice, kDeviceToHost, kDeviceToDevice };

/// A marker in a queue's work: complete once everything submitted before its record() is done.
/// Created by the backend; state is backend-specific (a cudaEvent_t on CUDA).
class Event {
 public:
  virtual ~Event() = default;
};

/// Host memory that copies to and from the device run at full bandwidth (page-locked on CUDA).
/// Owns the memory; freed with the object.
class PinnedBuffer {
 public:
  virtual ~PinnedBuffer() = default;
  /// Start of the buffer (host address, 64-byte aligned at least).
  [[nodiscard]] virtual std::byte* data() = 0;
  /// Size in bytes.
  [[nodiscard]] virtual std::size_t bytes() const = 0;
};

/// A read-only weight tensor on the device and its element type.
struct Weight {
  const void* data = nullptr;
  DType dtype = DType::kF32;
};

/// Where the paged KV cache lives and how one block is laid out:
/// `[block][layer][k/v][block_tokens][kv_heads][head_dim]`, F32 elements, so a block is one
/// contiguous range across all layers (a swap copies whole blocks).
struct KvLayout {
  void* base = nullptr;  ///< device address of block 0
  int num_layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int block_tokens = 16;

  /// Floats in one token's K (or V) row: kv_heads * head_dim.
  [[nodiscard]] std::size_t row_floats() const {
    return static_cast<std::size_t>(kv_heads) * static_cast<std::size_t>(head_dim);
  }
  /// Bytes of one block across all layers.
  [[nodiscard]] std::size_t block_bytes() const {
    return static_cast<std::size_t>(num_layers) * 2 * static_cast<std::size_t>(block_tokens) *
           row_floats() * sizeof(float);
  }
};

/// Per-token addressing of a batch of tokens from several sequences of different lengths
/// (continuous batching). All arrays are device int32.
struct TokenBatch {
  int num_tokens = 0;
  int num_seqs = 0;
  const std::int32_t* token_seq = nullptr;     ///< [num_tokens] sequence index of each token
  const std::int32_t* token_pos = nullptr;     ///< [num_tokens] absolute position of each token
  const std::int32_t* block_tables = nullptr;  ///< concatenated block ids of all sequences
  const std::int32_t* block_table_offsets = nullptr;  ///< [num_seqs] start in block_tables
};

/// Arguments of matmul: y[M,N] = x[M,K] · wᵀ (+ bias), w stored [N,K] as in PyTorch Linear.
struct MatmulArgs {
  const float* x = nullptr;
  Weight w;
  Weight bias;  ///< bias.data == nullptr: no bias
  float* y = nullptr;
  int m = 0;
  int n = 0;
  int k = 0;
};

/// Arguments of attention over the paged KV cache: each token attends (causally) to positions
/// 0..token_pos of its own sequence, or only the last `window` of them, which must already be
/// written with write_kv.
struct AttentionArgs {
  const float* q = nullptr;  ///< [num_tokens, num_heads, head_dim]
  float* out = nullptr;      ///< [num_tokens, num_heads, head_dim]
  int num_heads = 0;         ///< query heads; a multiple of layout.kv_heads (GQA)
  int layer = 0;
  float scale = 0.0f;  ///< usually 1/sqrt(head_dim)
  KvLayout layout;
  TokenBatch batch;
  /// > 0: sliding window (Mistral, Qwen2): positions token_pos - window + 1 .. token_pos, as
  /// transformers masks them; 0: all positions.
  int window = 0;
};

/// A compute and memory backend. One per device; owned by the device's gpu_worker thread, so
/// no method is thread-safe unless it says so.
class Backend {
 public:
  virtual ~Backend() = default;

  /// Short name for logs ("cpu", "cuda:0").
  [[nodiscard]] virtual std::string_view name() const = 0;

  // ---- memory -------------------------------------------------------------------------------
  /// The device arena: fixed capacity, reserved when the backend was created.
  virtual DeviceArena& arena() = 0;
  /// Allocates pinned host memory (not on the hot path: host model cache, KV swap slabs).
  virtual core::Result<std::unique_ptr<PinnedBuffer>> allocate_pinned(std::size_t bytes) = 0;

  // ---- queues, events, copies ---------------------------------------------------------------
  /// A new event, initially complete.
  virtual std::unique_ptr<Event> create_event() = 0;
  /// Marks the current end of `queue` in `event` (replacing any earlier mark).
  virtual void record(Queue queue, Event& event) = 0;
  /// Makes later work on `queue` wait until `event` completes (the host does not block on CUDA).
  virtual void wait(Queue queue, const Event& event) = 0;
  /// True when `event` has completed. Never blocks.
  [[nodiscard]] virtual bool query(const Event& event) = 0;
  /// Blocks the host until `event` completes.
  virtual void synchronize(const Event& event) = 0;
  /// Blocks the host until everything submitted to `queue` completed.
  virtual void synchronize(Queue queue) = 0;
  /// Copies `bytes` from `src` to `dst` on `queue`, asynchronously: host memory must stay valid
  /// and unchanged until an event recorded after the copy completes.
  virtual void copy(Queue queue, void* dst, const void* src, std::size_t bytes, CopyKind kind) = 0;

  // ---- compute ops (all on Queue::kCompute, device pointers) --------------------------------
  /// out[i,:] = table[ids[i],:] as F32; table is [vocab, hidden].
  virtual void embedding(Weight table, const std::int32_t* ids, int num_tokens, int hidden,
                         float* out) = 0;
  /// y = x·wᵀ (+bias): the projections, the MLP and the logits (lm_head).
  virtual void matmul(const MatmulArgs& args) = 0;
  /// y[i,:] = x[i,:] / sqrt(mean(x[i,:]²) + eps) * weight (y may alias x).
  virtual void rms_norm(const float* x, Weight weight, float eps, int rows, int hidden,
                        float* y) = 0;
  /// Rotates x [num_tokens, num_heads, head_dim] in place by each token's position
  /// (HF "rotate_half" layout: pairs (i, i + head_dim/2)).
  virtual void rope(float* x, const std::int32_t* positions, int num_tokens, int num_heads,
                    int head_dim, const RopeParams& params) = 0;
  /// Writes each token's k and v rows ([num_tokens, kv_heads*head_dim]) into its sequence's
  /// block at its position for `layer`.
  virtual void write_kv(const float* k, const float* v, int layer, const KvLayout& layout,
                        const TokenBatch& batch) = 0;
  /// Causal scaled-dot-product attention over the paged KV cache (GQA aware, optionally
  /// windowed).
  virtual void attention(const AttentionArgs& args) = 0;
  /// out = silu(gate) * up, element-wise over `count` floats (the SwiGLU MLP).
  virtual void silu_mul(const float* gate, const float* up, std::size_t count, float* out) = 0;
  /// out = a + b element-wise (residual connections; out may alias a or b).
  virtual void add(const float* a, const float* b, std::size_t count, float* out) = 0;
  /// out[i,:] = x[rows[i],:]: picks each sequence's last token before the logits.
  virtual void gather_rows(const float* x, const std::int32_t* rows, int num_rows, int width,
                           float* out) = 0;
};

}  // namespace aegaeon::backend
