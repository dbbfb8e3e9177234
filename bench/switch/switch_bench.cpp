// bench_switch: how close a DeviceWorker model switch comes to its physical limit. A switch
// copies weight_bytes host→arena, so it can't beat weight_bytes / memcpy bandwidth; both are
// measured in the same run on the same buffers. Also reports the exposed switch time when the
// next model was prefetched during a decode turn (adoption: no copy on the critical path).
//
// Usage: bench_switch [hidden=512] [layers=4] [reps=10]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "gpu/backend/backend.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "gpu/worker/device_worker.hpp"

namespace {

using namespace aegaeon;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int fail(const std::string& what, const core::Error& e) {
  std::fprintf(stderr, "bench_switch: %s: %s\n", what.c_str(), e.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int hidden = argc > 1 ? std::atoi(argv[1]) : 512;
  const int layers = argc > 2 ? std::atoi(argv[2]) : 4;
  const int reps = argc > 3 ? std::max(3, std::atoi(argv[3])) : 10;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("aegaeon_bench_switch_" + std::to_string(::getpid()));
  std::vector<worker::ModelSpec> specs;
  for (int i = 0; i < 2; ++i) {
    model::SynthSpec spec;
    spec.config = model::synth_config(model::Architecture::kLlama, hidden, layers, 8192);
    spec.seed = static_cast<std::uint64_t>(i + 1);
    const auto path = dir / ("m" + std::to_string(i));
    if (auto r = model::write_synthetic_model(path, spec); !r.ok()) return fail("synthesize", r.error());
    specs.push_back({"m" + std::to_string(i), path});
  }
  auto cache = worker::HostModelCache::load(specs);
  std::filesystem::remove_all(dir);
  if (!cache.ok()) return fail("load", cache.error());
  const std::uint64_t bytes = (*cache)->info(0).weight_bytes;

  // The limit: one memcpy of the same host buffer into memory of the same size (touched first
  // so page faults are not counted), the way the CPU backend's copy engine moves it.
  const std::byte* src = (*cache)->host_model(0).buffer->data();
  std::vector<std::byte> dst(bytes);
  std::memset(dst.data(), 1, dst.size());
  auto time_memcpy = [&] {
    const auto t0 = Clock::now();
    std::memcpy(dst.data(), src, bytes);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };

  // Copying switches (one weight slot), alternating the two models.
  worker::DeviceWorkerOptions options;
  options.kv_bytes = std::uint64_t{16} << 20;
  options.host_kv_blocks = 64;
  options.weight_slots = 1;
  auto copying = worker::DeviceWorker::create(options, *cache);
  if (!copying.ok()) return fail("create", copying.error());
  // Limit and switch are measured in alternation, so load from other processes hits both alike.
  std::vector<double> switch_s, memcpy_s, ratios;
  for (int r = 0; r < reps + 1; ++r) {
    const double limit = time_memcpy();
    auto stats = (*copying)->switch_model(r % 2);
    if (!stats.ok()) return fail("switch", stats.error());
    if (r == 0) continue;  // the first one faults the region in
    switch_s.push_back(stats->seconds);
    memcpy_s.push_back(limit);
    ratios.push_back(stats->seconds / limit);
  }
  const double copy_s = median(switch_s);
  const double limit_s = median(memcpy_s);

  // Prefetch during a decode turn, then switch: the exposed time is what a turn boundary pays.
  options.weight_slots = 2;
  auto prefetching = worker::DeviceWorker::create(options, *cache);
  if (!prefetching.ok()) return fail("create", prefetching.error());
  auto& w = **prefetching;
  std::vector<double> exposed_s, turn_s;
  std::vector<std::int32_t> prompt(32);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>(i * 7 % 8192);
  for (int r = 0; r < reps + 1; ++r) {
    const core::ModelId now = r % 2;
    if (auto s = w.switch_model(now); !s.ok()) return fail("switch", s.error());
    if (auto p = w.prefetch(1 - now); !p.ok()) return fail("prefetch", p.error());
    const worker::SeqId seq = static_cast<worker::SeqId>(r + 1);
    const auto t0 = Clock::now();
    auto first = w.prefill(std::vector<worker::PrefillItem>{{seq, prompt, core::SamplingParams::greedy()}});
    if (!first.ok()) return fail("prefill", first.error());
    const std::vector<worker::SeqId> ids{seq};
    for (int i = 0; i < 8; ++i) {
      if (auto d = w.decode_step(ids); !d.ok()) return fail("decode", d.error());
    }
    const double turn = std::chrono::duration<double>(Clock::now() - t0).count();
    w.release(seq);
    auto stats = w.switch_model(1 - now);
    if (!stats.ok()) return fail("switch", stats.error());
    if (!stats->from_prefetch) std::fprintf(stderr, "bench_switch: prefetch was not adopted\n");
    if (r > 0) {
      exposed_s.push_back(stats->seconds);
      turn_s.push_back(turn);
    }
  }
  const double adopt_s = median(exposed_s);

  std::printf("model: hidden %d, %d layers, vocab 8192, F32: %.1f MiB of weights\n", hidden,
              layers, static_cast<double>(bytes) / (1 << 20));
  std::printf("memcpy limit:          %9.3f ms  (%.2f GiB/s)\n", limit_s * 1e3,
              static_cast<double>(bytes) / limit_s / (1 << 30));
  std::printf("copying switch:        %9.3f ms  ratio to limit %.2f  (median of paired ratios; 8 MiB chunks on the copy queue)\n",
              copy_s * 1e3, median(ratios));
  std::printf("prefetched switch:     %9.1f us  ratio to limit %.5f  (after a %.1f ms turn of prefill+8 decode steps)\n",
              adopt_s * 1e6, adopt_s / limit_s, median(turn_s) * 1e3);
  return 0;
}
