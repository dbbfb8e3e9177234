#include "gpu/backend/cpu/cpu_backend.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "gpu/backend/cpu/copy_queue.hpp"
#include "gpu/backend/cpu/cpu_kernels.hpp"
#include "gpu/backend/cpu/thread_pool.hpp"

namespace aegaeon::backend::cpu {

namespace {

constexpr std::size_t kAlignment = 64;

// Floats an element-wise op handles per chunk of a parallel loop: below this, waking a thread
// costs more than the work (decode batches touch a few rows of each activation).
constexpr std::size_t kMinChunkFloats = 16384;

// Rows of `width` floats per chunk so a chunk holds about kMinChunkFloats.
std::size_t rows_per_chunk(std::size_t width) {
  return std::max<std::size_t>(1, kMinChunkFloats / std::max<std::size_t>(width, 1));
}

std::size_t round_up(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// Host memory; "pinned" only in name on the CPU backend, where every copy is a memcpy.
class HostBuffer final : public PinnedBuffer {
 public:
  HostBuffer(std::byte* data, std::size_t bytes) : data_(data), bytes_(bytes) {}
  ~HostBuffer() override { std::free(data_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  std::byte* data() override { return data_; }
  [[nodiscard]] std::size_t bytes() const override { return bytes_; }

 private:
  std::byte* data_;
  std::size_t bytes_;
};

// A mark in the copy queue; ticket 0 is "already complete" (compute-queue marks, since
// compute ops finish before they return).
class CpuEvent final : public Event {
 public:
  std::uint64_t ticket = 0;
};

std::uint64_t ticket_of(const Event& event) { return static_cast<const CpuEvent&>(event).ticket; }

float weight_at(Weight w, std::size_t i) {
  switch (w.dtype) {
    case DType::kF32: return static_cast<const float*>(w.data)[i];
    case DType::kBF16: return bf16_to_f32(static_cast<const std::uint16_t*>(w.data)[i]);
    case DType::kF16: return f16_to_f32(static_cast<const std::uint16_t*>(w.data)[i]);
    case DType::kI32: return static_cast<float>(static_cast<const std::int32_t*>(w.data)[i]);
  }
  return 0.0f;
}

const void* row_of(Weight w, std::size_t row, std::size_t width) {
  return static_cast<const std::byte*>(w.data) + row * width * dtype_bytes(w.dtype);
}

}  // namespace

core::Result<std::unique_ptr<CpuBackend>> CpuBackend::create(const CpuBackendOptions& options) {
  const std::size_t bytes = round_up(std::max<std::size_t>(options.arena_bytes, kAlignment), 4096);
  auto* memory = static_cast<std::byte*>(std::aligned_alloc(4096, bytes));
  if (memory == nullptr) {
    return core::error(core::ErrorCode::kResourceExhausted,
                       "cpu backend: cannot reserve an arena of " + std::to_string(bytes) + " bytes");
  }
  return std::unique_ptr<CpuBackend>(new CpuBackend(memory, bytes, options.num_threads));
}

CpuBackend::CpuBackend(std::byte* arena_memory, std::size_t arena_bytes, int num_threads)
    : arena_memory_(arena_memory),
      arena_(arena_memory, arena_bytes),
      pool_(std::make_unique<ThreadPool>(num_threads)),
      copy_queue_(std::make_unique<CopyQueue>()) {
  openblas_set_num_threads(1);  // parallelism comes from our pool (matmul_gemm)
}

CpuBackend::~CpuBackend() {
  copy_queue_.reset();  // drains pending copies before the arena goes away
  pool_.reset();
  std::free(arena_memory_);
}

int CpuBackend::num_threads() const { return pool_->num_threads(); }

core::Result<std::unique_ptr<PinnedBuffer>> CpuBackend::allocate_pinned(std::size_t bytes) {
  const std::size_t rounded = round_up(std::max<std::size_t>(bytes, 1), kAlignment);
  auto* memory = static_cast<std::byte*>(std::aligned_alloc(kAlignment, rounded));
  if (memory == nullptr) {
    return core::error(core::ErrorCode::kResourceExhausted,
                       "cpu backend: cannot allocate " + std::to_string(bytes) + " pinned bytes");
  }
  return std::unique_ptr<PinnedBuffer>(std::make_unique<HostBuffer>(memory, bytes));
}

std::unique_ptr<Event> CpuBackend::create_event() { return std::make_unique<CpuEvent>(); }

void CpuBackend::record(Queue queue, Event& event) {
  static_cast<CpuEvent&>(event).ticket =
      queue == Queue::kCopy ? copy_queue_->submitted_ticket() : 0;
}

void CpuBackend::wait(Queue queue, const Event& event) {
  // The copy queue is in order and compute marks are complete when recorded, so only compute
  // waiting on copies has to block (the host thread is the compute queue).
  if (queue == Queue::kCompute) copy_queue_->wait_for(ticket_of(event));
}

bool CpuBackend::query(const Event& event) {
  return copy_queue_->completed_ticket() >= ticket_of(event);
}

void CpuBackend::synchronize(const Event& event) { copy_queue_->wait_for(ticket_of(event)); }

void CpuBackend::synchronize(Queue queue) {
  if (queue == Queue::kCopy) copy_queue_->wait_for(copy_queue_->submitted_ticket());
}

void CpuBackend::copy(Queue queue, void* dst, const void* src, std::size_t bytes,
                      CopyKind /*kind*/) {
  if (queue == Queue::kCopy) {
    copy_queue_->submit(dst, src, bytes);
  } else if (bytes > 0) {
    std::memcpy(dst, src, bytes);
  }
}

void CpuBackend::embedding(Weight table, const std::int32_t* ids, int num_tokens, int hidden,
                           float* out) {
  const auto width = static_cast<std::size_t>(hidden);
  pool_->parallel_for(static_cast<std::size_t>(num_tokens), rows_per_chunk(width),
                      [&](std::size_t b, std::size_t e) {
    for (std::size_t t = b; t < e; ++t) {
      widen_to_f32(table.dtype, row_of(table, static_cast<std::size_t>(ids[t]), width),
                   out + t * width, width);
    }
  });
}

void CpuBackend::matmul(const MatmulArgs& args) {
  if (args.m >= kGemmMinRows) {
    matmul_gemm(args);
  } else {
    matmul_gemv(args);
  }
}

void CpuBackend::matmul_gemv(const MatmulArgs& args) {
  const auto k = static_cast<std::size_t>(args.k);
  const auto n = static_cast<std::size_t>(args.n);
  const int m = args.m;
  pool_->parallel_for(n, 16, [&](std::size_t b, std::size_t e) {
    float partial[kGemmMinRows];
    for (std::size_t row = b; row < e; ++row) {
      dot_rows(args.w.dtype, row_of(args.w, row, k), args.x, k, m, k, partial);
      const float bias = args.bias.data != nullptr ? weight_at(args.bias, row) : 0.0f;
      for (int j = 0; j < m; ++j) args.y[static_cast<std::size_t>(j) * n + row] = partial[j] + bias;
    }
  });
}

void CpuBackend::matmul_gemm(const MatmulArgs& args) {
  const int m = args.m;
  const int k = args.k;
  const auto ku = static_cast<std::size_t>(k);
  const auto nu = static_cast<std::size_t>(args.n);
  // Each pool thread runs single-threaded sgemm on its own slice of output columns, so all
  // compute stays on the configured threads (OpenBLAS's own pool would spin against ours).
  // Narrow weights are widened a panel at a time into a per-thread buffer: O(n·k) extra work
  // against sgemm's O(m·n·k).
  constexpr std::size_t kPanelRows = 64;
  pool_->parallel_for(nu, kPanelRows, [&](std::size_t b, std::size_t e) {
    thread_local std::vector<float> panel;
    for (std::size_t n0 = b; n0 < e; n0 += kPanelRows) {
      const std::size_t rows = std::min(kPanelRows, e - n0);
      const float* w;
      if (args.w.dtype == DType::kF32) {
        w = static_cast<const float*>(args.w.data) + n0 * ku;
      } else {
        if (panel.size() < rows * ku) panel.resize(rows * ku);
        widen_to_f32(args.w.dtype, row_of(args.w, n0, ku), panel.data(), rows * ku);
        w = panel.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, static_cast<int>(rows), k, 1.0f,
                  args.x, k, w, k, 0.0f, args.y + n0, static_cast<int>(nu));
      if (args.bias.data != nullptr) {
        for (std::size_t row = 0; row < static_cast<std::size_t>(m); ++row) {
          for (std::size_t col = n0; col < n0 + rows; ++col) {
            args.y[row * nu + col] += weight_at(args.bias, col);
          }
        }
      }
    }
  });
}

void CpuBackend::rms_norm(const float* x, Weight weight, float eps, int rows, int hidden,
                          float* y) {
  const auto width = static_cast<std::size_t>(hidden);
  pool_->parallel_for(static_cast<std::size_t>(rows), rows_per_chunk(width),
                      [&](std::size_t b, std::size_t e) {
    for (std::size_t r = b; r < e; ++r) {
      const float* in = x + r * width;
      float* out = y + r * width;
      float sum = 0.0f;
      for (std::size_t i = 0; i < width; ++i) sum += in[i] * in[i];
      const float inv = 1.0f / std::sqrt(sum / static_cast<float>(hidden) + eps);
      for (std::size_t i = 0; i < width; ++i) out[i] = in[i] * inv * weight_at(weight, i);
    }
  });
}

void CpuBackend::rope(float* x, const std::int32_t* positions, int num_tokens, int num_heads,
                      int head_dim, const RopeParams& params) {
  const std::vector<float> inv_freq = rope_inv_freq(params, head_dim);
  const auto half = static_cast<std::size_t>(head_dim / 2);
  const auto heads = static_cast<std::size_t>(num_heads);
  const auto dim = static_cast<std::size_t>(head_dim);
  pool_->parallel_for(static_cast<std::size_t>(num_tokens), rows_per_chunk(heads * dim),
                      [&](std::size_t b, std::size_t e) {
    std::vector<float> cos_table(half);
    std::vector<float> sin_table(half);
    for (std::size_t t = b; t < e; ++t) {
      const auto pos = static_cast<float>(positions[t]);
      for (std::size_t i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];
        cos_table[i] = std::cos(angle);
        sin_table[i] = std::sin(angle);
      }
      for (std::size_t h = 0; h < heads; ++h) {
        float* row = x + (t * heads + h) * dim;
        for (std::size_t i = 0; i < half; ++i) {
          const float a = row[i];
          const float c = row[i + half];
          row[i] = a * cos_table[i] - c * sin_table[i];
          row[i + half] = c * cos_table[i] + a * sin_table[i];
        }
      }
    }
  });
}

namespace {

// Device address of token `pos`'s K (kv = 0) or V (kv = 1) row for `layer`.
float* kv_row(const KvLayout& layout, const TokenBatch& batch, int seq, int pos, int layer,
              int kv) {
  const std::int32_t block =
      batch.block_tables[batch.block_table_offsets[seq] + pos / layout.block_tokens];
  const std::size_t row_floats = layout.row_floats();
  const std::size_t slot = static_cast<std::size_t>(pos % layout.block_tokens);
  const std::size_t floats_per_kv = static_cast<std::size_t>(layout.block_tokens) * row_floats;
  const std::size_t offset =
      static_cast<std::size_t>(block) * (layout.block_bytes() / sizeof(float)) +
      (static_cast<std::size_t>(layer) * 2 + static_cast<std::size_t>(kv)) * floats_per_kv +
      slot * row_floats;
  return static_cast<float*>(layout.base) + offset;
}

}  // namespace

void CpuBackend::write_kv(const float* k, const float* v, int layer, const KvLayout& layout,
                          const TokenBatch& batch) {
  const std::size_t row_floats = layout.row_floats();
  pool_->parallel_for(static_cast<std::size_t>(batch.num_tokens), 16,
                      [&](std::size_t b, std::size_t e) {
                        for (std::size_t t = b; t < e; ++t) {
                          const int seq = batch.token_seq[t];
                          const int pos = batch.token_pos[t];
                          std::memcpy(kv_row(layout, batch, seq, pos, layer, 0),
                                      k + t * row_floats, row_floats * sizeof(float));
                          std::memcpy(kv_row(layout, batch, seq, pos, layer, 1),
                                      v + t * row_floats, row_floats * sizeof(float));
                        }
                      });
}

void CpuBackend::attention(const AttentionArgs& args) {
  const KvLayout& layout = args.layout;
  const auto dim = static_cast<std::size_t>(layout.head_dim);
  const int group = args.num_heads / layout.kv_heads;
  const auto heads = static_cast<std::size_t>(args.num_heads);
  const std::size_t items = static_cast<std::size_t>(args.batch.num_tokens) * heads;
  pool_->parallel_for(items, 1, [&](std::size_t b, std::size_t e) {
    std::vector<float> acc(dim);
    for (std::size_t item = b; item < e; ++item) {
      const std::size_t t = item / heads;
      const std::size_t h = item % heads;
      const int seq = args.batch.token_seq[t];
      const int last = args.batch.token_pos[t];
      const int first = args.window > 0 ? std::max(0, last - args.window + 1) : 0;
      const std::size_t kv_head = h / static_cast<std::size_t>(group);
      const float* q = args.q + (t * heads + h) * dim;
      // Online softmax (running max and sum) so no score buffer proportional to context.
      float running_max = -INFINITY;
      float running_sum = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int pos = first; pos <= last; ++pos) {
        const float* key = kv_row(layout, args.batch, seq, pos, args.layer, 0) + kv_head * dim;
        float score;
        dot_rows(DType::kF32, key, q, dim, 1, dim, &score);
        score *= args.scale;
        const float* value = kv_row(layout, args.batch, seq, pos, args.layer, 1) + kv_head * dim;
        float correction = 1.0f;
        if (score > running_max) {
          correction = std::exp(running_max - score);
          running_sum *= correction;
          running_max = score;
        }
        const float weight = std::exp(score - running_max);
        running_sum += weight;
        scale_axpy(correction, weight, value, acc.data(), dim);
      }
      float* out = args.out + (t * heads + h) * dim;
      const float inv = 1.0f / running_sum;
      for (std::size_t i = 0; i < dim; ++i) out[i] = acc[i] * inv;
    }
  });
}

void CpuBackend::silu_mul(const float* gate, const float* up, std::size_t count, float* out) {
  pool_->parallel_for(count, kMinChunkFloats, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void CpuBackend::add(const float* a, const float* b, std::size_t count, float* out) {
  pool_->parallel_for(count, kMinChunkFloats, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
  });
}

void CpuBackend::gather_rows(const float* x, const std::int32_t* rows, int num_rows, int width,
                             float* out) {
  const auto w = static_cast<std::size_t>(width);
  for (std::size_t r = 0; r < static_cast<std::size_t>(num_rows); ++r) {
    std::memmove(out + r * w, x + static_cast<std::size_t>(rows[r]) * w, w * sizeof(float));
  }
}

}  // namespace aegaeon::backend::cpu
