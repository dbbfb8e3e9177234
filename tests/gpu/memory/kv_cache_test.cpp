// Paged KV cache bookkeeping and asynchronous swap on the real CPU backend.
#include "gpu/memory/kv_cache.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "gpu/backend/cpu/cpu_backend.hpp"

namespace aegaeon::memory {
namespace {

struct Fixture {
  std::unique_ptr<backend::cpu::CpuBackend> backend;
  std::unique_ptr<KvCache> kv;
};

Fixture make(int device_blocks, int host_blocks) {
  Fixture f;
  f.backend = std::move(backend::cpu::CpuBackend::create({std::size_t{8} << 20, 1})).value();
  const KvShape shape{2, 2, 8};
  const backend::KvLayout probe{nullptr, 2, 2, 8, 16};
  auto region = f.backend->arena().carve(probe.block_bytes() * static_cast<std::size_t>(device_blocks), "kv");
  EXPECT_TRUE(region.ok());
  auto kv = KvCache::create(*f.backend, shape, *region, host_blocks);
  EXPECT_TRUE(kv.ok());
  f.kv = std::move(kv).value();
  return f;
}

float* block_data(KvCache& kv, std::int32_t block) {
  return reinterpret_cast<float*>(static_cast<std::byte*>(kv.layout().base) +
                                  static_cast<std::size_t>(block) * kv.layout().block_bytes());
}

TEST(KvCacheTest, LayoutIsOneContiguousBlockAcrossLayers) {
  auto f = make(4, 0);
  // [layer 2][k/v 2][16 tokens][2 heads][8 dims] floats.
  EXPECT_EQ(f.kv->layout().block_bytes(), 2u * 2 * 16 * 2 * 8 * 4);
  EXPECT_EQ(f.kv->num_blocks(), 4);
}

TEST(KvCacheTest, ReserveGrowsBlockTablesFromTheFreeList) {
  auto f = make(4, 0);
  ASSERT_TRUE(f.kv->add_sequence(1).ok());
  ASSERT_TRUE(f.kv->add_sequence(2).ok());
  EXPECT_EQ(f.kv->add_sequence(1).error().code, core::ErrorCode::kAlreadyExists);
  ASSERT_TRUE(f.kv->reserve(1, 16).ok());
  EXPECT_EQ(f.kv->block_table(1).size(), 1u);
  ASSERT_TRUE(f.kv->reserve(1, 17).ok());
  EXPECT_EQ(f.kv->block_table(1).size(), 2u);
  ASSERT_TRUE(f.kv->reserve(2, 20).ok());
  EXPECT_EQ(f.kv->num_free_blocks(), 0);
  auto full = f.kv->reserve(1, 33);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, core::ErrorCode::kResourceExhausted);
  EXPECT_EQ(f.kv->block_table(1).size(), 2u);  // nothing partially allocated
  f.kv->remove_sequence(2);
  EXPECT_EQ(f.kv->num_free_blocks(), 2);
  ASSERT_TRUE(f.kv->reserve(1, 64).ok());
  // All four distinct blocks.
  auto table = f.kv->block_table(1);
  std::sort(table.begin(), table.end());
  EXPECT_EQ(table, (std::vector<std::int32_t>{0, 1, 2, 3}));
}

TEST(KvCacheTest, SwapOutAndInRestoresBytesIntoNewBlocks) {
  auto f = make(3, 4);
  ASSERT_TRUE(f.kv->add_sequence(7).ok());
  ASSERT_TRUE(f.kv->reserve(7, 30).ok());
  f.kv->set_num_tokens(7, 30);
  const auto original_table = f.kv->block_table(7);
  const std::size_t floats = f.kv->layout().block_bytes() / sizeof(float);
  std::vector<std::vector<float>> contents;
  for (std::size_t i = 0; i < original_table.size(); ++i) {
    float* data = block_data(*f.kv, original_table[i]);
    for (std::size_t j = 0; j < floats; ++j) data[j] = static_cast<float>(i * 100000 + j);
    contents.emplace_back(data, data + floats);
  }
  ASSERT_TRUE(f.kv->swap_out(7).ok());
  EXPECT_EQ(f.kv->num_free_blocks(), 3);
  EXPECT_EQ(f.kv->num_free_host_blocks(), 2);
  EXPECT_FALSE(f.kv->reserve(7, 31).ok());  // swapped out: not usable
  // Another sequence takes the blocks and scribbles on them (compute waits for the swap copy).
  ASSERT_TRUE(f.kv->add_sequence(8).ok());
  ASSERT_TRUE(f.kv->reserve(8, 48).ok());
  for (auto b : f.kv->block_table(8)) std::memset(block_data(*f.kv, b), 0, f.kv->layout().block_bytes());
  f.kv->remove_sequence(8);
  ASSERT_TRUE(f.kv->swap_in(7).ok());
  f.kv->wait_ready(7);
  EXPECT_TRUE(f.kv->is_ready(7));
  EXPECT_EQ(f.kv->residency(7), KvResidency::kResident);
  EXPECT_EQ(f.kv->num_tokens(7), 30);
  const auto& table = f.kv->block_table(7);
  ASSERT_EQ(table.size(), contents.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    const float* data = block_data(*f.kv, table[i]);
    EXPECT_EQ(std::vector<float>(data, data + floats), contents[i]) << "block " << i;
  }
  EXPECT_EQ(f.kv->num_free_host_blocks(), 4);
}

TEST(KvCacheTest, SwapOutFailsCleanlyWhenTheHostSlabIsFull) {
  auto f = make(4, 1);
  ASSERT_TRUE(f.kv->add_sequence(1).ok());
  ASSERT_TRUE(f.kv->reserve(1, 40).ok());
  auto result = f.kv->swap_out(1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, core::ErrorCode::kResourceExhausted);
  EXPECT_EQ(f.kv->residency(1), KvResidency::kResident);
  EXPECT_EQ(f.kv->block_table(1).size(), 3u);
  EXPECT_EQ(f.kv->swap_in(1).error().code, core::ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace aegaeon::memory
