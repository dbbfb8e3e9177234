// A Backend decorator that times every compute op of the backend it wraps: where a forward
// pass spends its time (bench_engine --profile). Only meaningful on backends whose compute ops
// finish before they return (the CPU backend); on CUDA it would time kernel launches.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "gpu/backend/backend.hpp"

namespace aegaeon::bench {

/// Forwards everything to `inner`; compute ops add their wall time to a per-op total.
class TimingBackend final : public backend::Backend {
 public:
  explicit TimingBackend(backend::Backend& inner) : inner_(inner) {}

  /// Seconds spent per op name ("matmul m=8", "attention", ...) since the last reset().
  [[nodiscard]] const std::map<std::string, double>& seconds_by_op() const { return seconds_; }
  void reset() { seconds_.clear(); }

  [[nodiscard]] std::string_view name() const override { return inner_.name(); }
  backend::DeviceArena& arena() override { return inner_.arena(); }
  core::Result<std::unique_ptr<backend::PinnedBuffer>> allocate_pinned(std::size_t bytes) override {
    return inner_.allocate_pinned(bytes);
  }
  std::unique_ptr<backend::Event> create_event() override { return inner_.create_event(); }
  void record(backend::Queue queue, backend::Event& event) override { inner_.record(queue, event); }
  void wait(backend::Queue queue, const backend::Event& event) override {
    inner_.wait(queue, event);
  }
  [[nodiscard]] bool query(const backend::Event& event) override { return inner_.query(event); }
  void synchronize(const backend::Event& event) override { inner_.synchronize(event); }
  void synchronize(backend::Queue queue) override { inner_.synchronize(queue); }
  void copy(backend::Queue queue, void* dst, const void* src, std::size_t bytes,
            backend::CopyKind kind) override {
    inner_.copy(queue, dst, src, bytes, kind);
  }

  void embedding(backend::Weight table, const std::int32_t* ids, int num_tokens, int hidden,
                 float* out) override {
    timed("embedding", [&] { inner_.embedding(table, ids, num_tokens, hidden, out); });
  }
  void matmul(const backend::MatmulArgs& args) override {
    // Keyed by rows: decode (few rows) and prefill (many) take different kernels.
    timed("matmul m=" + std::to_string(args.m), [&] { inner_.matmul(args); });
  }
  void rms_norm(const float* x, backend::Weight weight, float eps, int rows, int hidden,
                float* y) override {
    timed("rms_norm", [&] { inner_.rms_norm(x, weight, eps, rows, hidden, y); });
  }
  void rope(float* x, const std::int32_t* positions, int num_tokens, int num_heads, int head_dim,
            const backend::RopeParams& params) override {
    timed("rope", [&] { inner_.rope(x, positions, num_tokens, num_heads, head_dim, params); });
  }
  void write_kv(const float* k, const float* v, int layer, const backend::KvLayout& layout,
                const backend::TokenBatch& batch) override {
    timed("write_kv", [&] { inner_.write_kv(k, v, layer, layout, batch); });
  }
  void attention(const backend::AttentionArgs& args) override {
    timed("attention", [&] { inner_.attention(args); });
  }
  void silu_mul(const float* gate, const float* up, std::size_t count, float* out) override {
    timed("silu_mul", [&] { inner_.silu_mul(gate, up, count, out); });
  }
  void add(const float* a, const float* b, std::size_t count, float* out) override {
    timed("add", [&] { inner_.add(a, b, count, out); });
  }
  void gather_rows(const float* x, const std::int32_t* rows, int num_rows, int width,
                   float* out) override {
    timed("gather_rows", [&] { inner_.gather_rows(x, rows, num_rows, width, out); });
  }

 private:
  template <typename Op>
  void timed(const std::string& op, Op&& run) {
    const auto start = std::chrono::steady_clock::now();
    run();
    seconds_[op] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  backend::Backend& inner_;
  std::map<std::string, double> seconds_;
};

}  // namespace aegaeon::bench
