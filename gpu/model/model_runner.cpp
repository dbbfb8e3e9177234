#include "gpu/model/model_runner.hpp"

#include <cmath>
#include <string>

#include "gpu/model/sampler.hpp"

namespace aegaeon::model {

using core::ErrorCode;

namespace {

// Per-step activation sizes in floats.
struct Sizes {
  std::size_t hidden, q, kv, inter, vocab;
  explicit Sizes(const ModelConfig& c)
      : hidden(static_cast<std::size_t>(c.hidden_size)),
        q(static_cast<std::size_t>(c.num_heads) * static_cast<std::size_t>(c.head_dim)),
        kv(static_cast<std::size_t>(c.num_kv_heads) * static_cast<std::size_t>(c.head_dim)),
        inter(static_cast<std::size_t>(c.intermediate_size)),
        vocab(static_cast<std::size_t>(c.vocab_size)) {}
};

constexpr std::size_t kAlign = 64;
std::size_t padded(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

}  // namespace

std::vector<std::int32_t> sample_batch(const BatchLogits& logits,
                                       std::span<Sampler* const> samplers,
                                       std::span<const std::span<const std::int32_t>> generated) {
  std::vector<std::int32_t> out;
  out.reserve(samplers.size());
  for (std::size_t i = 0; i < samplers.size(); ++i) {
    out.push_back(samplers[i]->sample(logits.row(i), i < generated.size()
                                                         ? generated[i]
                                                         : std::span<const std::int32_t>{}));
  }
  return out;
}

std::size_t ModelRunner::scratch_bytes(const ModelConfig& config, const RunnerLimits& limits) {
  const Sizes s(config);
  const auto t = static_cast<std::size_t>(limits.max_batch_tokens);
  const auto n = static_cast<std::size_t>(limits.max_batch_seqs);
  const std::size_t max_blocks =
      n * static_cast<std::size_t>(
              (config.max_position_embeddings + memory::KvCache::kBlockTokens - 1) /
                  memory::KvCache::kBlockTokens +
              1);
  std::size_t bytes = 0;
  // Metadata: ids, token_seq, token_pos, scored rows (t each), offsets (n), block tables.
  bytes += 4 * padded(t * 4) + padded(n * 4) + padded(max_blocks * 4);
  // Activations: x, xn, attn-out/tmp (hidden); q, attn (q); k, v (kv); gate, up (inter).
  bytes += 3 * padded(t * s.hidden * 4) + 2 * padded(t * s.q * 4) + 2 * padded(t * s.kv * 4) +
           2 * padded(t * s.inter * 4);
  // Last rows and logits.
  bytes += padded(n * s.hidden * 4) + padded(n * s.vocab * 4);
  return bytes;
}

core::Result<std::unique_ptr<ModelRunner>> ModelRunner::create(
    backend::Backend& backend, const ModelWeights& weights, memory::KvCache& kv,
    const backend::DeviceRegion& scratch, RunnerLimits limits) {
  const ModelConfig& c = weights.config;
  const backend::KvLayout& layout = kv.layout();
  if (layout.num_layers != c.num_layers || layout.kv_heads != c.num_kv_heads ||
      layout.head_dim != c.head_dim) {
    return core::error(ErrorCode::kInvalidArgument,
                       "model runner: the KV cache's shape (layers, kv_heads, head_dim) does not "
                       "match config.json");
  }
  if (limits.max_batch_tokens <= 0 || limits.max_batch_seqs <= 0) {
    return core::error(ErrorCode::kInvalidArgument, "model runner: limits must be positive");
  }
  const std::size_t need = scratch_bytes(c, limits);
  if (scratch.bytes < need) {
    return core::error(ErrorCode::kResourceExhausted,
                       "model runner: scratch region '" + scratch.label + "' has " +
                           std::to_string(scratch.bytes) + " bytes, needs " + std::to_string(need));
  }
  return std::unique_ptr<ModelRunner>(new ModelRunner(backend, weights, kv, scratch, limits));
}

ModelRunner::ModelRunner(backend::Backend& backend, const ModelWeights& weights,
                         memory::KvCache& kv, backend::DeviceRegion scratch, RunnerLimits limits)
    : backend_(backend),
      weights_(weights),
      kv_(kv),
      scratch_(std::move(scratch)),
      limits_(limits),
      done_(backend.create_event()) {}

core::Result<BatchLogits> ModelRunner::decode_step(std::span<const memory::SeqId> seqs,
                                                   std::span<const std::int32_t> tokens) {
  if (seqs.size() != tokens.size()) {
    return core::error(ErrorCode::kInvalidArgument,
                       "decode_step: " + std::to_string(seqs.size()) + " sequences but " +
                           std::to_string(tokens.size()) + " tokens");
  }
  std::vector<SequenceChunk> chunks;
  chunks.reserve(seqs.size());
  for (std::size_t i = 0; i < seqs.size(); ++i) chunks.push_back({seqs[i], tokens.subspan(i, 1)});
  return forward(chunks);
}

core::Result<BatchLogits> ModelRunner::forward(std::span<const SequenceChunk> chunks) {
  const ModelConfig& c = weights_.config;
  const Sizes s(c);
  const auto num_seqs = static_cast<int>(chunks.size());
  if (num_seqs == 0 || num_seqs > limits_.max_batch_seqs) {
    return core::error(ErrorCode::kOutOfRange, "forward: batch of " + std::to_string(num_seqs) +
                                                   " sequences, expected 1.." +
                                                   std::to_string(limits_.max_batch_seqs));
  }
  // Host-side metadata: token ids, owning sequence, positions, block tables.
  std::vector<std::int32_t> ids, token_seq, token_pos, offsets, scored_rows, tables;
  for (int i = 0; i < num_seqs; ++i) {
    const SequenceChunk& chunk = chunks[static_cast<std::size_t>(i)];
    for (int j = 0; j < i; ++j) {
      if (chunks[static_cast<std::size_t>(j)].seq == chunk.seq) {
        return core::error(ErrorCode::kInvalidArgument,
                           "forward: sequence " + std::to_string(chunk.seq) +
                               " appears twice in one batch");
      }
    }
    if (!kv_.contains(chunk.seq)) {
      return core::error(ErrorCode::kNotFound,
                         "forward: sequence " + std::to_string(chunk.seq) + " is not in the KV cache");
    }
    if (chunk.tokens.empty()) {
      return core::error(ErrorCode::kInvalidArgument,
                         "forward: sequence " + std::to_string(chunk.seq) + " has no new tokens");
    }
    for (std::int32_t token : chunk.tokens) {
      if (token < 0 || token >= c.vocab_size) {
        return core::error(ErrorCode::kInvalidArgument,
                           "forward: sequence " + std::to_string(chunk.seq) + ": token id " + std::to_string(token) +
                               " outside the vocabulary of " + std::to_string(c.vocab_size));
      }
    }
    const auto residency = kv_.residency(chunk.seq);
    if (residency == memory::KvResidency::kSwappedOut ||
        residency == memory::KvResidency::kSwappingOut) {
      return core::error(ErrorCode::kUnavailable,
                         "forward: sequence " + std::to_string(chunk.seq) + " is swapped out");
    }
    const int start = kv_.num_tokens(chunk.seq);
    for (std::size_t j = 0; j < chunk.tokens.size(); ++j) {
      ids.push_back(chunk.tokens[j]);
      token_seq.push_back(i);
      token_pos.push_back(start + static_cast<int>(j));
    }
    if (chunk.every_row) {
      for (std::size_t j = chunk.tokens.size(); j > 0; --j) scored_rows.push_back(static_cast<std::int32_t>(ids.size() - j));
    } else {
      scored_rows.push_back(static_cast<std::int32_t>(ids.size()) - 1);
    }
  }
  const auto num_tokens = static_cast<int>(ids.size());
  if (num_tokens > limits_.max_batch_tokens) {
    return core::error(ErrorCode::kOutOfRange, "forward: " + std::to_string(num_tokens) +
                                                   " tokens exceed max_batch_tokens " +
                                                   std::to_string(limits_.max_batch_tokens));
  }
  // Reserve KV for all sequences before touching anything, so a failure leaves no trace.
  for (const SequenceChunk& chunk : chunks) {
    AEGAEON_TRY(kv_.reserve(chunk.seq, kv_.num_tokens(chunk.seq) +
                                           static_cast<int>(chunk.tokens.size())));
    kv_.wait_ready(chunk.seq);
  }
  for (const SequenceChunk& chunk : chunks) {
    offsets.push_back(static_cast<std::int32_t>(tables.size()));
    const auto& table = kv_.block_table(chunk.seq);
    tables.insert(tables.end(), table.begin(), table.end());
  }

  scratch_.reset();
  const auto t = static_cast<std::size_t>(num_tokens);
  const auto n = static_cast<std::size_t>(num_seqs);
  auto take_floats = [&](std::size_t count) { return scratch_.take(count * sizeof(float)); };
  auto take_ints = [&](std::size_t count) { return scratch_.take(std::max<std::size_t>(count, 1) * 4); };
  auto d_ids = take_ints(t);
  auto d_seq = take_ints(t);
  auto d_pos = take_ints(t);
  auto d_offsets = take_ints(n);
  auto d_scored = take_ints(scored_rows.size());
  auto d_tables = take_ints(tables.size());
  auto x = take_floats(t * s.hidden);
  auto xn = take_floats(t * s.hidden);
  auto tmp = take_floats(t * s.hidden);
  auto q = take_floats(t * s.q);
  auto attn = take_floats(t * s.q);
  auto k = take_floats(t * s.kv);
  auto v = take_floats(t * s.kv);
  auto gate = take_floats(t * s.inter);
  auto up = take_floats(t * s.inter);
  // Rows through the final norm and the LM head at a time: every scored row in one go, unless a
  // chunk asked for every row; then as many as the scratch holds.
  const std::size_t group = scored_rows.size() > n ? static_cast<std::size_t>(limits_.max_batch_seqs) : n;
  auto last = take_floats(group * s.hidden);
  auto logits = take_floats(group * s.vocab);
  for (const auto* r : {&d_ids, &d_seq, &d_pos, &d_offsets, &d_scored, &d_tables, &x, &xn, &tmp,
                        &q, &attn, &k, &v, &gate, &up, &last, &logits}) {
    if (!r->ok()) return r->error();
  }
  auto upload = [&](void* dst, const std::vector<std::int32_t>& src) {
    backend_.copy(backend::Queue::kCompute, dst, src.data(), src.size() * 4,
                  backend::CopyKind::kHostToDevice);
  };
  upload(*d_ids, ids);
  upload(*d_seq, token_seq);
  upload(*d_pos, token_pos);
  upload(*d_offsets, offsets);
  upload(*d_scored, scored_rows);
  upload(*d_tables, tables);

  auto f = [](core::Result<void*>& r) { return static_cast<float*>(*r); };
  auto i32 = [](core::Result<void*>& r) { return static_cast<const std::int32_t*>(*r); };
  backend::TokenBatch batch{num_tokens, num_seqs, i32(d_seq), i32(d_pos), i32(d_tables),
                            i32(d_offsets)};
  const backend::KvLayout& layout = kv_.layout();
  const int h = c.hidden_size;
  const int qn = c.num_heads * c.head_dim;
  const int kvn = c.num_kv_heads * c.head_dim;
  const int inter = c.intermediate_size;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  backend_.embedding(weights_.embed_tokens, i32(d_ids), num_tokens, h, f(x));
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[static_cast<std::size_t>(l)];
    backend_.rms_norm(f(x), w.input_norm, c.rms_norm_eps, num_tokens, h, f(xn));
    backend_.matmul({f(xn), w.q_proj, w.q_bias, f(q), num_tokens, qn, h});
    backend_.matmul({f(xn), w.k_proj, w.k_bias, f(k), num_tokens, kvn, h});
    backend_.matmul({f(xn), w.v_proj, w.v_bias, f(v), num_tokens, kvn, h});
    if (c.qk_norm()) {  // Qwen3: every head's query and key RMS-normalized, in place
      backend_.rms_norm(f(q), w.q_norm, c.rms_norm_eps, num_tokens * c.num_heads, c.head_dim, f(q));
      backend_.rms_norm(f(k), w.k_norm, c.rms_norm_eps, num_tokens * c.num_kv_heads, c.head_dim, f(k));
    }
    backend_.rope(f(q), i32(d_pos), num_tokens, c.num_heads, c.head_dim, c.rope);
    backend_.rope(f(k), i32(d_pos), num_tokens, c.num_kv_heads, c.head_dim, c.rope);
    backend_.write_kv(f(k), f(v), l, layout, batch);
    backend_.attention({f(q), f(attn), c.num_heads, l, scale, layout, batch, c.attention_window(l)});
    backend_.matmul({f(attn), w.o_proj, w.o_bias, f(tmp), num_tokens, h, qn});
    backend_.add(f(x), f(tmp), t * s.hidden, f(x));
    backend_.rms_norm(f(x), w.post_norm, c.rms_norm_eps, num_tokens, h, f(xn));
    backend_.matmul({f(xn), w.gate_proj, {}, f(gate), num_tokens, inter, h});
    backend_.matmul({f(xn), w.up_proj, {}, f(up), num_tokens, inter, h});
    backend_.silu_mul(f(gate), f(up), t * s.inter, f(gate));
    backend_.matmul({f(gate), w.down_proj, {}, f(tmp), num_tokens, h, inter});
    backend_.add(f(x), f(tmp), t * s.hidden, f(x));
  }
  BatchLogits out;
  out.vocab_size = c.vocab_size;
  out.values.resize(scored_rows.size() * s.vocab);
  for (std::size_t i = 0, row = 0; i < chunks.size(); ++i) {
    out.first.push_back(row);
    row += chunks[i].every_row ? chunks[i].tokens.size() : 1;
  }
  for (std::size_t done = 0; done < scored_rows.size(); done += group) {
    const auto rows = static_cast<int>(std::min(group, scored_rows.size() - done));
    backend_.gather_rows(f(x), i32(d_scored) + done, rows, h, f(last));
    backend_.rms_norm(f(last), weights_.final_norm, c.rms_norm_eps, rows, h, f(last));
    backend_.matmul({f(last), weights_.lm_head, {}, f(logits), rows, c.vocab_size, h});
    backend_.copy(backend::Queue::kCompute, out.values.data() + done * s.vocab, *logits,
                  static_cast<std::size_t>(rows) * s.vocab * sizeof(float), backend::CopyKind::kDeviceToHost);
  }
  backend_.record(backend::Queue::kCompute, *done_);
  backend_.synchronize(*done_);
  for (const SequenceChunk& chunk : chunks) {
    kv_.set_num_tokens(chunk.seq, kv_.num_tokens(chunk.seq) + static_cast<int>(chunk.tokens.size()));
  }
  return out;
}

}  // namespace aegaeon::model
