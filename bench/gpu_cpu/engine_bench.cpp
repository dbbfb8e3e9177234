// Engine benchmark: every figure is a ratio against a limit measured in this run (STYLE.md).
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "gpu/backend/cpu/cpu_backend.hpp"
#include "gpu/backend/cpu/cpu_kernels.hpp"
#include "gpu/memory/kv_cache.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_runner.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "gpu/model/model_weights.hpp"

namespace {

using namespace aegaeon;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Options {
  int hidden = 768;
  int layers = 12;
  int vocab = 32000;
  int threads = 2;
  int steps = 16;
  backend::DType dtype = backend::DType::kBF16;
};

// Sums `count` floats with wide vector loads: the streaming read a batch-1 decode step does.
__attribute__((target("avx2"))) float stream_sum(const float* p, std::size_t count) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i + 32 <= count; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float sum = 0;
  for (float v : lanes) sum += v;
  return sum;
}

// Best-of-N multi-threaded read bandwidth over a buffer far larger than the caches.
double read_bandwidth(const std::vector<float>& buffer, int threads) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<float> sums(static_cast<std::size_t>(threads));
    const auto start = Clock::now();
    std::vector<std::thread> pool;
    const std::size_t chunk = buffer.size() / static_cast<std::size_t>(threads);
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        sums[static_cast<std::size_t>(t)] =
            stream_sum(buffer.data() + static_cast<std::size_t>(t) * chunk, chunk);
      });
    }
    for (auto& th : pool) th.join();
    const double s = seconds_since(start);
    best = std::max(best, static_cast<double>(buffer.size() * 4) / s);
    if (sums[0] == 42.0f) std::printf(" ");  // keeps the reads observable
  }
  return best;
}

// Best-of-N single-threaded memcpy bytes/s (what one copy engine thread can do).
double memcpy_bandwidth(std::byte* dst, const std::byte* src, std::size_t bytes) {
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = Clock::now();
    std::memcpy(dst, src, bytes);
    best = std::max(best, static_cast<double>(bytes) / seconds_since(start));
  }
  return best;
}

double gflops(int m, int n, int k, double s) { return 2.0 * m * n * k / s / 1e9; }

int run(const Options& o) {
  std::printf("engine bench: hidden %d, layers %d, vocab %d, dtype %s, threads %d, avx2 %s\n",
              o.hidden, o.layers, o.vocab, std::string(backend::to_string(o.dtype)).c_str(),
              o.threads, backend::cpu::using_avx2() ? "yes" : "no");
  const auto dir = std::filesystem::temp_directory_path() /
                   ("aegaeon_bench_model_" + std::to_string(::getpid()));
  model::SynthSpec spec{model::synth_config(model::Architecture::kLlama, o.hidden, o.layers, o.vocab),
                        o.dtype, 1, 1};
  if (auto r = model::write_synthetic_model(dir, spec); !r.ok()) {
    std::fprintf(stderr, "%s\n", r.error().message.c_str());
    return 1;
  }
  auto backend_or = backend::cpu::CpuBackend::create({std::size_t{3} << 30, o.threads});
  if (!backend_or.ok()) return 1;
  auto& backend = **backend_or;
  auto host = model::load_host_model(dir, backend);
  std::filesystem::remove_all(dir);
  if (!host.ok()) {
    std::fprintf(stderr, "%s\n", host.error().message.c_str());
    return 1;
  }
  const model::ModelConfig& c = host->config;
  std::printf("model: %.1f M parameters, %.1f MiB of weights\n", c.num_parameters() / 1e6,
              host->weight_bytes / 1048576.0);

  // Limits measured now, on this machine, under its current load.
  std::vector<float> big((std::size_t{512} << 20) / 4, 1.0f);
  const double read_bw = read_bandwidth(big, o.threads);
  auto weights_region = backend.arena().carve(host->weight_bytes, "weights");
  if (!weights_region.ok()) return 1;
  // Fault the arena pages in first, as a worker does once at start.
  std::memset(weights_region->data, 0, weights_region->bytes);
  const double copy_bw = memcpy_bandwidth(static_cast<std::byte*>(weights_region->data),
                                          host->buffer->data(), host->weight_bytes);
  std::printf("limits: memory read %.2f GB/s (%d threads), memcpy %.2f GB/s (1 thread)\n",
              read_bw / 1e9, o.threads, copy_bw / 1e9);

  // The switch path: one async host→arena copy on the copy queue.
  auto done = backend.create_event();
  core::Result<model::ModelWeights> weights = core::error(core::ErrorCode::kInternal, "unset");
  double switch_s = 1e30;
  for (int rep = 0; rep < 3; ++rep) {  // best of 3, like the memcpy baseline
    const auto switch_start = Clock::now();
    weights = model::upload_weights(*host, backend, *weights_region, *done);
    backend.synchronize(*done);
    switch_s = std::min(switch_s, seconds_since(switch_start));
  }
  if (!weights.ok()) return 1;
  const double switch_bw = host->weight_bytes / switch_s;
  std::printf("switch (host→arena weights): %.1f ms, %.2f GB/s = %.2f × memcpy\n", switch_s * 1e3,
              switch_bw / 1e9, switch_bw / copy_bw);

  const backend::KvLayout probe{nullptr, c.num_layers, c.num_kv_heads, c.head_dim, 16};
  auto kv_region = backend.arena().carve(probe.block_bytes() * 256, "kv");
  model::RunnerLimits limits{256, 8};
  auto scratch = backend.arena().carve(model::ModelRunner::scratch_bytes(c, limits), "scratch");
  if (!kv_region.ok() || !scratch.ok()) return 1;
  auto kv = std::move(memory::KvCache::create(backend, {c.num_layers, c.num_kv_heads, c.head_dim},
                                              *kv_region, 0)).value();
  auto runner = std::move(model::ModelRunner::create(backend, *weights, *kv, *scratch, limits)).value();

  // Prefill: 8 sequences × 32 tokens in one call.
  std::vector<std::vector<std::int32_t>> prompts(8);
  std::vector<model::SequenceChunk> chunks;
  for (int s = 0; s < 8; ++s) {
    for (int i = 0; i < 32; ++i) prompts[s].push_back((s * 131 + i * 17) % c.vocab_size);
    (void)kv->add_sequence(static_cast<memory::SeqId>(s));
    chunks.push_back({static_cast<memory::SeqId>(s), prompts[s]});
  }
  auto prefill_start = Clock::now();
  auto logits = runner->prefill(chunks);
  const double prefill_s = seconds_since(prefill_start);
  if (!logits.ok()) {
    std::fprintf(stderr, "%s\n", logits.error().message.c_str());
    return 1;
  }
  const double prefill_flops = 2.0 * static_cast<double>(c.num_parameters()) * 256;
  std::printf("prefill 8×32 tokens: %.0f tokens/s, %.1f GFLOP/s (weights only)\n", 256 / prefill_s,
              prefill_flops / prefill_s / 1e9);

  // Decode at batch 1 and batch 8.
  for (int batch : {1, 8}) {
    std::vector<memory::SeqId> seqs;
    std::vector<std::int32_t> tokens;
    for (int s = 0; s < batch; ++s) {
      seqs.push_back(static_cast<memory::SeqId>(s));
      tokens.push_back(static_cast<std::int32_t>(s + 5));
    }
    (void)runner->decode_step(seqs, tokens);  // warm-up
    const auto start = Clock::now();
    for (int step = 0; step < o.steps; ++step) {
      auto step_logits = runner->decode_step(seqs, tokens);
      if (!step_logits.ok()) return 1;
      for (int s = 0; s < batch; ++s) {
        auto row = step_logits->row(static_cast<std::size_t>(s));
        tokens[static_cast<std::size_t>(s)] =
            static_cast<std::int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
      }
    }
    const double s = seconds_since(start);
    const double steps_per_s = o.steps / s;
    // Every step streams all weights once (the embedding table only one row per token).
    const double bytes_per_step =
        host->weight_bytes - (c.tie_word_embeddings ? 0.0 : static_cast<double>(host->find("model.embed_tokens.weight")->bytes));
    std::printf("decode batch %d: %.1f tokens/s, %.2f ms/step, weights %.2f GB/s = %.2f × memory read bandwidth\n",
                batch, steps_per_s * batch, 1e3 / steps_per_s, bytes_per_step * steps_per_s / 1e9,
                bytes_per_step * steps_per_s / read_bw);
  }

  // Matmul kernel vs OpenBLAS sgemm on the same shape and threads.
  const int m = 128, n = 1024, k = 1024;
  std::vector<float> x(static_cast<std::size_t>(m) * k, 0.01f), w(static_cast<std::size_t>(n) * k, 0.02f),
      y(static_cast<std::size_t>(m) * n);
  std::vector<std::uint16_t> wb(w.size(), backend::f32_to_bf16(0.02f));
  auto best_of = [](auto&& fn) {
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const auto start = Clock::now();
      fn();
      best = std::min(best, seconds_since(start));
    }
    return best;
  };
  // Baseline: OpenBLAS with its own pool of the same size (the backend keeps it at 1 thread
  // and parallelizes over panels itself).
  openblas_set_num_threads(o.threads);
  const double blas_s = best_of([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k,
                0.0f, y.data(), n);
  });
  openblas_set_num_threads(1);
  const double f32_s = best_of([&] {
    backend.matmul({x.data(), {w.data(), backend::DType::kF32}, {}, y.data(), m, n, k});
  });
  const double bf16_s = best_of([&] {
    backend.matmul({x.data(), {wb.data(), backend::DType::kBF16}, {}, y.data(), m, n, k});
  });
  const double gemv_s = best_of([&] {
    backend.matmul({x.data(), {wb.data(), backend::DType::kBF16}, {}, y.data(), 1, n, k});
  });
  const double blas_gflops = gflops(m, n, k, blas_s);
  std::printf("matmul %dx%dx%d: OpenBLAS sgemm %.1f GFLOP/s; backend F32 %.1f (%.2f×), BF16 %.1f (%.2f×)\n",
              m, n, k, blas_gflops, gflops(m, n, k, f32_s), gflops(m, n, k, f32_s) / blas_gflops,
              gflops(m, n, k, bf16_s), gflops(m, n, k, bf16_s) / blas_gflops);
  const double gemv_bw = static_cast<double>(wb.size() * 2) / gemv_s;
  std::printf("gemv 1x%dx%d BF16 (L2-resident weights): %.2f GB/s of weights\n", n, k, gemv_bw / 1e9);
  for (int rows : {2, 4, 8, 15, 16}) {
    const double rows_s = best_of([&] {
      backend.matmul({x.data(), {wb.data(), backend::DType::kBF16}, {}, y.data(), rows, n, k});
    });
    std::printf("matmul %dx%dx%d BF16: %.1f GFLOP/s (%.2f× sgemm at m=%d)\n", rows, n, k,
                gflops(rows, n, k, rows_s), gflops(rows, n, k, rows_s) / blas_gflops, m);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> int { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (arg == "--hidden") o.hidden = next();
    else if (arg == "--layers") o.layers = next();
    else if (arg == "--vocab") o.vocab = next();
    else if (arg == "--threads") o.threads = next();
    else if (arg == "--steps") o.steps = next();
    else if (arg == "--f32") o.dtype = backend::DType::kF32;
    else {
      std::printf("usage: bench_engine [--hidden N] [--layers N] [--vocab N] [--threads N] "
                  "[--steps N] [--f32]\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  if (o.hidden <= 0 || o.layers <= 0 || o.vocab <= 0 || o.threads <= 0 || o.steps <= 0) {
    std::fprintf(stderr, "bench_engine: every option must be a positive integer\n");
    return 2;
  }
  return run(o);
}
