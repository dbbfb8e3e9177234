#include "gpu/memory/kv_cache.hpp"

#include <algorithm>
#include <cassert>
#include <string>

namespace aegaeon::memory {

using core::ErrorCode;

core::Result<std::unique_ptr<KvCache>> KvCache::create(backend::Backend& backend, KvShape shape,
                                                       const backend::DeviceRegion& region,
                                                       int host_blocks) {
  if (shape.num_layers <= 0 || shape.kv_heads <= 0 || shape.head_dim <= 0 || host_blocks < 0) {
    return core::error(ErrorCode::kInvalidArgument,
                       "kv cache: layers, kv_heads and head_dim must be positive");
  }
  backend::KvLayout layout{region.data, shape.num_layers, shape.kv_heads, shape.head_dim,
                           kBlockTokens};
  const std::size_t block_bytes = layout.block_bytes();
  const auto num_blocks = static_cast<int>(region.bytes / block_bytes);
  if (num_blocks == 0) {
    return core::error(ErrorCode::kResourceExhausted,
                       "kv cache: region '" + region.label + "' (" + std::to_string(region.bytes) +
                           " bytes) is smaller than one block (" + std::to_string(block_bytes) +
                           " bytes)");
  }
  auto slab = backend.allocate_pinned(block_bytes * static_cast<std::size_t>(host_blocks));
  if (!slab.ok()) return slab.error();
  return std::unique_ptr<KvCache>(
      new KvCache(backend, layout, num_blocks, std::move(slab).value(), host_blocks));
}

KvCache::KvCache(backend::Backend& backend, backend::KvLayout layout, int num_blocks,
                 std::unique_ptr<backend::PinnedBuffer> host_slab, int host_blocks)
    : backend_(backend),
      layout_(layout),
      num_blocks_(num_blocks),
      host_slab_(std::move(host_slab)),
      compute_mark_(backend.create_event()) {
  // Free lists are stacks popped from the back: hand out low ids first.
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
  for (int b = host_blocks - 1; b >= 0; --b) host_free_.push_back(b);
}

KvCache::~KvCache() {
  // Copies may still read or write the host slab; let them finish before it is freed.
  backend_.synchronize(backend::Queue::kCopy);
}

int KvCache::num_free_blocks() const {
  std::size_t pending = 0;
  for (const auto& p : pending_free_) pending += p.blocks.size();
  return static_cast<int>(free_.size() + pending);
}

KvCache::Sequence& KvCache::get(SeqId seq) {
  auto it = seqs_.find(seq);
  assert(it != seqs_.end());
  return it->second;
}

const KvCache::Sequence& KvCache::get(SeqId seq) const {
  auto it = seqs_.find(seq);
  assert(it != seqs_.end());
  return it->second;
}

core::Result<void> KvCache::add_sequence(SeqId seq) {
  if (seqs_.count(seq) != 0) {
    return core::error(ErrorCode::kAlreadyExists,
                       "kv cache: sequence " + std::to_string(seq) + " already exists");
  }
  Sequence s;
  s.event = backend_.create_event();
  seqs_.emplace(seq, std::move(s));
  return core::ok();
}

void KvCache::remove_sequence(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  Sequence& s = it->second;
  if (!s.blocks.empty()) {
    // A swap-in may still be writing these blocks; reuse must wait for its event.
    pending_free_.push_back(PendingFree{std::move(s.blocks), std::move(s.event)});
  }
  // Host blocks are only touched by copies, which run in order on the copy queue.
  for (std::int32_t b : s.host_blocks) host_free_.push_back(b);
  seqs_.erase(it);
}

core::Result<std::vector<std::int32_t>> KvCache::take_blocks(int count) {
  if (count > num_free_blocks()) {
    return core::error(ErrorCode::kResourceExhausted,
                       "kv cache: need " + std::to_string(count) + " blocks but " +
                           std::to_string(num_free_blocks()) + " of " +
                           std::to_string(num_blocks_) + " are free");
  }
  // Reclaim in-flight frees first-in first-out until enough blocks are free.
  std::size_t reclaimed = 0;
  while (static_cast<int>(free_.size()) < count && reclaimed < pending_free_.size()) {
    PendingFree& p = pending_free_[reclaimed++];
    backend_.wait(backend::Queue::kCompute, *p.event);
    free_.insert(free_.end(), p.blocks.begin(), p.blocks.end());
  }
  pending_free_.erase(pending_free_.begin(),
                      pending_free_.begin() + static_cast<std::ptrdiff_t>(reclaimed));
  std::vector<std::int32_t> out(free_.end() - count, free_.end());
  std::reverse(out.begin(), out.end());
  free_.resize(free_.size() - static_cast<std::size_t>(count));
  return out;
}

core::Result<void> KvCache::reserve(SeqId seq, int tokens) {
  Sequence& s = get(seq);
  if (s.on_host) {
    return core::error(ErrorCode::kInvalidArgument,
                       "kv cache: sequence " + std::to_string(seq) + " is swapped out");
  }
  const int needed = (tokens + kBlockTokens - 1) / kBlockTokens;
  const int missing = needed - static_cast<int>(s.blocks.size());
  if (missing <= 0) return core::ok();
  auto blocks = take_blocks(missing);
  if (!blocks.ok()) return blocks.error();
  s.blocks.insert(s.blocks.end(), blocks->begin(), blocks->end());
  return core::ok();
}

int KvCache::num_tokens(SeqId seq) const { return get(seq).tokens; }

void KvCache::set_num_tokens(SeqId seq, int tokens) { get(seq).tokens = tokens; }

const std::vector<std::int32_t>& KvCache::block_table(SeqId seq) const { return get(seq).blocks; }

KvResidency KvCache::residency(SeqId seq) {
  Sequence& s = get(seq);
  const bool done = backend_.query(*s.event);
  if (s.on_host) return done ? KvResidency::kSwappedOut : KvResidency::kSwappingOut;
  return done ? KvResidency::kResident : KvResidency::kSwappingIn;
}

core::Result<void> KvCache::swap_out(SeqId seq) {
  Sequence& s = get(seq);
  if (s.on_host) {
    return core::error(ErrorCode::kInvalidArgument,
                       "kv cache: sequence " + std::to_string(seq) + " is already swapped out");
  }
  if (s.blocks.size() > host_free_.size()) {
    return core::error(ErrorCode::kResourceExhausted,
                       "kv cache: host slab has " + std::to_string(host_free_.size()) +
                           " free blocks, sequence " + std::to_string(seq) + " needs " +
                           std::to_string(s.blocks.size()));
  }
  const std::size_t block_bytes = layout_.block_bytes();
  // The copies must see every K/V write issued so far.
  backend_.record(backend::Queue::kCompute, *compute_mark_);
  backend_.wait(backend::Queue::kCopy, *compute_mark_);
  s.host_blocks.clear();
  for (std::int32_t device_block : s.blocks) {
    const std::int32_t host_block = host_free_.back();
    host_free_.pop_back();
    s.host_blocks.push_back(host_block);
    backend_.copy(backend::Queue::kCopy,
                  host_slab_->data() + static_cast<std::size_t>(host_block) * block_bytes,
                  static_cast<std::byte*>(layout_.base) +
                      static_cast<std::size_t>(device_block) * block_bytes,
                  block_bytes, backend::CopyKind::kDeviceToHost);
  }
  backend_.record(backend::Queue::kCopy, *s.event);
  // The device blocks may be handed out again, but compute on them must wait for this copy.
  auto freed_event = backend_.create_event();
  backend_.record(backend::Queue::kCopy, *freed_event);
  pending_free_.push_back(PendingFree{std::move(s.blocks), std::move(freed_event)});
  s.blocks.clear();
  s.on_host = true;
  return core::ok();
}

core::Result<void> KvCache::swap_in(SeqId seq) {
  Sequence& s = get(seq);
  if (!s.on_host) {
    return core::error(ErrorCode::kInvalidArgument,
                       "kv cache: sequence " + std::to_string(seq) + " is not swapped out");
  }
  auto blocks = take_blocks(static_cast<int>(s.host_blocks.size()));
  if (!blocks.ok()) return blocks.error();
  const std::size_t block_bytes = layout_.block_bytes();
  // Earlier compute that read these blocks (before they were freed) must be done first.
  backend_.record(backend::Queue::kCompute, *compute_mark_);
  backend_.wait(backend::Queue::kCopy, *compute_mark_);
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    backend_.copy(backend::Queue::kCopy,
                  static_cast<std::byte*>(layout_.base) +
                      static_cast<std::size_t>((*blocks)[i]) * block_bytes,
                  host_slab_->data() + static_cast<std::size_t>(s.host_blocks[i]) * block_bytes,
                  block_bytes, backend::CopyKind::kHostToDevice);
  }
  backend_.record(backend::Queue::kCopy, *s.event);
  // Later swap-outs into these host blocks are ordered after this read on the copy queue.
  for (std::int32_t b : s.host_blocks) host_free_.push_back(b);
  s.host_blocks.clear();
  s.blocks = std::move(blocks).value();
  s.on_host = false;
  return core::ok();
}

bool KvCache::is_ready(SeqId seq) { return backend_.query(*get(seq).event); }

void KvCache::wait_ready(SeqId seq) { backend_.wait(backend::Queue::kCompute, *get(seq).event); }

}  // namespace aegaeon::memory
