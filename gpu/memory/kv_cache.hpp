// The paged KV cache: 16-token blocks in a device region, each block contiguous across layers
// (`[block][layer][k/v][16][kv_heads][head_dim]`), a block table per sequence, blocks taken from a
// KvSpace (shared with the caches of other KV geometries on the device), and asynchronous swap of a sequence's blocks to and from a pinned host slab with one event per
// sequence (so a step waits only for the sequences it runs).
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "gpu/backend/backend.hpp"
#include "gpu/memory/kv_space.hpp"

namespace aegaeon::memory {

/// Identifies a sequence (a request) in the cache.
using SeqId = std::uint64_t;

/// Where a sequence's KV currently lives.
enum class KvResidency { kResident, kSwappingOut, kSwappedOut, kSwappingIn };

/// Block geometry of one model's KV.
struct KvShape {
  int num_layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
};

/// Paged KV blocks of one model. Owned by the gpu_worker thread; not thread-safe.
class KvCache {
 public:
  static constexpr int kBlockTokens = 16;

  /// Uses all of `region` for device blocks and allocates a pinned host slab of
  /// `host_blocks` blocks for swapped-out sequences.
  static core::Result<std::unique_ptr<KvCache>> create(backend::Backend& backend, KvShape shape,
                                                       const backend::DeviceRegion& region,
                                                       int host_blocks);
  /// Takes device blocks from `space`, which caches of other geometries may share (each must
  /// have been counted in the space's block sizes: block_bytes(shape)).
  static core::Result<std::unique_ptr<KvCache>> create(backend::Backend& backend, KvShape shape,
                                                       std::shared_ptr<KvSpace> space, int host_blocks);
  /// Bytes of one block of `shape`.
  [[nodiscard]] static std::size_t block_bytes(KvShape shape);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  /// Layout the attention ops need (base = the region's start).
  [[nodiscard]] const backend::KvLayout& layout() const { return layout_; }
  /// Device blocks the space holds in all and free for this geometry (blocks still being
  /// swapped out count as free; with several geometries sharing the space, free is its free
  /// bytes over this block size, which fragmentation may make optimistic).
  [[nodiscard]] int num_blocks() const { return num_blocks_; }
  [[nodiscard]] int num_free_blocks() const;
  /// Device blocks this cache's sequences hold.
  [[nodiscard]] int num_used_blocks() const { return used_blocks_; }
  /// Host slab blocks free.
  [[nodiscard]] int num_free_host_blocks() const { return static_cast<int>(host_free_.size()); }

  /// Starts tracking an empty sequence; kAlreadyExists if known.
  core::Result<void> add_sequence(SeqId seq);
  /// Frees all of a sequence's blocks (device and host) and forgets it.
  void remove_sequence(SeqId seq);
  /// True when `seq` is tracked.
  [[nodiscard]] bool contains(SeqId seq) const { return seqs_.count(seq) != 0; }

  /// Grows `seq`'s block table to hold `tokens` tokens; kResourceExhausted when the free list
  /// runs out (nothing is allocated then). The sequence must be resident.
  core::Result<void> reserve(SeqId seq, int tokens);
  /// Tokens whose K/V are written (the sequence's context length).
  [[nodiscard]] int num_tokens(SeqId seq) const;
  /// Records that `tokens` tokens are now written (after a forward pass).
  void set_num_tokens(SeqId seq, int tokens);
  /// The sequence's device block ids, in token order.
  [[nodiscard]] const std::vector<std::int32_t>& block_table(SeqId seq) const;
  /// Where the sequence's KV lives now.
  [[nodiscard]] KvResidency residency(SeqId seq);

  /// Starts copying the sequence's blocks to the host slab once compute issued so far is done;
  /// its device blocks return to the free list (later compute on them waits for the copy).
  /// kResourceExhausted when the host slab is full.
  core::Result<void> swap_out(SeqId seq);
  /// Starts copying a swapped-out sequence back into fresh device blocks (new block ids).
  core::Result<void> swap_in(SeqId seq);
  /// True when the sequence's last swap finished (never blocks).
  [[nodiscard]] bool is_ready(SeqId seq);
  /// Makes later compute wait for the sequence's last swap (does not block the host on CUDA).
  void wait_ready(SeqId seq);

 private:
  struct Sequence {
    std::vector<std::int32_t> blocks;       // device blocks while resident / swapping in
    std::vector<std::int32_t> host_blocks;  // host slab blocks while swapped out
    int tokens = 0;
    bool on_host = false;
    std::unique_ptr<backend::Event> event;  // last swap of this sequence
  };
  KvCache(backend::Backend& backend, backend::KvLayout layout, std::shared_ptr<KvSpace> space,
          std::unique_ptr<backend::PinnedBuffer> host_slab, int host_blocks);
  Sequence& get(SeqId seq);
  const Sequence& get(SeqId seq) const;
  // Takes `count` blocks from the space (see KvSpace::take); kResourceExhausted if they do not fit.
  core::Result<std::vector<std::int32_t>> take_blocks(int count);
  // Gives a sequence's blocks back; `copy_done` marks a copy that still uses them.
  void give_blocks(std::vector<std::int32_t> blocks, std::unique_ptr<backend::Event> copy_done);

  backend::Backend& backend_;
  backend::KvLayout layout_;
  std::shared_ptr<KvSpace> space_;
  int num_blocks_;
  int used_blocks_ = 0;
  std::unique_ptr<backend::PinnedBuffer> host_slab_;
  std::vector<std::int32_t> host_free_;
  std::unique_ptr<backend::Event> compute_mark_;
  std::unordered_map<SeqId, Sequence> seqs_;
};

}  // namespace aegaeon::memory
