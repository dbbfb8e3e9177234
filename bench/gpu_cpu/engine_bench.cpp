// Engine benchmark of the CPU backend: decode, prefill and the weight switch of synthesized
// ~100M and ~500M-parameter models, every figure a ratio against a limit measured in this run
// on this machine under its current load (STYLE.md): memory read bandwidth for decode, the
// matmul kernel's own peak for prefill, memcpy for the switch.
#include <cblas.h>
#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/gpu_cpu/structured_outputs_cost.hpp"
#include "bench/gpu_cpu/timing_backend.hpp"
#include "gpu/backend/cpu/cpu_backend.hpp"
#include "gpu/backend/cpu/cpu_kernels.hpp"
#include "gpu/memory/kv_cache.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_runner.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "gpu/model/model_weights.hpp"
#include "gpu/worker/device_worker.hpp"

namespace {

using namespace aegaeon;
using Clock = std::chrono::steady_clock;
using backend::DType;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Smallest wall time of `reps` runs of fn: the run least disturbed by other processes.
template <typename Fn>
double best_seconds(int reps, Fn&& fn) {
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = Clock::now();
    fn();
    best = std::min(best, seconds_since(start));
  }
  return best;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

struct Options {
  std::vector<std::string> models = {"100m", "500m"};
  std::vector<DType> dtypes = {DType::kBF16, DType::kF32};
  std::vector<int> batches = {1, 8, 32};
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int steps = 8;
  int prompt_tokens = 16;
  int vocab = 0;  // 0: the shape's own vocabulary
  bool profile = false;
};

// The two shapes of issue #3: ~100M parameters (Qwen2 family, tied, q/k/v biases) and the
// Qwen2.5-0.5B configuration.
model::ModelConfig shape_config(const std::string& name) {
  if (name == "100m") return model::synth_config(model::Architecture::kQwen2, 768, 12, 32000);
  model::ModelConfig c = model::synth_config(model::Architecture::kQwen2, 896, 24, 151936);
  c.num_heads = 14;
  c.num_kv_heads = 2;
  c.intermediate_size = 4864;
  return c;
}

// ---- limits measured in the run ---------------------------------------------------------------

// Sums `bytes` (a multiple of 128) as 64-bit integers with wide loads: the streaming read a
// batch-1 decode step does, whatever the bytes hold.
__attribute__((target("avx2"))) std::uint64_t stream_sum(const std::byte* p, std::size_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i + 128 <= bytes; i += 128) {
    const auto* v = reinterpret_cast<const __m256i*>(p + i);
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(v));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(v + 1));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(v + 2));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(v + 3));
  }
  alignas(32) std::uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// Best-of-`reps` bandwidth of `threads` threads reading [data, data + bytes) once: the bytes a
// decode step streams, at the same addresses, so caches help the limit exactly as much as they
// help decode (a ~200 MB model partly stays in this machine's last-level cache).
double read_bandwidth(const std::byte* data, std::size_t bytes, int threads, int reps) {
  const std::size_t chunk = bytes / static_cast<std::size_t>(threads) / 128 * 128;
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
  const double s = best_seconds(reps, [&] {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        sums[static_cast<std::size_t>(t)] =
            stream_sum(data + static_cast<std::size_t>(t) * chunk, chunk);
      });
    }
    for (auto& th : pool) th.join();
  });
  if (sums[0] == 42) std::printf(" ");  // keeps the reads observable
  return static_cast<double>(chunk * static_cast<std::size_t>(threads)) / s;
}

// Peak GFLOP/s of the backend's matmul on the model's largest prefill shape (the MLP up
// projection, m = the prefill chunk), and OpenBLAS's multi-threaded sgemm on it as a reference.
struct MatmulPeak {
  int m, n, k;
  double backend_gflops;
  double sgemm_gflops;
};

MatmulPeak measure_matmul_peak(backend::Backend& backend, const model::ModelConfig& c, DType dtype,
                               int m, int threads) {
  const int n = c.intermediate_size;
  const int k = c.hidden_size;
  const auto mk = static_cast<std::size_t>(m) * static_cast<std::size_t>(k);
  const auto nk = static_cast<std::size_t>(n) * static_cast<std::size_t>(k);
  std::vector<float> x(mk, 0.01f), w(nk, 0.02f), y(static_cast<std::size_t>(m) * n);
  std::vector<std::uint16_t> w16(nk, backend::f32_to_bf16(0.02f));
  const backend::Weight weight{dtype == DType::kF32 ? static_cast<const void*>(w.data())
                                                    : static_cast<const void*>(w16.data()),
                               dtype};
  const double flops = 2.0 * m * n * k;
  const double backend_s = best_seconds(5, [&] { backend.matmul({x.data(), weight, {}, y.data(), m, n, k}); });
  // The backend keeps OpenBLAS at 1 thread and parallelizes over column panels itself.
  openblas_set_num_threads(threads);
  const double sgemm_s = best_seconds(5, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k,
                0.0f, y.data(), n);
  });
  openblas_set_num_threads(1);
  return {m, n, k, flops / backend_s / 1e9, flops / sgemm_s / 1e9};
}

// ---- work per forward (what the ratios divide) ------------------------------------------------

// Multiply-adds per token of every matmul weight in the layers (biases and norms are noise).
double layer_macs_per_token(const model::ModelConfig& c) {
  const double h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim,
               inter = c.intermediate_size;
  return c.num_layers * (h * q + 2 * h * kv + q * h + 3 * h * inter);
}

// FLOPs of attention for one token at position `pos` over all layers (QK dots and PV sums).
double attention_flops(const model::ModelConfig& c, int pos) {
  return 4.0 * c.num_layers * c.num_heads * c.head_dim * (pos + 1);
}

// ---- one model × dtype ------------------------------------------------------------------------

// Ratios of one model and dtype, for the summary table.
struct Result {
  std::string label;
  double switch_vs_memcpy = 0;
  double prefill_vs_peak = 0;
  std::vector<std::pair<int, double>> decode_tokens_s;  // (batch, tokens/s)
  double decode1_vs_bandwidth = 0;
};

struct Bench {
  const Options& o;

  void progress(const std::string& label, const char* what) {
    std::printf("[%s] %s\n", label.c_str(), what);
    std::fflush(stdout);
  }

  void print_profile(const bench::TimingBackend& timing, double total_s) {
    std::vector<std::pair<double, std::string>> ops;
    for (const auto& [op, s] : timing.seconds_by_op()) ops.emplace_back(s, op);
    std::sort(ops.rbegin(), ops.rend());
    std::printf("    profile:");
    for (const auto& [s, op] : ops) std::printf(" %s %.0f%%", op.c_str(), 100 * s / total_s);
    std::printf("\n");
  }

  // Synthesizes `shape` in `dtype` next to a tiny model to switch away to, loads both into a
  // host model cache and measures everything. Returns nullopt (after printing why) on error.
  std::optional<Result> run_one(const std::string& shape, DType dtype) {
    model::ModelConfig config = shape_config(shape);
    if (o.vocab > 0) config.vocab_size = o.vocab;
    Result result;
    result.label = shape + " " + std::string(backend::to_string(dtype));
    const std::string& label = result.label;

    const auto dir = std::filesystem::temp_directory_path() /
                     ("aegaeon_bench_" + std::to_string(::getpid()));
    struct Cleanup {
      std::filesystem::path dir;
      ~Cleanup() { std::filesystem::remove_all(dir); }
    } cleanup{dir};
    progress(label, "synthesizing the model");
    if (auto r = model::write_synthetic_model(dir / "model", {config, dtype, 1, 1}); !r.ok()) {
      std::fprintf(stderr, "%s\n", r.error().message.c_str());
      return std::nullopt;
    }
    const model::SynthSpec tiny{model::synth_config(model::Architecture::kLlama, 64, 1, 256),
                                DType::kF32, 1, 1};
    if (auto r = model::write_synthetic_model(dir / "tiny", tiny); !r.ok()) {
      std::fprintf(stderr, "%s\n", r.error().message.c_str());
      return std::nullopt;
    }
    progress(label, "loading it into the host model cache");
    const std::vector<worker::ModelSpec> specs = {{"model", dir / "model"}, {"tiny", dir / "tiny"}};
    auto cache = worker::HostModelCache::load(specs);
    if (!cache.ok()) {
      std::fprintf(stderr, "%s\n", cache.error().message.c_str());
      return std::nullopt;
    }
    std::filesystem::remove_all(dir);
    const model::HostModel& host = (*cache)->host_model(0);
    const model::ModelConfig& c = host.config;
    std::printf("== %s: %.1f M parameters, %.1f MiB of weights, vocab %d ==\n", label.c_str(),
                c.num_parameters() / 1e6, host.weight_bytes / 1048576.0, c.vocab_size);

    // The switch path as the serving runtime takes it: DeviceWorker::switch_model copying the
    // weights in chunks on the backend's copy queue. Best of 3 switches from the tiny model.
    progress(label, "switching models on a DeviceWorker");
    double switch_s = 1e30;
    {
      worker::DeviceWorkerOptions options;
      options.threads = o.threads;
      options.kv_bytes = 1 << 20;
      options.weight_slots = 1;  // every switch copies
      options.host_kv_blocks = 0;
      options.max_batch_tokens = 16;
      options.max_batch_seqs = 1;
      auto device = worker::DeviceWorker::create(options, *cache);
      if (!device.ok()) {
        std::fprintf(stderr, "%s\n", device.error().message.c_str());
        return std::nullopt;
      }
      for (int rep = 0; rep < 3; ++rep) {
        auto stats = (*device)->switch_model(0);
        if (!stats.ok() || !(*device)->switch_model(1).ok()) return std::nullopt;
        switch_s = std::min(switch_s, stats->seconds);
      }
    }

    // The engine: a CPU backend holding the weights, a paged KV cache and a runner.
    const model::RunnerLimits limits{256, std::max(32, *std::max_element(o.batches.begin(), o.batches.end()))};
    const int num_seqs = limits.max_batch_seqs;
    const backend::KvLayout probe{nullptr, c.num_layers, c.num_kv_heads, c.head_dim, 16};
    const int tokens_per_seq = o.prompt_tokens + static_cast<int>(o.batches.size()) * (o.steps + 1);
    const std::size_t kv_bytes =
        probe.block_bytes() * static_cast<std::size_t>(num_seqs) * ((tokens_per_seq + 15) / 16);
    const std::size_t scratch_bytes = model::ModelRunner::scratch_bytes(c, limits);
    auto backend_or = backend::cpu::CpuBackend::create(
        {host.weight_bytes + kv_bytes + scratch_bytes + (std::size_t{1} << 20), o.threads});
    if (!backend_or.ok()) return std::nullopt;
    backend::cpu::CpuBackend& cpu = **backend_or;
    bench::TimingBackend timing(cpu);
    backend::Backend& backend = o.profile ? static_cast<backend::Backend&>(timing) : cpu;
    auto weights_region = cpu.arena().carve(host.weight_bytes, "weights");
    auto kv_region = cpu.arena().carve(kv_bytes, "kv");
    auto scratch = cpu.arena().carve(scratch_bytes, "scratch");
    if (!weights_region.ok() || !kv_region.ok() || !scratch.ok()) return std::nullopt;

    // memcpy baseline of the switch: one thread, same bytes, into faulted-in arena pages (the
    // worker's region was faulted in by its first switch too).
    std::memset(weights_region->data, 0, weights_region->bytes);
    const double memcpy_s = best_seconds(3, [&] {
      std::memcpy(weights_region->data, host.buffer->data(), host.weight_bytes);
    });
    result.switch_vs_memcpy = memcpy_s / switch_s;
    std::printf("switch: %.1f ms, %.2f GB/s = %.2f × memcpy (%.2f GB/s, 1 thread)  [target ≥ 0.9]\n",
                switch_s * 1e3, host.weight_bytes / switch_s / 1e9, result.switch_vs_memcpy,
                host.weight_bytes / memcpy_s / 1e9);

    auto done = backend.create_event();
    auto weights = model::upload_weights(host, backend, *weights_region, *done);
    if (!weights.ok()) return std::nullopt;
    backend.synchronize(*done);
    auto kv = memory::KvCache::create(backend, {c.num_layers, c.num_kv_heads, c.head_dim},
                                      *kv_region, 0);
    if (!kv.ok()) return std::nullopt;
    auto runner = model::ModelRunner::create(backend, *weights, **kv, *scratch, limits);
    if (!runner.ok()) return std::nullopt;

    // Prefill: every sequence the decode batches use, prompt_tokens each, in chunks of
    // max_batch_tokens tokens, against the matmul kernel's peak on the same dtype.
    progress(label, "prefill");
    const MatmulPeak peak = measure_matmul_peak(cpu, c, dtype, limits.max_batch_tokens, o.threads);
    std::printf("matmul %dx%dx%d: backend %.1f GFLOP/s = %.2f × OpenBLAS sgemm (%.1f GFLOP/s, "
                "%d threads)\n",
                peak.m, peak.n, peak.k, peak.backend_gflops,
                peak.backend_gflops / peak.sgemm_gflops, peak.sgemm_gflops, o.threads);
    // Each forward is timed on its own and the fastest counts, as for the limits: the run
    // least disturbed by the other processes on a shared machine.
    const int seqs_per_forward = std::max(1, limits.max_batch_tokens / o.prompt_tokens);
    double prefill_s = 0;
    double best_flops_s = 0;
    double best_tokens_s = 0;
    timing.reset();
    for (int first = 0; first < num_seqs; first += seqs_per_forward) {
      std::vector<std::vector<std::int32_t>> prompts;
      double flops = 0;
      for (int s = first; s < std::min(num_seqs, first + seqs_per_forward); ++s) {
        if (!(*kv)->add_sequence(static_cast<memory::SeqId>(s)).ok()) return std::nullopt;
        auto& prompt = prompts.emplace_back();
        for (int i = 0; i < o.prompt_tokens; ++i) {
          prompt.push_back((s * 131 + i * 17) % c.vocab_size);
          flops += 2 * layer_macs_per_token(c) + attention_flops(c, i);
        }
        flops += 2.0 * c.vocab_size * c.hidden_size;  // logits of the last token
      }
      std::vector<model::SequenceChunk> chunks;
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        chunks.push_back({static_cast<memory::SeqId>(first) + i, prompts[i]});
      }
      const auto start = Clock::now();
      if (auto logits = (*runner)->prefill(chunks); !logits.ok()) {
        std::fprintf(stderr, "%s\n", logits.error().message.c_str());
        return std::nullopt;
      }
      const double s = seconds_since(start);
      prefill_s += s;
      best_flops_s = std::max(best_flops_s, flops / s);
      best_tokens_s = std::max(best_tokens_s, static_cast<double>(chunks.size()) * o.prompt_tokens / s);
    }
    result.prefill_vs_peak = best_flops_s / 1e9 / peak.backend_gflops;
    std::printf("prefill %d×%d tokens (%d per forward): %.0f tokens/s, %.1f GFLOP/s = %.2f × "
                "matmul peak\n",
                num_seqs, o.prompt_tokens, seqs_per_forward * o.prompt_tokens, best_tokens_s,
                best_flops_s / 1e9, result.prefill_vs_peak);
    if (o.profile) print_profile(timing, prefill_s);

    // Decode: every step streams all matmul weights once (an untied embedding table only one
    // row per token), against the memory read bandwidth measured just before.
    const double bytes_per_step =
        host.weight_bytes -
        (c.tie_word_embeddings ? 0.0 : static_cast<double>(host.find("model.embed_tokens.weight")->bytes));
    // The limit is sampled between decode steps too and its best sample counts: on a shared
    // machine it then sees the same moments of load as the steps it is compared with.
    auto read_weights = [&](int reps) {
      return read_bandwidth(static_cast<const std::byte*>(weights_region->data), host.weight_bytes,
                            o.threads, reps);
    };
    double read_bw = read_weights(5);
    for (int batch : o.batches) {
      progress(label, ("decode batch " + std::to_string(batch)).c_str());
      std::vector<memory::SeqId> seqs;
      std::vector<std::int32_t> tokens;
      for (int s = 0; s < batch; ++s) {
        seqs.push_back(static_cast<memory::SeqId>(s));
        tokens.push_back(static_cast<std::int32_t>(s + 5));
      }
      double step_flops = 0;
      auto step = [&]() -> bool {
        for (int s = 0; s < batch; ++s) {
          step_flops += 2 * layer_macs_per_token(c) + 2.0 * c.vocab_size * c.hidden_size +
                        attention_flops(c, (*kv)->num_tokens(seqs[static_cast<std::size_t>(s)]));
        }
        auto logits = (*runner)->decode_step(seqs, tokens);
        if (!logits.ok()) return false;
        for (int s = 0; s < batch; ++s) {  // greedy, so the contexts are real continuations
          auto row = logits->row(static_cast<std::size_t>(s));
          tokens[static_cast<std::size_t>(s)] =
              static_cast<std::int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
        }
        return true;
      };
      if (!step()) return std::nullopt;  // warm-up
      step_flops = 0;
      timing.reset();
      std::vector<double> step_s;
      for (int i = 0; i < o.steps; ++i) {
        read_bw = std::max(read_bw, read_weights(1));
        const auto start = Clock::now();
        if (!step()) return std::nullopt;
        step_s.push_back(seconds_since(start));
      }
      std::sort(step_s.begin(), step_s.end());
      const double s = std::accumulate(step_s.begin(), step_s.end(), 0.0);
      const double best = step_s.front();
      const double gflops = step_flops / o.steps / best / 1e9;
      const double bw_ratio = bytes_per_step / best / read_bw;
      std::printf("decode batch %d: %.1f tokens/s (best step %.1f ms, median %.1f ms); weights "
                  "%.2f GB/s = %.2f × memory read (%.2f GB/s); %.1f GFLOP/s = %.2f × matmul "
                  "peak%s\n",
                  batch, batch / best, best * 1e3, step_s[step_s.size() / 2] * 1e3,
                  bytes_per_step / best / 1e9, bw_ratio, read_bw / 1e9, gflops,
                  gflops / peak.backend_gflops,
                  batch == 1 && dtype == DType::kBF16 ? "  [target ≥ 0.7 × memory read]" : "");
      if (o.profile) print_profile(timing, s);
      result.decode_tokens_s.emplace_back(batch, batch / best);
      if (batch == 1) {
        result.decode1_vs_bandwidth = bw_ratio;
        if (dtype == DType::kBF16) bench::report_structured_outputs_cost(c.vocab_size, best);
      }
    }
    return result;
  }
};

// "a,b,c" -> {"a", "b", "c"}
std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> items;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) items.push_back(item);
  return items;
}

int usage(int code) {
  std::printf(
      "usage: bench_engine [--models 100m,500m] [--dtypes bf16,f32] [--batches 1,8,32]\n"
      "                    [--steps N] [--prompt-tokens N] [--threads N] [--vocab N] [--profile]\n"
      "  100m: Qwen2-style, hidden 768, 12 layers, vocab 32000 (~102M parameters)\n"
      "  500m: Qwen2.5-0.5B shapes, hidden 896, 24 layers, 14/2 heads, 4864, vocab 151936\n"
      "  --vocab N overrides both vocabularies (faster synthesis); --profile prints the share of\n"
      "  each op in prefill and decode time\n");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const std::string value = i + 1 < argc ? argv[i + 1] : "";
    auto number = [&] { ++i; return std::atoi(value.c_str()); };
    if (arg == "--models") {
      o.models = split_list(value);
      ++i;
    } else if (arg == "--dtypes") {
      o.dtypes.clear();
      for (const auto& d : split_list(value)) {
        if (d != "bf16" && d != "f32") return usage(2);
        o.dtypes.push_back(d == "bf16" ? DType::kBF16 : DType::kF32);
      }
      ++i;
    } else if (arg == "--batches") {
      o.batches.clear();
      for (const auto& b : split_list(value)) o.batches.push_back(std::atoi(b.c_str()));
      ++i;
    } else if (arg == "--steps") {
      o.steps = number();
    } else if (arg == "--prompt-tokens") {
      o.prompt_tokens = number();
    } else if (arg == "--threads") {
      o.threads = number();
    } else if (arg == "--vocab") {
      o.vocab = number();
    } else if (arg == "--profile") {
      o.profile = true;
    } else {
      return usage(arg == "--help" ? 0 : 2);
    }
  }
  const bool bad_models = std::any_of(o.models.begin(), o.models.end(),
                                      [](const std::string& m) { return m != "100m" && m != "500m"; });
  const bool bad_batches = o.batches.empty() ||
                           std::any_of(o.batches.begin(), o.batches.end(), [](int b) { return b <= 0 || b > 256; });
  if (bad_models || bad_batches || o.dtypes.empty() || o.steps <= 0 || o.threads <= 0 ||
      o.prompt_tokens <= 0 || o.prompt_tokens > 256 || o.vocab < 0) {
    return usage(2);
  }

  std::printf("bench_engine: %d threads, avx2 kernels %s, load average %s\n", o.threads,
              backend::cpu::using_avx2() ? "yes" : "no", load_average().c_str());
  Bench bench{o};
  std::vector<Result> results;
  for (const auto& shape : o.models) {
    for (DType dtype : o.dtypes) {
      auto r = bench.run_one(shape, dtype);
      if (!r) return 1;
      results.push_back(*r);
    }
  }
  std::printf("\nsummary (load average %s)\n%-10s %10s %10s %12s", load_average().c_str(), "model",
              "switch/cpy", "pfill/peak", "dec1/membw");
  for (int b : o.batches) std::printf(" %9s", ("tok/s b" + std::to_string(b)).c_str());
  std::printf("\n");
  for (const auto& r : results) {
    std::printf("%-10s %10.2f %10.2f %12.2f", r.label.c_str(), r.switch_vs_memcpy,
                r.prefill_vs_peak, r.decode1_vs_bandwidth);
    for (const auto& [batch, tokens_s] : r.decode_tokens_s) std::printf(" %9.1f", tokens_s);
    std::printf("\n");
  }
  return 0;
}
