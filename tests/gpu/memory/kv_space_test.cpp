// One KV space shared by caches of two KV geometries on the real CPU backend: blocks never
// overlap, space freed by one geometry serves the other, and a full space fails cleanly.
#include "gpu/memory/kv_space.hpp"

#include <gtest/gtest.h>

#include <set>

#include "gpu/backend/cpu/cpu_backend.hpp"
#include "gpu/memory/kv_cache.hpp"

namespace aegaeon::memory {
namespace {

constexpr KvShape kSmall{2, 2, 8};  // 4 KiB blocks (float32)
constexpr KvShape kLarge{3, 2, 8};  // 6 KiB blocks: the space tracks 2 KiB units

struct Shared {
  std::unique_ptr<backend::cpu::CpuBackend> backend;
  std::shared_ptr<KvSpace> space;
  std::unique_ptr<KvCache> small, large;
};

Shared make(std::size_t bytes) {
  Shared f;
  f.backend = std::move(backend::cpu::CpuBackend::create({std::size_t{8} << 20, 1})).value();
  auto region = f.backend->arena().carve(bytes, "kv");
  EXPECT_TRUE(region.ok());
  const std::size_t sizes[] = {KvCache::block_bytes(kSmall), KvCache::block_bytes(kLarge)};
  f.space = std::make_shared<KvSpace>(*f.backend, *region, sizes);
  f.small = std::move(KvCache::create(*f.backend, kSmall, f.space, 16)).value();
  f.large = std::move(KvCache::create(*f.backend, kLarge, f.space, 8)).value();
  return f;
}

// Byte ranges [first, last) a cache's sequence occupies in the region.
void add_ranges(const KvCache& kv, SeqId seq, std::set<std::pair<std::size_t, std::size_t>>& out) {
  const std::size_t size = kv.layout().block_bytes();
  for (std::int32_t b : kv.block_table(seq)) out.insert({static_cast<std::size_t>(b) * size, (b + 1) * size});
}

TEST(KvSpaceTest, GeometriesShareTheRegionWithoutOverlap) {
  auto f = make(48 << 10);  // 12 small or 8 large blocks
  EXPECT_EQ(KvCache::block_bytes(kSmall), 4096u);
  EXPECT_EQ(KvCache::block_bytes(kLarge), 6144u);
  ASSERT_TRUE(f.small->add_sequence(1).ok());
  ASSERT_TRUE(f.large->add_sequence(2).ok());
  ASSERT_TRUE(f.small->add_sequence(3).ok());
  ASSERT_TRUE(f.small->reserve(1, 3 * 16).ok());  // 12 KiB
  ASSERT_TRUE(f.large->reserve(2, 3 * 16).ok());  // 18 KiB
  ASSERT_TRUE(f.small->reserve(3, 2 * 16).ok());  // 8 KiB
  std::set<std::pair<std::size_t, std::size_t>> ranges;
  add_ranges(*f.small, 1, ranges);
  add_ranges(*f.large, 2, ranges);
  add_ranges(*f.small, 3, ranges);
  ASSERT_EQ(ranges.size(), 8u);
  std::size_t end = 0;
  for (const auto& [first, last] : ranges) {
    EXPECT_GE(first, end) << "blocks overlap";
    end = last;
  }
  EXPECT_LE(end, std::size_t{48} << 10);
  EXPECT_EQ(f.space->free_bytes(), (48u << 10) - 38u * 1024);
  EXPECT_EQ(f.small->num_used_blocks(), 5);
  EXPECT_EQ(f.large->num_used_blocks(), 3);
}

TEST(KvSpaceTest, SpaceFreedByOneGeometryServesTheOther) {
  auto f = make(48 << 10);
  ASSERT_TRUE(f.small->add_sequence(1).ok());
  ASSERT_TRUE(f.small->reserve(1, 12 * 16).ok());  // the whole region
  ASSERT_TRUE(f.large->add_sequence(2).ok());
  auto full = f.large->reserve(2, 16);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, core::ErrorCode::kResourceExhausted);
  EXPECT_TRUE(f.large->block_table(2).empty());
  // Swapped out (a copy in flight until the queue drains) or released, the bytes serve the
  // other geometry: 8 blocks of 6 KiB in the 48 KiB.
  ASSERT_TRUE(f.small->swap_out(1).ok());
  ASSERT_TRUE(f.large->reserve(2, 8 * 16).ok());
  EXPECT_EQ(f.space->free_bytes(), 0u);
  f.large->remove_sequence(2);
  ASSERT_TRUE(f.small->swap_in(1).ok());
  EXPECT_EQ(f.small->num_used_blocks(), 12);
}

}  // namespace
}  // namespace aegaeon::memory
