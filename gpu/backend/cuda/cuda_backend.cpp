#include "gpu/backend/cuda/cuda_backend.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>

#include "gpu/backend/cuda/cuda_kernels.hpp"

namespace aegaeon::backend::cuda {

using core::ErrorCode;

static_assert(CudaBackend::kMaxHeadDim == kMaxAttentionHeadDim);

namespace {

std::string cuda_message(const char* what, cudaError_t status) {
  return std::string("cuda backend: ") + what + ": " + cudaGetErrorName(status) + " (" +
         cudaGetErrorString(status) + ")";
}

// Page-locked host memory from cudaHostAlloc.
class CudaPinnedBuffer final : public PinnedBuffer {
 public:
  CudaPinnedBuffer(std::byte* data, std::size_t bytes) : data_(data), bytes_(bytes) {}
  ~CudaPinnedBuffer() override { cudaFreeHost(data_); }
  CudaPinnedBuffer(const CudaPinnedBuffer&) = delete;
  CudaPinnedBuffer& operator=(const CudaPinnedBuffer&) = delete;
  std::byte* data() override { return data_; }
  [[nodiscard]] std::size_t bytes() const override { return bytes_; }

 private:
  std::byte* data_;
  std::size_t bytes_;
};

// Caller-owned host memory page-locked with cudaHostRegister until destruction.
class CudaHostRegistration final : public HostRegistration {
 public:
  CudaHostRegistration(std::byte* data, std::size_t bytes) : data_(data), bytes_(bytes) {}
  ~CudaHostRegistration() override { cudaHostUnregister(data_); }
  CudaHostRegistration(const CudaHostRegistration&) = delete;
  CudaHostRegistration& operator=(const CudaHostRegistration&) = delete;
  [[nodiscard]] std::byte* data() const override { return data_; }
  [[nodiscard]] std::size_t bytes() const override { return bytes_; }

 private:
  std::byte* data_;
  std::size_t bytes_;
};

// A cudaEvent_t without timing (cheaper record/query). Never recorded means complete, as the
// interface asks of a new event.
class CudaEvent final : public Event {
 public:
  explicit CudaEvent(cudaEvent_t event) : event(event) {}
  ~CudaEvent() override { cudaEventDestroy(event); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t event;
};

cudaEvent_t event_of(const Event& event) { return static_cast<const CudaEvent&>(event).event; }

cudaMemcpyKind kind_of(CopyKind kind) {
  switch (kind) {
    case CopyKind::kHostToDevice: return cudaMemcpyHostToDevice;
    case CopyKind::kDeviceToHost: return cudaMemcpyDeviceToHost;
    case CopyKind::kDeviceToDevice: return cudaMemcpyDeviceToDevice;
  }
  return cudaMemcpyDefault;
}

cudaDataType_t cuda_type_of(DType dtype) {
  switch (dtype) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF16: return CUDA_R_16F;
    case DType::kI32: return CUDA_R_32I;
  }
  return CUDA_R_32F;
}

}  // namespace

struct CudaBackend::Impl {
  int device = 0;
  std::string name;
  void* arena_memory = nullptr;
  std::size_t arena_bytes = 0;
  void* gemm_workspace = nullptr;
  std::size_t gemm_workspace_bytes = 0;
  cudaStream_t compute = nullptr;
  cudaStream_t swap_in = nullptr;   // Queue::kCopy, host→device and device→device
  cudaStream_t swap_out = nullptr;  // Queue::kCopy, device→host
  cudaStream_t last_copy = nullptr;  // the copy stream that got the latest kCopy work
  cudaEvent_t copy_link = nullptr;   // orders the two copy streams when the direction changes
  cublasHandle_t cublas = nullptr;
  std::string first_error;

  ~Impl() {
    if (device >= 0) cudaSetDevice(device);
    if (compute != nullptr) cudaStreamSynchronize(compute);
    if (swap_in != nullptr) cudaStreamSynchronize(swap_in);
    if (swap_out != nullptr) cudaStreamSynchronize(swap_out);
    if (cublas != nullptr) cublasDestroy(cublas);
    if (copy_link != nullptr) cudaEventDestroy(copy_link);
    if (compute != nullptr) cudaStreamDestroy(compute);
    if (swap_in != nullptr) cudaStreamDestroy(swap_in);
    if (swap_out != nullptr) cudaStreamDestroy(swap_out);
    if (gemm_workspace != nullptr) cudaFree(gemm_workspace);
    if (arena_memory != nullptr) cudaFree(arena_memory);
  }

  // Remembers the first failure; the interface's ops have no error return (status() reports).
  void note(cudaError_t status, const char* what) {
    if (status != cudaSuccess && first_error.empty()) first_error = cuda_message(what, status);
  }
  void note_cublas(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS && first_error.empty()) {
      first_error = std::string("cuda backend: ") + what + ": " + cublasGetStatusName(status);
    }
  }
  void fail(const std::string& message) {
    if (first_error.empty()) first_error = "cuda backend: " + message;
  }
  // Catches launch errors (bad configuration) right after a kernel launch.
  void launched(const char* what) { note(cudaGetLastError(), what); }

  // The copy stream for `kind`, ordered after all earlier kCopy work on the other stream, so
  // Queue::kCopy stays one in-order queue as the interface requires.
  cudaStream_t copy_stream(CopyKind kind) {
    cudaStream_t stream = kind == CopyKind::kDeviceToHost ? swap_out : swap_in;
    if (last_copy != nullptr && last_copy != stream) {
      note(cudaEventRecord(copy_link, last_copy), "record copy link");
      note(cudaStreamWaitEvent(stream, copy_link, 0), "wait copy link");
    }
    last_copy = stream;
    return stream;
  }
};

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver"/"no device" status
    return 0;
  }
  return count;
}

core::Result<std::unique_ptr<Backend>> make_cuda_backend(std::string_view device_name,
                                                         CudaBackendOptions options) {
  auto device = parse_cuda_device(device_name);
  if (!device.ok()) return device.error();
  options.device = *device;
  auto backend = CudaBackend::create(options);
  if (!backend.ok()) return backend.error();
  return std::unique_ptr<Backend>(std::move(backend).value());
}

core::Result<std::unique_ptr<HostRegistration>> register_host_memory(Backend& backend, std::byte* data,
                                                                     std::size_t bytes) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (cuda == nullptr) {
    return core::error(ErrorCode::kInvalidArgument,
                       "register_host_memory: backend '" + std::string(backend.name()) + "' is not a CUDA backend");
  }
  return cuda->register_host(data, bytes);
}

core::Result<std::unique_ptr<CudaBackend>> CudaBackend::create(const CudaBackendOptions& options) {
  const int count = cuda_device_count();
  if (count == 0) {
    return core::error(ErrorCode::kUnavailable, "cuda backend: no CUDA device (cudaGetDeviceCount "
                                                "reports none; is a GPU and its driver present?)");
  }
  if (options.device < 0 || options.device >= count) {
    return core::error(ErrorCode::kInvalidArgument,
                       "cuda backend: device " + std::to_string(options.device) +
                           " does not exist (" + std::to_string(count) + " devices)");
  }
  auto impl = std::make_unique<Impl>();
  impl->device = options.device;
  impl->name = "cuda:" + std::to_string(options.device);
  auto check = [&](cudaError_t status, const char* what) -> core::Result<void> {
    if (status == cudaSuccess) return {};
    cudaGetLastError();
    const ErrorCode code =
        status == cudaErrorMemoryAllocation ? ErrorCode::kResourceExhausted : ErrorCode::kInternal;
    return core::error(code, cuda_message(what, status));
  };
  AEGAEON_TRY(check(cudaSetDevice(options.device), "cudaSetDevice"));
  const std::size_t arena_bytes = std::max<std::size_t>(options.arena_bytes, 256);
  AEGAEON_TRY(check(cudaMalloc(&impl->arena_memory, arena_bytes),
                    ("cudaMalloc of the " + std::to_string(arena_bytes) + "-byte arena").c_str()));
  impl->arena_bytes = arena_bytes;
  if (options.gemm_workspace_bytes > 0) {
    AEGAEON_TRY(check(cudaMalloc(&impl->gemm_workspace, options.gemm_workspace_bytes),
                      "cudaMalloc of the GEMM workspace"));
    impl->gemm_workspace_bytes = options.gemm_workspace_bytes;
  }
  AEGAEON_TRY(check(cudaStreamCreateWithFlags(&impl->compute, cudaStreamNonBlocking),
                    "create compute stream"));
  AEGAEON_TRY(check(cudaStreamCreateWithFlags(&impl->swap_in, cudaStreamNonBlocking),
                    "create swap-in stream"));
  AEGAEON_TRY(check(cudaStreamCreateWithFlags(&impl->swap_out, cudaStreamNonBlocking),
                    "create swap-out stream"));
  AEGAEON_TRY(check(cudaEventCreateWithFlags(&impl->copy_link, cudaEventDisableTiming),
                    "create copy link event"));
  if (const cublasStatus_t status = cublasCreate(&impl->cublas); status != CUBLAS_STATUS_SUCCESS) {
    return core::error(ErrorCode::kInternal,
                       std::string("cuda backend: cublasCreate: ") + cublasGetStatusName(status));
  }
  cublasSetStream(impl->cublas, impl->compute);
  // Strict FP32 for F32 GEMMs (no TF32), so F32 models agree with the CPU backend.
  cublasSetMathMode(impl->cublas, CUBLAS_DEFAULT_MATH);
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)),
      arena_(std::make_unique<DeviceArena>(impl_->arena_memory, impl_->arena_bytes)) {}

CudaBackend::~CudaBackend() = default;

std::string_view CudaBackend::name() const { return impl_->name; }

int CudaBackend::device() const { return impl_->device; }

core::Result<void> CudaBackend::status() const {
  if (impl_->first_error.empty()) return {};
  return core::error(ErrorCode::kInternal, impl_->first_error);
}

void* CudaBackend::native_stream(Queue queue) const {
  return queue == Queue::kCompute ? impl_->compute : impl_->swap_in;
}

core::Result<std::unique_ptr<PinnedBuffer>> CudaBackend::allocate_pinned(std::size_t bytes) {
  cudaSetDevice(impl_->device);
  void* memory = nullptr;
  const cudaError_t status =
      cudaHostAlloc(&memory, std::max<std::size_t>(bytes, 1), cudaHostAllocPortable);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return core::error(ErrorCode::kResourceExhausted,
                       cuda_message(("cudaHostAlloc of " + std::to_string(bytes) + " bytes").c_str(),
                                    status));
  }
  return std::unique_ptr<PinnedBuffer>(
      std::make_unique<CudaPinnedBuffer>(static_cast<std::byte*>(memory), bytes));
}

core::Result<std::unique_ptr<HostRegistration>> CudaBackend::register_host(std::byte* data,
                                                                           std::size_t bytes) {
  return register_host_memory(impl_->device, data, bytes);
}

core::Result<std::unique_ptr<HostRegistration>> register_host_memory(int device, std::byte* data,
                                                                     std::size_t bytes) {
  cudaSetDevice(device);
  const cudaError_t status = cudaHostRegister(data, bytes, cudaHostRegisterPortable);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return core::error(ErrorCode::kInternal,
                       cuda_message(("cudaHostRegister of " + std::to_string(bytes) + " bytes").c_str(),
                                    status));
  }
  return std::unique_ptr<HostRegistration>(std::make_unique<CudaHostRegistration>(data, bytes));
}

std::unique_ptr<Event> CudaBackend::create_event() {
  cudaSetDevice(impl_->device);
  cudaEvent_t event = nullptr;
  impl_->note(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
  return std::make_unique<CudaEvent>(event);
}

void CudaBackend::record(Queue queue, Event& event) {
  cudaSetDevice(impl_->device);
  // The latest copy stream's tail is ordered after all earlier kCopy work (copy_stream()).
  cudaStream_t stream = queue == Queue::kCompute
                            ? impl_->compute
                            : (impl_->last_copy != nullptr ? impl_->last_copy : impl_->swap_in);
  impl_->note(cudaEventRecord(event_of(event), stream), "cudaEventRecord");
}

void CudaBackend::wait(Queue queue, const Event& event) {
  cudaSetDevice(impl_->device);
  if (queue == Queue::kCompute) {
    impl_->note(cudaStreamWaitEvent(impl_->compute, event_of(event), 0), "cudaStreamWaitEvent");
  } else {
    impl_->note(cudaStreamWaitEvent(impl_->swap_in, event_of(event), 0), "cudaStreamWaitEvent");
    impl_->note(cudaStreamWaitEvent(impl_->swap_out, event_of(event), 0), "cudaStreamWaitEvent");
  }
}

bool CudaBackend::query(const Event& event) {
  const cudaError_t status = cudaEventQuery(event_of(event));
  if (status == cudaErrorNotReady) return false;
  impl_->note(status, "cudaEventQuery");
  return true;
}

void CudaBackend::synchronize(const Event& event) {
  impl_->note(cudaEventSynchronize(event_of(event)), "cudaEventSynchronize");
}

void CudaBackend::synchronize(Queue queue) {
  cudaSetDevice(impl_->device);
  if (queue == Queue::kCompute) {
    impl_->note(cudaStreamSynchronize(impl_->compute), "synchronize compute");
  } else {
    impl_->note(cudaStreamSynchronize(impl_->swap_in), "synchronize swap-in");
    impl_->note(cudaStreamSynchronize(impl_->swap_out), "synchronize swap-out");
  }
}

void CudaBackend::copy(Queue queue, void* dst, const void* src, std::size_t bytes,
                       CopyKind kind) {
  if (bytes == 0) return;
  cudaSetDevice(impl_->device);
  cudaStream_t stream = queue == Queue::kCompute ? impl_->compute : impl_->copy_stream(kind);
  impl_->note(cudaMemcpyAsync(dst, src, bytes, kind_of(kind), stream), "cudaMemcpyAsync");
}

void CudaBackend::copy_batch(Queue queue, std::span<const CopyRange> ranges, CopyKind kind) {
  if (ranges.empty()) return;
  cudaSetDevice(impl_->device);
  cudaStream_t stream = queue == Queue::kCompute ? impl_->compute : impl_->copy_stream(kind);
  // Adjacent ranges (consecutive blocks on both sides) merge into one transfer.
  std::size_t i = 0;
  while (i < ranges.size()) {
    auto* dst = static_cast<std::byte*>(ranges[i].dst);
    const auto* src = static_cast<const std::byte*>(ranges[i].src);
    std::size_t bytes = ranges[i].bytes;
    std::size_t j = i + 1;
    while (j < ranges.size() && ranges[j].dst == dst + bytes && ranges[j].src == src + bytes) {
      bytes += ranges[j].bytes;
      ++j;
    }
    if (bytes > 0) {
      impl_->note(cudaMemcpyAsync(dst, src, bytes, kind_of(kind), stream), "cudaMemcpyAsync batch");
    }
    i = j;
  }
}

void CudaBackend::embedding(Weight table, const std::int32_t* ids, int num_tokens, int hidden,
                            float* out) {
  cudaSetDevice(impl_->device);
  launch_embedding(table, ids, num_tokens, hidden, out, impl_->compute);
  impl_->launched("embedding");
}

void CudaBackend::matmul(const MatmulArgs& args) {
  cudaSetDevice(impl_->device);
  if (args.m <= 0 || args.n <= 0) return;
  if (args.w.dtype == DType::kI32) {
    impl_->fail("matmul: I32 weights are not supported");
    return;
  }
  if (args.m <= kGemvMaxRows) {
    launch_gemv(args.x, args.w, args.bias, args.y, args.m, args.n, args.k, impl_->compute);
    impl_->launched("gemv");
    return;
  }
  // Row-major y[M,N] = x[M,K]·wᵀ is column-major yᵀ[N,M] = w[N,K]ᵀ(col-major [K,N])ᵀ · xᵀ.
  const float alpha = 1.0f;
  const float beta = 0.0f;
  const cudaDataType_t w_type = cuda_type_of(args.w.dtype);
  if (args.w.dtype == DType::kF32) {
    impl_->note_cublas(cublasGemmEx(impl_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, args.n, args.m, args.k,
                                    &alpha, args.w.data, w_type, args.k, args.x, CUDA_R_32F, args.k,
                                    &beta, args.y, CUDA_R_32F, args.n, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT),
                       "cublasGemmEx F32");
  } else {
    // cuBLAS wants both inputs in the weight type: activations are rounded into the workspace
    // (BF16/F16 tensor cores, F32 accumulation), in as many row chunks as the workspace holds.
    const std::size_t row_bytes = static_cast<std::size_t>(args.k) * dtype_bytes(args.w.dtype);
    const auto rows_per_chunk =
        static_cast<int>(std::min<std::size_t>(impl_->gemm_workspace_bytes / row_bytes,
                                               static_cast<std::size_t>(args.m)));
    if (rows_per_chunk <= 0) {
      impl_->fail("matmul: gemm_workspace_bytes " + std::to_string(impl_->gemm_workspace_bytes) +
                  " cannot hold one activation row of " + std::to_string(row_bytes) + " bytes");
      return;
    }
    for (int row = 0; row < args.m; row += rows_per_chunk) {
      const int rows = std::min(rows_per_chunk, args.m - row);
      const float* x = args.x + static_cast<std::size_t>(row) * static_cast<std::size_t>(args.k);
      float* y = args.y + static_cast<std::size_t>(row) * static_cast<std::size_t>(args.n);
      launch_cast_f32(x, impl_->gemm_workspace, args.w.dtype,
                      static_cast<std::size_t>(rows) * static_cast<std::size_t>(args.k),
                      impl_->compute);
      impl_->launched("cast activations");
      impl_->note_cublas(
          cublasGemmEx(impl_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, args.n, rows, args.k, &alpha,
                       args.w.data, w_type, args.k, impl_->gemm_workspace, w_type, args.k, &beta,
                       y, CUDA_R_32F, args.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx 16-bit");
    }
  }
  if (args.bias.data != nullptr) {
    launch_add_bias(args.y, args.bias, args.m, args.n, impl_->compute);
    impl_->launched("add bias");
  }
}

void CudaBackend::rms_norm(const float* x, Weight weight, float eps, int rows, int hidden,
                           float* y) {
  cudaSetDevice(impl_->device);
  launch_rms_norm(x, weight, eps, rows, hidden, y, impl_->compute);
  impl_->launched("rms_norm");
}

void CudaBackend::rope(float* x, const std::int32_t* positions, int num_tokens, int num_heads,
                       int head_dim, const RopeParams& params) {
  cudaSetDevice(impl_->device);
  if (head_dim / 2 > kMaxRopeHalf || head_dim % 2 != 0) {
    impl_->fail("rope: head_dim " + std::to_string(head_dim) + " must be even and at most " +
                std::to_string(2 * kMaxRopeHalf));
    return;
  }
  // The same host-side inverse frequencies as the CPU backend (one definition of the scaling).
  const std::vector<float> inv_freq = rope_inv_freq(params, head_dim);
  RopeFreqs freqs{};
  std::copy(inv_freq.begin(), inv_freq.end(), freqs.inv_freq);
  launch_rope(x, positions, num_tokens, num_heads, head_dim, freqs, impl_->compute);
  impl_->launched("rope");
}

void CudaBackend::write_kv(const float* k, const float* v, int layer, const KvLayout& layout,
                           const TokenBatch& batch) {
  cudaSetDevice(impl_->device);
  launch_write_kv(k, v, layer, layout, batch, impl_->compute);
  impl_->launched("write_kv");
}

void CudaBackend::attention(const AttentionArgs& args) {
  cudaSetDevice(impl_->device);
  if (args.layout.head_dim > kMaxHeadDim || args.layout.kv_heads <= 0 ||
      args.num_heads % args.layout.kv_heads != 0) {
    impl_->fail("attention: head_dim " + std::to_string(args.layout.head_dim) + " (max " +
                std::to_string(kMaxHeadDim) + ") or heads " + std::to_string(args.num_heads) +
                " not a multiple of kv_heads " + std::to_string(args.layout.kv_heads));
    return;
  }
  // More tokens than sequences means some sequence brings several (a prefill chunk): the
  // tiled kernel shares K/V loads among them. One token per sequence is a decode step.
  if (args.batch.num_tokens > args.batch.num_seqs) {
    launch_attention_prefill(args, impl_->compute);
    impl_->launched("attention prefill");
  } else {
    launch_attention_decode(args, impl_->compute);
    impl_->launched("attention decode");
  }
}

void CudaBackend::silu_mul(const float* gate, const float* up, std::size_t count, float* out) {
  cudaSetDevice(impl_->device);
  launch_silu_mul(gate, up, count, out, impl_->compute);
  impl_->launched("silu_mul");
}

void CudaBackend::add(const float* a, const float* b, std::size_t count, float* out) {
  cudaSetDevice(impl_->device);
  launch_add(a, b, count, out, impl_->compute);
  impl_->launched("add");
}

void CudaBackend::gather_rows(const float* x, const std::int32_t* rows, int num_rows, int width,
                              float* out) {
  cudaSetDevice(impl_->device);
  launch_gather_rows(x, rows, num_rows, width, out, impl_->compute);
  impl_->launched("gather_rows");
}

void CudaBackend::argmax(const float* logits, int rows, int vocab, std::int32_t* out) {
  cudaSetDevice(impl_->device);
  launch_argmax(logits, rows, vocab, out, impl_->compute);
  impl_->launched("argmax");
}

}  // namespace aegaeon::backend::cuda
