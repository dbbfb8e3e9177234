// DeviceWorker on the backend interface: the arena carved once, weight slots filled by chunked
// copies on the copy queue (switches and prefetches), runners bound once per (model, slot), and
// sequences with their samplers over per-shape paged KV caches sharing one KV space.
#include "gpu/worker/device_worker.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "gpu/backend/cpu/cpu_backend.hpp"
#include "gpu/backend/cuda/cuda_backend.hpp"
#include "gpu/memory/kv_cache.hpp"
#include "gpu/memory/kv_space.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_runner.hpp"
#include "gpu/model/model_weights.hpp"

namespace aegaeon::worker {

namespace {

using core::ErrorCode;

// A switch copies in chunks of this size so other copies (KV swaps) can be queued between
// them on a real copy engine, and a chunk stays within one DMA-friendly transfer.
constexpr std::size_t kSwitchChunkBytes = std::size_t{8} << 20;
// DeviceArena::carve's default alignment; every region may lose up to this much to padding.
constexpr std::size_t kCarveAlignment = 256;
constexpr int kBlockTokens = memory::KvCache::kBlockTokens;

std::size_t align_up(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

int blocks_for(int tokens) { return (tokens + kBlockTokens - 1) / kBlockTokens; }

memory::KvShape shape_of(const model::ModelConfig& c) {
  return memory::KvShape{c.num_layers, c.num_kv_heads, c.head_dim};
}

bool same_shape(const memory::KvShape& a, const memory::KvShape& b) {
  return a.num_layers == b.num_layers && a.kv_heads == b.kv_heads && a.head_dim == b.head_dim;
}

// log sum exp(logits): log softmax(logits)[t] = logits[t] - this. At temperature 1, before
// penalties and truncation, that is the model's own probability of t (what OpenAI's logprobs
// report), independent of the sampling knobs.
double log_normalizer(std::span<const float> logits) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  return max_logit + std::log(sum);
}

// The `count` most likely tokens, best first (ties: lower id first, as argmax picks).
std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, double log_norm, int count) {
  std::vector<std::int32_t> ids(logits.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(i);
  const auto n = std::min(static_cast<std::size_t>(count), ids.size());
  auto better = [&](std::int32_t a, std::int32_t b) {
    const float la = logits[static_cast<std::size_t>(a)];
    const float lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(), better);
  std::vector<TokenLogprob> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back({ids[i], static_cast<float>(logits[static_cast<std::size_t>(ids[i])] - log_norm)});
  }
  return out;
}

// Rows of logits a prompt being scored brings to the host per forward (~40 MB of floats for a
// 150k-token vocabulary).
constexpr std::size_t kScoredChunkTokens = 64;

// A prompt's scores (SamplingParams::prompt_logprobs), gathered chunk by chunk.
struct PromptScores {
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top;

  // Scores the prompt tokens that follow the `count` rows of chunk `chunk` in `logits`, whose
  // first token is the prompt's token `offset`: each row gives the next token's logprob.
  void add(const model::BatchLogits& logits, std::size_t chunk, std::size_t count, const PrefillItem& item,
           std::size_t offset) {
    const int alternatives = item.sampling.prompt_logprobs;
    for (std::size_t j = 0; j < count && offset + j + 1 < item.prompt.size(); ++j) {
      const auto row = logits.row(chunk, j);
      const double log_norm = log_normalizer(row);
      const auto next = static_cast<std::size_t>(item.prompt[offset + j + 1]);
      logprobs.push_back(static_cast<float>(row[next] - log_norm));
      if (alternatives > 0) top.push_back(top_logprobs(row, log_norm, alternatives));
    }
  }
};

std::string seq_name(SeqId seq) { return "sequence " + std::to_string(seq); }

// One request's state on this device.
struct Sequence {
  Sequence(ModelId m, std::size_t c, model::Sampler s) : model(m), cache(c), sampler(std::move(s)) {}

  ModelId model;
  std::size_t cache;  // index into the worker's per-shape caches
  model::Sampler sampler;
  core::StopConditions stop;
  std::int32_t produced = 0;  // tokens sampled for this generation (stop.max_tokens counts them)
  std::vector<std::int32_t> generated;  // for the penalties (a resumed request's earlier tokens too)
  std::int32_t last_token = -1;
  // Imported KV the worker holds on the host until swap_in places it (like a swapped-out one).
  bool parked = false;
  std::int32_t parked_tokens = 0;
  core::HostBytes host_bytes;  // parked KV, then kept alive while its copy-in runs
  std::unique_ptr<backend::Event> import_done;  // the copy-in of imported KV
};

// One KV cache per distinct KV shape, all taking blocks from the same KV space.
struct ShapeCache {
  memory::KvShape shape;
  std::unique_ptr<memory::KvCache> kv;
};

// A weights region and the model in it.
struct WeightSlot {
  backend::DeviceRegion region;
  std::optional<ModelId> model;
  std::unique_ptr<backend::Event> copied;  // the last copy into the region
  bool adopted = false;                    // activated since its copy (false: an unused prefetch)
  std::uint64_t last_active = 0;           // activation clock, for least-recently-active eviction
};

class DeviceWorkerImpl final : public DeviceWorker {
 public:
  DeviceWorkerImpl(DeviceWorkerOptions options, std::shared_ptr<const HostModelCache> cache,
                   std::unique_ptr<backend::Backend> backend)
      : options_(std::move(options)), cache_(std::move(cache)), backend_(std::move(backend)) {}

  ~DeviceWorkerImpl() override {
    // Copies may still read host bytes of imported sequences or write the regions.
    backend_->synchronize(backend::Queue::kCopy);
  }

  // Carves the arena and builds caches and runners; everything the hot path uses is made here.
  core::Result<void> init(std::uint64_t kv_region_bytes, std::size_t slot_bytes, std::size_t slots,
                          std::size_t scratch_bytes, model::RunnerLimits limits) {
    auto& arena = backend_->arena();
    auto kv_region = arena.carve(kv_region_bytes, "kv");
    if (!kv_region.ok()) return kv_region.error();
    kv_region_ = *kv_region;
    for (std::size_t i = 0; i < slots; ++i) {
      auto region = arena.carve(slot_bytes, "weights-" + std::to_string(i));
      if (!region.ok()) return region.error();
      slots_.push_back(WeightSlot{*region, std::nullopt, backend_->create_event(), false, 0});
    }
    auto scratch = arena.carve(scratch_bytes, "scratch");
    if (!scratch.ok()) return scratch.error();
    scratch_region_ = *scratch;

    const std::int32_t n = cache_->size();
    std::vector<memory::KvShape> shapes;
    std::vector<std::size_t> block_sizes;
    model_cache_.resize(static_cast<std::size_t>(n));
    for (ModelId m = 0; m < n; ++m) {
      const memory::KvShape shape = shape_of(cache_->host_model(m).config);
      std::size_t index = shapes.size();
      for (std::size_t c = 0; c < shapes.size(); ++c) {
        if (same_shape(shapes[c], shape)) index = c;
      }
      if (index == shapes.size()) {
        shapes.push_back(shape);
        block_sizes.push_back(memory::KvCache::block_bytes(shape));
      }
      model_cache_[static_cast<std::size_t>(m)] = index;
    }
    kv_space_ = std::make_shared<memory::KvSpace>(*backend_, kv_region_, block_sizes);
    for (std::size_t c = 0; c < shapes.size(); ++c) {
      auto kv = memory::KvCache::create(*backend_, shapes[c], kv_space_, options_.host_kv_blocks);
      if (!kv.ok()) return kv.error().with_context("kv shape " + std::to_string(c));
      caches_.push_back(ShapeCache{shapes[c], std::move(kv).value()});
    }
    // Runners are bound once per (model, slot): a switch only picks one.
    for (ModelId m = 0; m < n; ++m) {
      const model::HostModel& host = cache_->host_model(m);
      for (const WeightSlot& slot : slots_) {
        auto runner = model::ModelRunner::create(
            *backend_, model::bind_weights(host, slot.region),
            *caches_[model_cache_[static_cast<std::size_t>(m)]].kv, scratch_region_, limits);
        if (!runner.ok()) return runner.error().with_context("model '" + cache_->info(m).name + "'");
        runners_.push_back(std::move(runner).value());
      }
    }
    compute_mark_ = backend_->create_event();
    copy_mark_ = backend_->create_event();
    return core::ok();
  }

  [[nodiscard]] std::optional<ModelId> resident_model() const override { return active_; }

  [[nodiscard]] std::vector<ModelId> resident_models() const override {
    std::vector<ModelId> out;
    for (const WeightSlot& slot : slots_) {
      if (slot.model) out.push_back(*slot.model);
    }
    return out;
  }

  core::Result<SwitchStats> switch_model(ModelId model) override {
    AEGAEON_TRY(check_model(model, "switch_model"));
    AEGAEON_TRY(check_loaded(model, "switch_model"));
    SwitchStats stats;
    if (active_ == model) {
      stats.resident = resident_models();
      return stats;
    }
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::size_t> held = slot_of(model);
    if (held && !slots_[*held].adopted) {
      // A prefetch: only its copy matters, nothing more is copied.
      backend_->synchronize(*slots_[*held].copied);
      stats.from_prefetch = true;
      ++counters_.switches_adopted;
      ++counters_.switches;
    } else if (!held) {
      held = victim_slot(/*spare_active=*/false);
      if (slots_[*held].model == active_) active_.reset();  // its region is overwritten from here on
      copy_weights(model, slots_[*held]);
      backend_->synchronize(*slots_[*held].copied);
      stats.bytes_copied = cache_->host_model(model).weight_bytes;
      ++counters_.switches;
    }
    WeightSlot& slot = slots_[*held];
    slot.adopted = true;
    slot.last_active = ++activations_;
    active_ = model;
    active_slot_ = *held;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    stats.resident = resident_models();
    return stats;
  }

  core::Result<void> prefetch(ModelId model) override {
    AEGAEON_TRY(check_model(model, "prefetch"));
    AEGAEON_TRY(check_loaded(model, "prefetch"));
    if (slots_.size() < 2 || slot_of(model)) return core::ok();  // a hint ignored
    WeightSlot& slot = slots_[victim_slot(/*spare_active=*/true)];
    copy_weights(model, slot);
    return core::ok();
  }

  void forget_model(ModelId model) override {
    const std::optional<std::size_t> held = slot_of(model);
    if (!held) return;
    // A copy may still read the host memory about to go; the region keeps its bytes, but a
    // reloaded model may bring new ones.
    backend_->synchronize(*slots_[*held].copied);
    slots_[*held].model.reset();
    slots_[*held].adopted = false;
    if (active_ == model) active_.reset();
  }

  core::Result<std::vector<SampledToken>> prefill(std::span<const PrefillItem> items) override {
    if (items.empty()) return std::vector<SampledToken>{};
    if (!active_) {
      return core::error(ErrorCode::kInvalidArgument,
                         "prefill: no model is active (call switch_model first)");
    }
    const ModelId model = *active_;
    const ModelInfo& info = cache_->info(model);
    const std::size_t cache_index = model_cache_[static_cast<std::size_t>(model)];
    memory::KvCache& kv = *caches_[cache_index].kv;
    std::unordered_set<SeqId> ids;
    for (const PrefillItem& item : items) {
      if (seqs_.count(item.seq) != 0 || !ids.insert(item.seq).second) {
        return core::error(ErrorCode::kAlreadyExists,
                           "prefill: " + seq_name(item.seq) + " already exists");
      }
      if (item.prompt.empty()) {
        return core::error(ErrorCode::kInvalidArgument,
                           "prefill: " + seq_name(item.seq) + " has an empty prompt");
      }
      if (static_cast<std::int64_t>(item.prompt.size()) >= info.max_context_tokens) {
        return core::error(ErrorCode::kOutOfRange,
                           "prefill: " + seq_name(item.seq) + " has a prompt of " +
                               std::to_string(item.prompt.size()) + " tokens; model '" +
                               info.name + "' allows " +
                               std::to_string(info.max_context_tokens) +
                               " tokens of context including the generated ones");
      }
    }
    // Reserve every prompt's blocks first, so running out of KV fails before any compute.
    auto undo = [&](std::size_t added) {
      for (std::size_t i = 0; i < added; ++i) kv.remove_sequence(items[i].seq);
    };
    for (std::size_t i = 0; i < items.size(); ++i) {
      auto added = kv.add_sequence(items[i].seq);
      auto reserved = added.ok() ? kv.reserve(items[i].seq,
                                              static_cast<int>(items[i].prompt.size()))
                                 : added;
      if (!reserved.ok()) {
        undo(i + (added.ok() ? 1 : 0));
        return reserved.error().with_context("prefill of " + seq_name(items[i].seq));
      }
    }
    model::ModelRunner& runner = runner_for(model);
    // Prompts go through in forwards of at most max_batch_tokens / max_batch_seqs, a long
    // prompt in several chunks; a sequence is sampled by the forward holding its last token. A
    // prompt to score (prompt_logprobs) goes in chunks of at most kScoredChunkTokens, as each of
    // its tokens brings a row of logits to the host.
    std::vector<std::size_t> offsets(items.size(), 0);
    std::vector<std::vector<float>> last_logits(items.size());
    std::vector<PromptScores> scores(items.size());
    std::vector<model::SequenceChunk> chunks;
    std::vector<std::size_t> owners;
    std::size_t finished = 0;
    while (finished < items.size()) {
      chunks.clear();
      owners.clear();
      int budget = options_.max_batch_tokens;
      for (std::size_t i = 0; i < items.size() && budget > 0 &&
                              static_cast<int>(chunks.size()) < options_.max_batch_seqs;
           ++i) {
        const std::size_t left = items[i].prompt.size() - offsets[i];
        if (left == 0) continue;
        const bool scored = items[i].sampling.prompt_logprobs >= 0;
        const std::size_t take = std::min({left, static_cast<std::size_t>(budget),
                                           scored ? kScoredChunkTokens : left});
        chunks.push_back({items[i].seq, std::span(items[i].prompt).subspan(offsets[i], take), scored});
        owners.push_back(i);
        budget -= static_cast<int>(take);
      }
      auto logits = runner.forward(chunks);
      if (!logits.ok()) {
        undo(items.size());
        return logits.error().with_context("prefill");
      }
      for (std::size_t j = 0; j < chunks.size(); ++j) {
        const std::size_t i = owners[j];
        if (chunks[j].every_row) scores[i].add(*logits, j, chunks[j].tokens.size(), items[i], offsets[i]);
        offsets[i] += chunks[j].tokens.size();
        if (offsets[i] == items[i].prompt.size()) {
          auto row = logits->row(j);
          last_logits[i].assign(row.begin(), row.end());
          ++finished;
        }
      }
    }
    std::vector<SampledToken> out;
    out.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      const auto& prompt = items[i].prompt;
      const auto resumed = static_cast<std::size_t>(std::clamp<std::int32_t>(
          items[i].resumed_tokens, 0, static_cast<std::int32_t>(prompt.size())));
      const std::span<const std::int32_t> generated(prompt.end() - static_cast<std::ptrdiff_t>(resumed), prompt.end());
      auto [it, inserted] = seqs_.try_emplace(items[i].seq, model, cache_index,
                                              model::Sampler(items[i].sampling, generated, prompt, items[i].constraint));
      (void)inserted;
      it->second.stop = items[i].stop;
      it->second.generated.assign(generated.begin(), generated.end());
      out.push_back(sample(items[i].seq, it->second, last_logits[i]));
      out.back().prompt_logprobs = std::move(scores[i].logprobs);
      out.back().prompt_top_logprobs = std::move(scores[i].top);
    }
    return out;
  }

  core::Result<std::vector<SampledToken>> decode_step(std::span<const SeqId> seqs) override {
    if (seqs.empty()) return std::vector<SampledToken>{};
    if (!active_) {
      return core::error(ErrorCode::kInvalidArgument,
                         "decode_step: no model is active (call switch_model first)");
    }
    const ModelId model = *active_;
    const ModelInfo& info = cache_->info(model);
    memory::KvCache& kv = *caches_[model_cache_[static_cast<std::size_t>(model)]].kv;
    std::unordered_set<SeqId> ids;
    std::vector<Sequence*> states;
    states.reserve(seqs.size());
    for (SeqId id : seqs) {
      auto found = find(id, "decode_step");
      if (!found.ok()) return found.error();
      Sequence& s = **found;
      if (!ids.insert(id).second) {
        return core::error(ErrorCode::kInvalidArgument,
                           "decode_step: " + seq_name(id) + " is listed twice");
      }
      if (s.model != model) {
        return core::error(ErrorCode::kInvalidArgument,
                           "decode_step: " + seq_name(id) + " belongs to model '" +
                               cache_->info(s.model).name + "' but '" + info.name +
                               "' is active");
      }
      if (!on_device(id, s)) {
        return core::error(ErrorCode::kUnavailable,
                           "decode_step: " + seq_name(id) + " is swapped out (swap_in first)");
      }
      if (kv.num_tokens(id) + 1 > info.max_context_tokens) {
        return core::error(ErrorCode::kOutOfRange,
                           "decode_step: " + seq_name(id) + " reached the context limit of " +
                               std::to_string(info.max_context_tokens) + " tokens of model '" +
                               info.name + "'");
      }
      states.push_back(&s);
    }
    // Reserve the new token's slot for all first: a full cache fails before any compute.
    for (SeqId id : seqs) {
      auto reserved = kv.reserve(id, kv.num_tokens(id) + 1);
      if (!reserved.ok()) return reserved.error().with_context("decode_step of " + seq_name(id));
    }
    for (Sequence* s : states) {
      if (s->import_done) backend_->wait(backend::Queue::kCompute, *s->import_done);
    }
    model::ModelRunner& runner = runner_for(model);
    std::vector<SampledToken> out;
    out.reserve(seqs.size());
    const std::size_t batch = static_cast<std::size_t>(
        std::max(1, std::min(options_.max_batch_seqs, options_.max_batch_tokens)));
    std::vector<std::int32_t> tokens;
    for (std::size_t begin = 0; begin < seqs.size(); begin += batch) {
      const std::size_t end = std::min(seqs.size(), begin + batch);
      tokens.clear();
      for (std::size_t i = begin; i < end; ++i) tokens.push_back(states[i]->last_token);
      auto logits = runner.decode_step(seqs.subspan(begin, end - begin), tokens);
      if (!logits.ok()) return logits.error().with_context("decode_step");
      for (std::size_t i = begin; i < end; ++i) {
        out.push_back(sample(seqs[i], *states[i], logits->row(i - begin)));
      }
    }
    return out;
  }

  core::Result<void> swap_out(SeqId seq) override {
    auto found = find(seq, "swap_out");
    if (!found.ok()) return found.error();
    Sequence& s = **found;
    if (s.parked) {
      return core::error(ErrorCode::kInvalidArgument,
                         "swap_out: " + seq_name(seq) + " is already on the host");
    }
    memory::KvCache& kv = *caches_[s.cache].kv;
    const std::size_t blocks = kv.contains(seq) ? kv.block_table(seq).size() : 0;
    AEGAEON_TRY(kv.swap_out(seq));
    counters_.kv_swap_bytes += blocks * kv.layout().block_bytes();
    return core::ok();
  }

  core::Result<void> swap_in(SeqId seq) override {
    auto found = find(seq, "swap_in");
    if (!found.ok()) return found.error();
    Sequence& s = **found;
    if (!s.parked && !on_host_slab(seq, s)) {
      return core::error(ErrorCode::kInvalidArgument,
                         "swap_in: " + seq_name(seq) + " is not swapped out");
    }
    if (s.parked) return place_parked(seq, s);
    memory::KvCache& kv = *caches_[s.cache].kv;
    AEGAEON_TRY(kv.swap_in(seq));
    counters_.kv_swap_bytes += kv.block_table(seq).size() * kv.layout().block_bytes();
    return core::ok();
  }

  [[nodiscard]] bool kv_ready(SeqId seq) override {
    auto it = seqs_.find(seq);
    if (it == seqs_.end() || !on_device(seq, it->second)) return false;
    Sequence& s = it->second;
    if (s.import_done) {
      if (!backend_->query(*s.import_done)) return false;
      s.import_done.reset();
      s.host_bytes = {};
    }
    return caches_[s.cache].kv->is_ready(seq);
  }

  core::Result<KvExport> export_sequence(SeqId seq) override {
    auto found = find(seq, "export_sequence");
    if (!found.ok()) return found.error();
    Sequence& s = **found;
    KvExport out;
    out.seq = seq;
    out.model = s.model;
    if (s.parked) {
      out.tokens = s.parked_tokens;
      out.bytes = std::move(s.host_bytes);
    } else {
      memory::KvCache& kv = *caches_[s.cache].kv;
      if (!on_device(seq, s)) {
        return core::error(ErrorCode::kInvalidArgument,
                           "export_sequence: " + seq_name(seq) +
                               " is swapped out to this device's host slab (swap_in first)");
      }
      const std::size_t block_bytes = kv.layout().block_bytes();
      const int tokens = kv.num_tokens(seq);
      const auto& table = kv.block_table(seq);
      const auto blocks = static_cast<std::size_t>(blocks_for(tokens));
      out.tokens = tokens;
      std::vector<std::byte> bytes(blocks * block_bytes);
      // The copies must see every K/V write issued so far (and follow any copy-in, in order).
      backend_->record(backend::Queue::kCompute, *compute_mark_);
      backend_->wait(backend::Queue::kCopy, *compute_mark_);
      for (std::size_t b = 0; b < blocks; ++b) {
        backend_->copy(backend::Queue::kCopy, bytes.data() + b * block_bytes,
                       static_cast<const std::byte*>(kv.layout().base) +
                           static_cast<std::size_t>(table[b]) * block_bytes,
                       block_bytes, backend::CopyKind::kDeviceToHost);
      }
      backend_->record(backend::Queue::kCopy, *copy_mark_);
      backend_->synchronize(*copy_mark_);
      out.bytes = core::HostBytes(std::move(bytes));
      kv.remove_sequence(seq);
    }
    counters_.kv_transfer_bytes += out.bytes.size();
    out.stop = std::move(s.stop);
    out.produced = s.produced;
    out.last_token = s.last_token;
    out.generated = std::move(s.generated);
    out.sampler = std::move(s.sampler);
    if (s.import_done) backend_->synchronize(*s.import_done);  // host_bytes may still be read
    seqs_.erase(seq);
    return out;
  }

  core::Result<void> import_sequence(KvExport kv) override {
    AEGAEON_TRY(check_model(kv.model, "import_sequence"));
    if (seqs_.count(kv.seq) != 0) {
      return core::error(ErrorCode::kAlreadyExists,
                         "import_sequence: " + seq_name(kv.seq) + " already exists");
    }
    const ModelInfo& info = cache_->info(kv.model);
    const std::size_t cache_index = model_cache_[static_cast<std::size_t>(kv.model)];
    const std::size_t block_bytes = caches_[cache_index].kv->layout().block_bytes();
    const std::size_t expected = static_cast<std::size_t>(blocks_for(kv.tokens)) * block_bytes;
    if (kv.tokens < 0 || kv.bytes.size() != expected) {
      return core::error(ErrorCode::kInvalidArgument,
                         "import_sequence: " + seq_name(kv.seq) + " brings " +
                             std::to_string(kv.bytes.size()) + " bytes for " +
                             std::to_string(kv.tokens) + " tokens; model '" + info.name +
                             "' needs " + std::to_string(expected));
    }
    if (kv.last_token < 0 || kv.last_token >= info.vocab_size) {
      return core::error(ErrorCode::kInvalidArgument,
                         "import_sequence: " + seq_name(kv.seq) + ": last_token " +
                             std::to_string(kv.last_token) + " outside the vocabulary of " +
                             std::to_string(info.vocab_size));
    }
    if (!kv.sampler) {
      return core::error(ErrorCode::kInvalidArgument, "import_sequence: " + seq_name(kv.seq) + " comes without its sampler");
    }
    auto [it, inserted] = seqs_.try_emplace(kv.seq, kv.model, cache_index, std::move(*kv.sampler));
    (void)inserted;
    Sequence& s = it->second;
    s.stop = std::move(kv.stop);
    s.produced = kv.produced;
    s.generated = std::move(kv.generated);
    s.last_token = kv.last_token;
    s.parked = true;
    s.parked_tokens = kv.tokens;
    s.host_bytes = std::move(kv.bytes);
    counters_.kv_transfer_bytes += s.host_bytes.size();
    // Straight onto the device when its blocks fit; otherwise parked on the host until swap_in
    // (an import never fails for lack of device blocks).
    if (caches_[cache_index].kv->num_free_blocks() >= blocks_for(kv.tokens)) {
      if (auto placed = place_parked(kv.seq, s); !placed.ok() && placed.error().code != ErrorCode::kResourceExhausted) {
        return placed.error();
      }
    }
    return core::ok();
  }

  void release(SeqId seq) override {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return;
    Sequence& s = it->second;
    // A copy-in may still read the host bytes about to be freed.
    if (s.import_done) backend_->synchronize(*s.import_done);
    caches_[s.cache].kv->remove_sequence(seq);
    seqs_.erase(it);
  }

  [[nodiscard]] bool contains(SeqId seq) const override { return seqs_.count(seq) != 0; }

  [[nodiscard]] bool holds_device_kv(SeqId seq) const override {
    auto it = seqs_.find(seq);
    return it != seqs_.end() && on_device(seq, it->second);
  }

  [[nodiscard]] std::vector<SeqId> device_sequences() const override {
    std::vector<SeqId> out;
    for (const auto& [id, s] : seqs_) {
      if (on_device(id, s)) out.push_back(id);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  [[nodiscard]] std::int32_t context_tokens(SeqId seq) const override {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return -1;
    if (it->second.parked) return it->second.parked_tokens;
    return caches_[it->second.cache].kv->num_tokens(seq);
  }

  [[nodiscard]] std::int64_t kv_capacity_tokens(ModelId model) const override {
    if (model < 0 || model >= cache_->size()) return 0;
    return static_cast<std::int64_t>(
               caches_[model_cache_[static_cast<std::size_t>(model)]].kv->num_blocks()) *
           kBlockTokens;
  }

  [[nodiscard]] double kv_usage() const override {
    double used = 0.0;
    for (const ShapeCache& c : caches_) {
      used += static_cast<double>(c.kv->num_used_blocks()) * static_cast<double>(c.kv->layout().block_bytes());
    }
    return std::min(used / static_cast<double>(kv_space_->bytes()), 1.0);
  }

  [[nodiscard]] WorkerCounters counters() const override { return counters_; }

  [[nodiscard]] ArenaLayout arena_layout() const override {
    return ArenaLayout{kv_region_.bytes, slots_[0].region.bytes, slots_.size(), scratch_region_.bytes};
  }

 private:
  core::Result<void> check_model(ModelId model, const char* what) const {
    if (model < 0 || model >= cache_->size()) {
      return core::error(ErrorCode::kNotFound, std::string(what) + ": model id " +
                                                   std::to_string(model) + " is not served (0.." +
                                                   std::to_string(cache_->size() - 1) + ")");
    }
    return core::ok();
  }

  core::Result<void> check_loaded(ModelId model, const char* what) const {
    if (!cache_->loaded(model)) {
      return core::error(ErrorCode::kFailedPrecondition, std::string(what) + ": model '" + cache_->info(model).name +
                                                             "' is unloaded (its weights left host memory)");
    }
    return core::ok();
  }

  core::Result<Sequence*> find(SeqId seq, const char* what) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) {
      return core::error(ErrorCode::kNotFound,
                         std::string(what) + ": " + seq_name(seq) + " is unknown on this device");
    }
    return &it->second;
  }

  // True when the sequence holds device blocks (resident, or being swapped/copied in).
  bool on_device(SeqId id, const Sequence& s) const {
    if (s.parked) return false;
    const memory::KvCache& kv = *caches_[s.cache].kv;
    return kv.contains(id) && !kv.block_table(id).empty();
  }

  // True when the sequence's KV is in (or on its way to) its cache's host slab.
  bool on_host_slab(SeqId id, const Sequence& s) {
    if (s.parked) return false;
    const auto residency = caches_[s.cache].kv->residency(id);
    return residency == memory::KvResidency::kSwappedOut ||
           residency == memory::KvResidency::kSwappingOut;
  }

  // The slot holding `model`, if any.
  [[nodiscard]] std::optional<std::size_t> slot_of(ModelId model) const {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].model == model) return i;
    }
    return std::nullopt;
  }

  // The slot a new model's weights go to: a free one, else an unadopted prefetch's, else the
  // least recently active; `spare_active` keeps the active model's slot out of the choice.
  [[nodiscard]] std::size_t victim_slot(bool spare_active) const {
    std::optional<std::size_t> best;
    auto rank = [&](const WeightSlot& slot) {
      if (!slot.model) return std::uint64_t{0};
      if (!slot.adopted) return std::uint64_t{1};
      return slot.last_active + 2;
    };
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (spare_active && slots_[i].model && slots_[i].model == active_) continue;
      if (!best || rank(slots_[i]) < rank(slots_[*best])) best = i;
    }
    return best.value_or(0);
  }

  // Copies a parked sequence's host bytes into fresh device blocks on the copy queue.
  core::Result<void> place_parked(SeqId seq, Sequence& s) {
    memory::KvCache& kv = *caches_[s.cache].kv;
    AEGAEON_TRY(kv.add_sequence(seq));
    auto reserved = kv.reserve(seq, s.parked_tokens);
    if (!reserved.ok()) {
      kv.remove_sequence(seq);
      return reserved.error().with_context("placing " + seq_name(seq));
    }
    const std::size_t block_bytes = kv.layout().block_bytes();
    const auto& table = kv.block_table(seq);
    // Compute that used these blocks before they were freed must be done first.
    backend_->record(backend::Queue::kCompute, *compute_mark_);
    backend_->wait(backend::Queue::kCopy, *compute_mark_);
    for (std::size_t b = 0; b < table.size(); ++b) {
      backend_->copy(backend::Queue::kCopy,
                     static_cast<std::byte*>(kv.layout().base) +
                         static_cast<std::size_t>(table[b]) * block_bytes,
                     s.host_bytes.data() + b * block_bytes, block_bytes,
                     backend::CopyKind::kHostToDevice);
    }
    if (!s.import_done) s.import_done = backend_->create_event();
    backend_->record(backend::Queue::kCopy, *s.import_done);
    kv.set_num_tokens(seq, s.parked_tokens);
    s.parked = false;
    return core::ok();
  }

  // Starts copying `model`'s host weights into `slot` in chunks; its `copied` event marks the end.
  void copy_weights(ModelId model, WeightSlot& slot) {
    const model::HostModel& host = cache_->host_model(model);
    const backend::DeviceRegion& region = slot.region;
    // Compute issued so far may still read the region's previous weights.
    backend_->record(backend::Queue::kCompute, *compute_mark_);
    backend_->wait(backend::Queue::kCopy, *compute_mark_);
    const std::byte* src = host.buffer->data();
    for (std::size_t offset = 0; offset < host.weight_bytes; offset += kSwitchChunkBytes) {
      const std::size_t bytes = std::min(kSwitchChunkBytes, host.weight_bytes - offset);
      backend_->copy(backend::Queue::kCopy, region.at(offset), src + offset, bytes,
                     backend::CopyKind::kHostToDevice);
    }
    backend_->record(backend::Queue::kCopy, *slot.copied);
    counters_.weights_copy_bytes += host.weight_bytes;
    slot.model = model;
    slot.adopted = false;
  }

  model::ModelRunner& runner_for(ModelId model) {
    return *runners_[static_cast<std::size_t>(model) * slots_.size() + active_slot_];
  }

  // Samples the sequence's next token and decides whether it ends there: the one place a
  // generation's end (other than a stop string or a cancel) is decided.
  SampledToken sample(SeqId id, Sequence& s, std::span<const float> logits) {
    if (s.stop.max_tokens <= 0) return SampledToken{id, SampledToken::kNone, 0, {}, core::FinishReason::kLength};
    // Too early to stop: the stop tokens cannot be drawn (vLLM's min_tokens).
    const bool may_stop = s.produced >= s.stop.min_tokens;
    const std::int32_t token = s.sampler.sample(logits, s.generated, s.stop.stop_token_ids, may_stop);
    s.generated.push_back(token);
    s.last_token = token;
    ++s.produced;
    const double log_norm = log_normalizer(logits);
    SampledToken out{id, token,
                     static_cast<float>(logits[static_cast<std::size_t>(token)] - log_norm), {}};
    if (const int top = s.sampler.params().top_logprobs; top > 0) {
      out.top_logprobs = top_logprobs(logits, log_norm, top);
    }
    const auto& stops = s.stop.stop_token_ids;
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
      out.finish = core::FinishReason::kStop;
    } else if (s.produced >= s.stop.max_tokens) {
      out.finish = core::FinishReason::kLength;
    }
    return out;
  }

  DeviceWorkerOptions options_;
  std::shared_ptr<const HostModelCache> cache_;
  std::unique_ptr<backend::Backend> backend_;  // destroyed after everything below
  backend::DeviceRegion kv_region_;
  std::vector<WeightSlot> slots_;
  backend::DeviceRegion scratch_region_;
  std::shared_ptr<memory::KvSpace> kv_space_;
  std::vector<ShapeCache> caches_;
  std::vector<std::size_t> model_cache_;  // model → index in caches_
  std::vector<std::unique_ptr<model::ModelRunner>> runners_;  // [model * slots + slot]
  std::optional<ModelId> active_;
  std::size_t active_slot_ = 0;
  std::uint64_t activations_ = 0;
  std::unique_ptr<backend::Event> compute_mark_, copy_mark_;
  std::unordered_map<SeqId, Sequence> seqs_;
  WorkerCounters counters_;
};

}  // namespace

std::string device_for(const std::string& configured, int index) {
  if (configured != "cuda") return configured;
  const int gpus = std::max(1, backend::cuda::cuda_device_count());
  return "cuda:" + std::to_string(index % gpus);
}

core::Result<std::unique_ptr<DeviceWorker>> DeviceWorker::create(
    DeviceWorkerOptions options, std::shared_ptr<const HostModelCache> cache) {
  const bool cuda = options.device != "cpu";
  if (cuda) {
    if (auto parsed = backend::cuda::parse_cuda_device(options.device); !parsed.ok()) {
      return core::error(ErrorCode::kInvalidArgument,
                         "device_worker: device '" + options.device + "': expected \"cpu\", \"cuda\" or \"cuda:N\"");
    }
  }
  if (cache == nullptr || cache->size() == 0) {
    return core::error(ErrorCode::kInvalidArgument, "device_worker: the host model cache is empty");
  }
  if (options.threads < 1 || options.max_batch_tokens < 1 || options.max_batch_seqs < 1 ||
      options.host_kv_blocks < 0 || options.weight_slots < 0) {
    return core::error(ErrorCode::kInvalidArgument,
                       "device_worker: threads, max_batch_tokens and max_batch_seqs must be "
                       "positive and host_kv_blocks and weight_slots non-negative");
  }
  const model::RunnerLimits limits{options.max_batch_tokens, options.max_batch_seqs};
  std::size_t max_weights = 0;
  std::size_t scratch = 0;
  std::size_t max_block = 0;
  for (ModelId m = 0; m < cache->size(); ++m) {
    const model::HostModel& host = cache->host_model(m);
    max_weights = std::max(max_weights, host.weight_bytes);
    scratch = std::max(scratch, model::ModelRunner::scratch_bytes(host.config, limits));
    const memory::KvShape s = shape_of(host.config);
    max_block = std::max(max_block, backend::KvLayout{nullptr, s.num_layers, s.kv_heads,
                                                      s.head_dim, kBlockTokens}
                                        .block_bytes());
  }
  const std::size_t slot_bytes = align_up(max_weights, kCarveAlignment);
  const auto slots = static_cast<std::size_t>(options.weight_slots == 0 ? cache->size() : options.weight_slots);
  const std::size_t scratch_region = align_up(scratch, kCarveAlignment);
  const std::size_t fixed = slots * slot_bytes + scratch_region + (slots + 3) * kCarveAlignment;
  const std::size_t kv_min = std::max<std::size_t>(options.kv_bytes, max_block);
  const std::size_t need = fixed + kv_min;
  const std::size_t arena = options.arena_bytes == 0 ? need : options.arena_bytes;
  if (arena < need) {
    return core::error(
        ErrorCode::kResourceExhausted,
        "device_worker: arena of " + std::to_string(arena) + " bytes cannot hold KV (" +
            std::to_string(kv_min) + " bytes) + " + std::to_string(slots) + " weight slots (" +
            std::to_string(slot_bytes) + " bytes each) + scratch (" +
            std::to_string(scratch_region) + " bytes): needs " + std::to_string(need) + " bytes");
  }
  core::Result<std::unique_ptr<backend::Backend>> backend = core::error(ErrorCode::kInternal, "no backend");
  if (cuda) {
    backend::cuda::CudaBackendOptions cuda_options;
    cuda_options.arena_bytes = arena;
    backend = backend::cuda::make_cuda_backend(options.device, cuda_options);
  } else if (auto cpu = backend::cpu::CpuBackend::create({arena, options.threads}); cpu.ok()) {
    backend = std::unique_ptr<backend::Backend>(std::move(cpu).value());
  } else {
    backend = cpu.error();
  }
  if (!backend.ok()) return backend.error().with_context("device_worker: device '" + options.device + "'");
  if (cuda) AEGAEON_TRY(cache->pin_for_cuda(**backend));
  // Everything the other regions leave goes to KV (rounded down to the carve alignment).
  const std::size_t kv_region = (arena - fixed) / kCarveAlignment * kCarveAlignment;
  auto worker = std::make_unique<DeviceWorkerImpl>(std::move(options), std::move(cache),
                                                   std::move(backend).value());
  AEGAEON_TRY(worker->init(kv_region, slot_bytes, slots, scratch_region, limits));
  return std::unique_ptr<DeviceWorker>(std::move(worker));
}

}  // namespace aegaeon::worker
