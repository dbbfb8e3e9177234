// CUDA backend benchmark: every figure is a ratio against a limit measured in this run
// (STYLE.md; DESIGN.md "Physical limit"): switch ÷ pinned H2D bandwidth, batch-1 decode ÷ HBM
// bandwidth over weight bytes, prefill FLOP rate ÷ cuBLAS BF16 GEMM peak.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gpu/backend/cuda/cuda_backend.hpp"
#include "gpu/memory/kv_cache.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_runner.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "gpu/model/model_weights.hpp"

namespace {

using namespace aegaeon;
using backend::CopyKind;
using backend::Queue;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Options {
  std::string only;         // "", "switch", "decode" or "prefill"
  int decode_hidden = 2048;  // the synthesized decode/prefill model
  int decode_layers = 8;
  int vocab = 32000;
  int steps = 64;
  int prefill_tokens = 512;
};

// Best of 5 host→device copies of `bytes` from pinned memory: the switch's physical limit.
double pinned_h2d_bandwidth(backend::cuda::CudaBackend& gpu, std::byte* host, void* device,
                            std::size_t bytes) {
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    gpu.copy(Queue::kCopy, device, host, bytes, CopyKind::kHostToDevice);
    gpu.synchronize(Queue::kCopy);
    best = std::max(best, static_cast<double>(bytes) / seconds_since(start));
  }
  return best;
}

// Best of 5 device→device copies: each byte is read and written, so 2·bytes move.
double hbm_bandwidth(backend::cuda::CudaBackend& gpu, void* a, void* b, std::size_t bytes) {
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    gpu.copy(Queue::kCompute, b, a, bytes, CopyKind::kDeviceToDevice);
    gpu.synchronize(Queue::kCompute);
    best = std::max(best, 2.0 * static_cast<double>(bytes) / seconds_since(start));
  }
  return best;
}

// Peak BF16 tensor-core rate with F32 accumulation and output, as the backend's GEMMs run.
double cublas_bf16_peak(int size) {
  const auto n = static_cast<std::size_t>(size);
  void *a = nullptr, *b = nullptr, *c = nullptr;
  if (cudaMalloc(&a, n * n * 2) != cudaSuccess || cudaMalloc(&b, n * n * 2) != cudaSuccess ||
      cudaMalloc(&c, n * n * 4) != cudaSuccess) {
    return 0;
  }
  // Non-zero operands (0x3c3c ≈ 0.0115 in BF16): all-zero GEMMs draw less power and clock higher.
  cudaMemset(a, 0x3c, n * n * 2);
  cudaMemset(b, 0x3c, n * n * 2);
  cublasHandle_t handle = nullptr;
  cublasCreate(&handle);
  const float alpha = 1.0f, beta = 0.0f;
  double best = 0;
  for (int i = 0; i < 6; ++i) {
    const auto start = Clock::now();
    cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, size, size, size, &alpha, a, CUDA_R_16BF, size,
                 b, CUDA_R_16BF, size, &beta, c, CUDA_R_32F, size, CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
    cudaDeviceSynchronize();
    if (i > 0) best = std::max(best, 2.0 * static_cast<double>(n * n * n) / seconds_since(start));
  }
  cublasDestroy(handle);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return best;
}

// Switch: one pinned host→device copy of a model's BF16 weights (the upload_weights path),
// for 1B-, 7B- and 14B-shaped models as far as device memory allows.
void bench_switch(backend::cuda::CudaBackend& gpu) {
  struct Shape {
    const char* name;
    int hidden, layers, vocab;
  };
  const Shape shapes[] = {{"1B", 2048, 16, 128256}, {"7B", 4096, 32, 32000}, {"14B", 5120, 48, 152064}};
  std::size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  for (const Shape& s : shapes) {
    const model::ModelConfig c = model::synth_config(model::Architecture::kLlama, s.hidden, s.layers, s.vocab);
    const std::size_t bytes = c.num_parameters() * 2;
    if (bytes + (std::size_t{2} << 30) > free_bytes) {
      std::printf("switch %-4s %6.2f GB: skipped (device has %.2f GB free)\n", s.name, bytes / 1e9,
                  free_bytes / 1e9);
      continue;
    }
    auto host = gpu.allocate_pinned(bytes);
    if (!host.ok()) {
      std::printf("switch %-4s: skipped (%s)\n", s.name, host.error().message.c_str());
      continue;
    }
    std::memset((*host)->data(), 1, bytes);
    void* device = nullptr;
    if (cudaMalloc(&device, bytes) != cudaSuccess) {
      std::printf("switch %-4s: skipped (cudaMalloc of %zu bytes failed)\n", s.name, bytes);
      continue;
    }
    // The limit: raw pinned bandwidth on a 256 MiB transfer, measured now.
    const std::size_t probe = std::min<std::size_t>(bytes, std::size_t{256} << 20);
    const double bandwidth = pinned_h2d_bandwidth(gpu, (*host)->data(), device, probe);
    double best_s = 1e30;
    for (int i = 0; i < 3; ++i) {
      auto done = gpu.create_event();
      const auto start = Clock::now();
      gpu.copy(Queue::kCopy, device, (*host)->data(), bytes, CopyKind::kHostToDevice);
      gpu.record(Queue::kCopy, *done);
      gpu.synchronize(*done);
      best_s = std::min(best_s, seconds_since(start));
    }
    const double limit_s = static_cast<double>(bytes) / bandwidth;
    std::printf("switch %-4s %6.2f GB: %.3f s, limit %.3f s at %.1f GB/s pinned H2D: ratio %.2f "
                "(target <= 1.2)\n",
                s.name, bytes / 1e9, best_s, limit_s, bandwidth / 1e9, best_s / limit_s);
    cudaFree(device);
  }
}

// A synthesized BF16 model loaded onto the GPU with a KV cache and a runner.
struct Loaded {
  model::HostModel host;
  model::ModelWeights weights;
  std::unique_ptr<memory::KvCache> kv;
  std::unique_ptr<model::ModelRunner> runner;
};

core::Result<Loaded> load_model(backend::cuda::CudaBackend& gpu, const std::filesystem::path& dir,
                                const Options& o) {
  model::SynthSpec spec{model::synth_config(model::Architecture::kLlama, o.decode_hidden,
                                            o.decode_layers, o.vocab),
                        backend::DType::kBF16, 3, 1};
  AEGAEON_TRY(model::write_synthetic_model(dir, spec));
  auto host = model::load_host_model(dir, gpu);
  if (!host.ok()) return host.error();
  Loaded m;
  m.host = std::move(host).value();
  const model::ModelConfig& c = m.host.config;
  memory::KvShape shape{c.num_layers, c.num_kv_heads, c.head_dim};
  backend::KvLayout probe{nullptr, shape.num_layers, shape.kv_heads, shape.head_dim, 16};
  model::RunnerLimits limits{o.prefill_tokens, 8};
  auto kv_region = gpu.arena().carve(probe.block_bytes() * 256, "kv");
  if (!kv_region.ok()) return kv_region.error();
  auto weight_region = gpu.arena().carve(m.host.weight_bytes, "weights");
  if (!weight_region.ok()) return weight_region.error();
  auto scratch = gpu.arena().carve(model::ModelRunner::scratch_bytes(c, limits), "scratch");
  if (!scratch.ok()) return scratch.error();
  auto done = gpu.create_event();
  auto weights = model::upload_weights(m.host, gpu, *weight_region, *done);
  if (!weights.ok()) return weights.error();
  m.weights = std::move(weights).value();
  gpu.wait(Queue::kCompute, *done);
  auto kv = memory::KvCache::create(gpu, shape, *kv_region, 16);
  if (!kv.ok()) return kv.error();
  m.kv = std::move(kv).value();
  auto runner = model::ModelRunner::create(gpu, m.weights, *m.kv, *scratch, limits);
  if (!runner.ok()) return runner.error();
  m.runner = std::move(runner).value();
  return m;
}

int bench_model(backend::cuda::CudaBackend& gpu, const Options& o, bool decode, bool prefill) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("aegaeon_bench_gpu_" + std::to_string(::getpid()));
  auto loaded = load_model(gpu, dir, o);
  std::filesystem::remove_all(dir);
  if (!loaded.ok()) {
    std::fprintf(stderr, "bench_gpu: %s\n", loaded.error().message.c_str());
    return 1;
  }
  Loaded& m = *loaded;
  const double weight_bytes = static_cast<double>(m.host.weight_bytes);
  if (decode) {
    // The limit: a batch-1 step must read every weight once from HBM.
    auto scratch = gpu.arena().carve(std::size_t{1} << 30, "hbm probe");
    const std::size_t half = std::size_t{512} << 20;
    const double hbm = scratch.ok() ? hbm_bandwidth(gpu, scratch->data, scratch->at(half), half) : 0;
    if (scratch.ok()) (void)gpu.arena().release(*scratch);
    std::vector<std::int32_t> prompt(16, 5);
    (void)m.kv->add_sequence(1);
    std::vector<model::SequenceChunk> chunks = {{1, prompt}};
    if (auto r = m.runner->prefill(chunks); !r.ok()) {
      std::fprintf(stderr, "bench_gpu: prefill: %s\n", r.error().message.c_str());
      return 1;
    }
    const std::vector<memory::SeqId> seqs = {1};
    std::vector<std::int32_t> token = {7};
    const auto start = Clock::now();
    for (int i = 0; i < o.steps; ++i) {
      auto r = m.runner->decode_step(seqs, token);
      if (!r.ok()) {
        std::fprintf(stderr, "bench_gpu: decode: %s\n", r.error().message.c_str());
        return 1;
      }
      token[0] = static_cast<std::int32_t>(
          std::max_element(r->row(0).begin(), r->row(0).end()) - r->row(0).begin());
    }
    const double tok_s = o.steps / seconds_since(start);
    const double limit = hbm / weight_bytes;
    std::printf("decode batch 1, %.2f GB BF16 weights: %.1f tok/s, limit %.1f tok/s at %.0f GB/s "
                "HBM (device memcpy): ratio %.2f (target >= 0.6)\n",
                weight_bytes / 1e9, tok_s, limit, hbm / 1e9, tok_s / limit);
    m.kv->remove_sequence(1);
  }
  if (prefill) {
    const double peak = cublas_bf16_peak(8192);
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(o.prefill_tokens), 9);
    double best_s = 1e30;
    for (int i = 0; i < 3; ++i) {
      const auto seq = static_cast<memory::SeqId>(100 + i);
      (void)m.kv->add_sequence(seq);
      std::vector<model::SequenceChunk> chunks = {{seq, prompt}};
      const auto start = Clock::now();
      auto r = m.runner->prefill(chunks);
      best_s = std::min(best_s, seconds_since(start));
      m.kv->remove_sequence(seq);
      if (!r.ok()) {
        std::fprintf(stderr, "bench_gpu: prefill: %s\n", r.error().message.c_str());
        return 1;
      }
    }
    // 2 FLOPs per multiply-add of the projections and MLP for every token, plus the lm_head for
    // the last token only (the runner gathers it first); attention is small at this length.
    const model::ModelConfig& c = m.host.config;
    const double h = c.hidden_size;
    const double q = static_cast<double>(c.num_heads) * c.head_dim;
    const double kv = static_cast<double>(c.num_kv_heads) * c.head_dim;
    const double layer_macs = h * (q + 2 * kv) + q * h + 3 * h * c.intermediate_size;
    const double flops = 2.0 * (layer_macs * c.num_layers * o.prefill_tokens + h * c.vocab_size);
    std::printf("prefill %d tokens: %.1f TFLOP/s, cuBLAS BF16 peak %.1f TFLOP/s (8192^3): ratio "
                "%.2f\n",
                o.prefill_tokens, flops / best_s / 1e12, peak / 1e12, flops / best_s / peak);
  }
  if (auto status = gpu.status(); !status.ok()) {
    std::fprintf(stderr, "bench_gpu: %s\n", status.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (arg == "--only") {
      o.only = next();
    } else if (arg == "--hidden") {
      o.decode_hidden = std::stoi(next());
    } else if (arg == "--layers") {
      o.decode_layers = std::stoi(next());
    } else if (arg == "--steps") {
      o.steps = std::stoi(next());
    } else {
      std::fprintf(stderr,
                   "usage: bench_gpu [--only switch|decode|prefill] [--hidden N] [--layers N] "
                   "[--steps N]\n  unknown argument '%s'\n",
                   arg.c_str());
      return 64;
    }
  }
  if (backend::cuda::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench_gpu: no CUDA device (cudaGetDeviceCount reports none); nothing "
                         "measured\n");
    return 2;
  }
  backend::cuda::CudaBackendOptions options;
  std::size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  // Leave room for the switch benchmark's own cudaMalloc and cuBLAS.
  options.arena_bytes = std::min<std::size_t>(free_bytes / 4, std::size_t{16} << 30);
  auto gpu = backend::cuda::CudaBackend::create(options);
  if (!gpu.ok()) {
    std::fprintf(stderr, "bench_gpu: %s\n", gpu.error().message.c_str());
    return 2;
  }
  cudaDeviceProp props{};
  cudaGetDeviceProperties(&props, 0);
  std::printf("device: %s, %.1f GB\n", props.name, total_bytes / 1e9);
  int rc = 0;
  if (o.only.empty() || o.only == "switch") bench_switch(**gpu);
  const bool decode = o.only.empty() || o.only == "decode";
  const bool prefill = o.only.empty() || o.only == "prefill";
  if (decode || prefill) rc = bench_model(**gpu, o, decode, prefill);
  return rc;
}
