#include "gpu/memory/kv_cache.hpp"

#include <algorithm>
#include <cassert>
#include <string>

namespace aegaeon::memory {

using core::ErrorCode;

std::size_t KvCache::block_bytes(KvShape shape) {
  return backend::KvLayout{nullptr, shape.num_layers, shape.kv_heads, shape.head_dim, kBlockTokens}.block_bytes();
}

core::Result<std::unique_ptr<KvCache>> KvCache::create(backend::Backend& backend, KvShape shape,
                                                       const backend::DeviceRegion& region,
                                                       int host_blocks) {
  if (shape.num_layers <= 0 || shape.kv_heads <= 0 || shape.head_dim <= 0) {
    return core::error(ErrorCode::kInvalidArgument,
                       "kv cache: layers, kv_heads and head_dim must be positive");
  }
  const std::size_t sizes[] = {block_bytes(shape)};
  return create(backend, shape, std::make_shared<KvSpace>(backend, region, sizes), host_blocks);
}

core::Result<std::unique_ptr<KvCache>> KvCache::create(backend::Backend& backend, KvShape shape,
                                                       std::shared_ptr<KvSpace> space, int host_blocks) {
  if (shape.num_layers <= 0 || shape.kv_heads <= 0 || shape.head_dim <= 0 || host_blocks < 0) {
    return core::error(ErrorCode::kInvalidArgument,
                       "kv cache: layers, kv_heads and head_dim must be positive");
  }
  backend::KvLayout layout{space->base(), shape.num_layers, shape.kv_heads, shape.head_dim, kBlockTokens};
  const std::size_t bytes = layout.block_bytes();
  if (space->bytes() / bytes == 0) {
    return core::error(ErrorCode::kResourceExhausted,
                       "kv cache: the KV region (" + std::to_string(space->bytes()) +
                           " bytes) is smaller than one block (" + std::to_string(bytes) + " bytes)");
  }
  auto slab = backend.allocate_pinned(bytes * static_cast<std::size_t>(host_blocks));
  if (!slab.ok()) return slab.error();
  return std::unique_ptr<KvCache>(new KvCache(backend, layout, std::move(space), std::move(slab).value(), host_blocks));
}

KvCache::KvCache(backend::Backend& backend, backend::KvLayout layout, std::shared_ptr<KvSpace> space,
                 std::unique_ptr<backend::PinnedBuffer> host_slab, int host_blocks)
    : backend_(backend),
      layout_(layout),
      space_(std::move(space)),
      num_blocks_(static_cast<int>(space_->bytes() / layout.block_bytes())),
      host_slab_(std::move(host_slab)),
      compute_mark_(backend.create_event()) {
  // The host free list is a stack popped from the back: hand out low ids first.
  for (int b = host_blocks - 1; b >= 0; --b) host_free_.push_back(b);
}

KvCache::~KvCache() {
  // Copies may still read or write the host slab; let them finish before it is freed.
  backend_.synchronize(backend::Queue::kCopy);
}

int KvCache::num_free_blocks() const {
  return static_cast<int>(space_->free_bytes() / layout_.block_bytes());
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
  // A swap-in may still be writing these blocks; reuse must wait for its event.
  give_blocks(std::move(s.blocks), std::move(s.event));
  // Host blocks are only touched by copies, which run in order on the copy queue.
  for (std::int32_t b : s.host_blocks) host_free_.push_back(b);
  seqs_.erase(it);
}

core::Result<std::vector<std::int32_t>> KvCache::take_blocks(int count) {
  auto blocks = space_->take(layout_.block_bytes(), count);
  if (blocks.ok()) used_blocks_ += count;
  return blocks;
}

void KvCache::give_blocks(std::vector<std::int32_t> blocks, std::unique_ptr<backend::Event> copy_done) {
  used_blocks_ -= static_cast<int>(blocks.size());
  space_->give(layout_.block_bytes(), std::move(blocks), std::move(copy_done));
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
  give_blocks(std::move(s.blocks), std::move(freed_event));
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
