// Runs a Llama-family model's forward pass on a backend with continuous batching: one call
// processes new tokens of several sequences of different lengths (prefill chunks and decode
// tokens alike), writing their K/V into the paged cache and returning next-token logits.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/result.hpp"
#include "gpu/backend/backend.hpp"
#include "gpu/memory/kv_cache.hpp"
#include "gpu/model/model_weights.hpp"

namespace aegaeon::model {

class Sampler;

/// New tokens of one sequence, appended after the tokens already in its KV cache.
struct SequenceChunk {
  memory::SeqId seq = 0;
  std::span<const std::int32_t> tokens;
  bool every_row = false;  ///< logits after every token (scoring a prompt), not only the last
};

/// Capacity limits of one forward call (they size the scratch region).
struct RunnerLimits {
  int max_batch_tokens = 256;
  int max_batch_seqs = 32;
};

/// Next-token logits of a batch: one row per chunk (after its last token), or one per token of
/// an every_row chunk, in chunk order.
struct BatchLogits {
  int vocab_size = 0;
  std::vector<float> values;     ///< [rows, vocab_size]
  std::vector<std::size_t> first;  ///< per chunk, its first row

  /// Logits after chunk `i`'s last token.
  [[nodiscard]] std::span<const float> row(std::size_t i) const {
    return at((i + 1 < first.size() ? first[i + 1] : rows()) - 1);
  }
  /// Logits after token `j` of chunk `i` (an every_row chunk; j = 0 for the others).
  [[nodiscard]] std::span<const float> row(std::size_t i, std::size_t j) const { return at(first[i] + j); }
  [[nodiscard]] std::size_t rows() const { return values.size() / static_cast<std::size_t>(vocab_size); }
  [[nodiscard]] std::span<const float> at(std::size_t r) const {
    return {values.data() + r * static_cast<std::size_t>(vocab_size), static_cast<std::size_t>(vocab_size)};
  }
};

/// Draws each sequence's next token from its logits row: samplers[i] with the tokens it has
/// generated so far, generated[i] (for the penalties). Returns one token per row.
std::vector<std::int32_t> sample_batch(const BatchLogits& logits,
                                       std::span<Sampler* const> samplers,
                                       std::span<const std::span<const std::int32_t>> generated);

/// Executes prefill and decode steps of one resident model. Owned by the gpu_worker thread.
class ModelRunner {
 public:
  /// Scratch bytes (activations and per-step metadata) a runner with `limits` needs.
  static std::size_t scratch_bytes(const ModelConfig& config, const RunnerLimits& limits);

  /// Binds `weights` and `kv` (which must match the model's shape) with `scratch` of at least
  /// scratch_bytes(); kInvalidArgument/kResourceExhausted otherwise.
  static core::Result<std::unique_ptr<ModelRunner>> create(backend::Backend& backend,
                                                           const ModelWeights& weights,
                                                           memory::KvCache& kv,
                                                           const backend::DeviceRegion& scratch,
                                                           RunnerLimits limits);

  /// Runs the chunks' tokens through the model (sequences may have any lengths and cached
  /// contexts), appends their K/V and returns each chunk's last-token logits (every token's for
  /// an every_row chunk). Sequences must
  /// exist in the KV cache and not be swapped out; a swap-in in flight is waited for.
  core::Result<BatchLogits> forward(std::span<const SequenceChunk> chunks);

  /// Prefill of whole prompts (new sequences or continuations); same as forward().
  core::Result<BatchLogits> prefill(std::span<const SequenceChunk> prompts) {
    return forward(prompts);
  }

  /// One decode step: appends `tokens[i]` to `seqs[i]` and returns next-token logits.
  core::Result<BatchLogits> decode_step(std::span<const memory::SeqId> seqs,
                                        std::span<const std::int32_t> tokens);

  /// The model configuration.
  [[nodiscard]] const ModelConfig& config() const { return weights_.config; }

 private:
  ModelRunner(backend::Backend& backend, const ModelWeights& weights, memory::KvCache& kv,
              backend::DeviceRegion scratch, RunnerLimits limits);

  backend::Backend& backend_;
  ModelWeights weights_;
  memory::KvCache& kv_;
  backend::RegionCursor scratch_;
  RunnerLimits limits_;
  std::unique_ptr<backend::Event> done_;
};

}  // namespace aegaeon::model
