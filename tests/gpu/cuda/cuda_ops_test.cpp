// Every CUDA backend op against the CPU backend on seeded random inputs (tolerances per dtype),
// plus queues, events, batched copies and the KV swap path. Skips without a CUDA device; the
// factory tests run everywhere.
#include <algorithm>
#include <numeric>

#include "gpu/memory/kv_cache.hpp"
#include "tests/gpu/cuda/cuda_test_util.hpp"

namespace aegaeon::backend::cuda {
namespace {

using testing::BackendPair;
using testing::encode;
using testing::random_floats;

constexpr DType kFloatTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

TEST(CudaFactoryTest, ParsesDeviceNames) {
  EXPECT_EQ(*parse_cuda_device("cuda"), 0);
  EXPECT_EQ(*parse_cuda_device("cuda:3"), 3);
  for (const char* bad : {"gpu:0", "cuda:", "cuda:-1", "cuda:1x", "cpu"}) {
    auto parsed = parse_cuda_device(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code, core::ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find("cuda:N"), std::string::npos);
  }
}

TEST(CudaFactoryTest, CreatesOrExplainsWhyNot) {
  CudaBackendOptions options;
  options.arena_bytes = std::size_t{16} << 20;
  auto backend = make_cuda_backend("cuda:0", options);
  if (cuda_device_count() == 0) {
    ASSERT_FALSE(backend.ok());
    EXPECT_EQ(backend.error().code, core::ErrorCode::kUnavailable);
    EXPECT_NE(backend.error().message.find("no CUDA device"), std::string::npos)
        << backend.error().message;
  } else {
    ASSERT_TRUE(backend.ok()) << backend.error().message;
    EXPECT_EQ((*backend)->name(), "cuda:0");
    EXPECT_EQ((*backend)->arena().capacity_bytes(), options.arena_bytes);
  }
  EXPECT_EQ(make_cuda_backend("cuda:x").error().code, core::ErrorCode::kInvalidArgument);
}

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AEGAEON_SKIP_WITHOUT_CUDA();
    pair_ = std::make_unique<BackendPair>();
    ASSERT_TRUE(pair_->ok());
  }
  BackendPair& p() { return *pair_; }
  // A weight buffer of `values` rounded to `dtype`, in both arenas.
  std::pair<Weight, Weight> weight(const std::vector<float>& values, DType dtype) {
    auto b = p().put(encode(values, dtype));
    return {Weight{b.cpu, dtype}, Weight{b.gpu, dtype}};
  }
  std::unique_ptr<BackendPair> pair_;
};

TEST_F(CudaOpsTest, Embedding) {
  const int vocab = 50, hidden = 40, tokens = 9;
  std::vector<std::int32_t> ids = {0, 49, 3, 3, 17, 8, 22, 41, 1};
  auto d_ids = p().put(ids);
  for (DType dtype : kFloatTypes) {
    auto [wc, wg] = weight(random_floats(vocab * hidden, 1), dtype);
    auto out = p().alloc(tokens * hidden * 4);
    p().cpu().embedding(wc, d_ids.c<std::int32_t>(), tokens, hidden, out.c<float>());
    p().gpu().embedding(wg, d_ids.g<std::int32_t>(), tokens, hidden, out.g<float>());
    p().expect_close(out, tokens * hidden, 0.0f, 0.0f, "embedding");
  }
}

TEST_F(CudaOpsTest, MatmulGemvAndCublasPaths) {
  struct Shape {
    int n, k;
  };
  // k = 70 is not a multiple of the GEMV's vector width: the scalar kernel runs.
  for (Shape shape : {Shape{48, 64}, Shape{40, 70}, Shape{96, 256}}) {
    for (int m : {1, 3, 16, 17, 64}) {
      for (DType dtype : kFloatTypes) {
        for (bool with_bias : {false, true}) {
          auto x = p().put(random_floats(static_cast<std::size_t>(m) * shape.k, 2));
          auto [wc, wg] = weight(random_floats(static_cast<std::size_t>(shape.n) * shape.k, 3), dtype);
          auto [bc, bg] = with_bias ? weight(random_floats(shape.n, 4), dtype)
                                    : std::pair<Weight, Weight>{};
          auto y = p().alloc(static_cast<std::size_t>(m) * shape.n * 4);
          p().cpu().matmul({x.c<float>(), wc, bc, y.c<float>(), m, shape.n, shape.k});
          p().gpu().matmul({x.g<float>(), wg, bg, y.g<float>(), m, shape.n, shape.k});
          // The GEMV and F32 cuBLAS paths keep F32 activations; the 16-bit cuBLAS path rounds
          // them to the weight type (one rounding per product, ~2^-8 for BF16, 2^-11 for F16).
          const bool rounded = m > CudaBackend::kGemvMaxRows && dtype != DType::kF32;
          const float abs_tol = !rounded ? 2e-4f : (dtype == DType::kBF16 ? 0.08f : 0.012f);
          SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << shape.n << " k=" << shape.k
                                            << " dtype=" << to_string(dtype)
                                            << " bias=" << with_bias);
          p().expect_close(y, static_cast<std::size_t>(m) * shape.n, abs_tol, 1e-4f, "matmul");
        }
      }
    }
  }
}

TEST_F(CudaOpsTest, RmsNormInPlaceAndOutOfPlace) {
  const int rows = 7, hidden = 300;
  for (DType dtype : kFloatTypes) {
    const auto values = random_floats(rows * hidden, 5, -3.0f, 3.0f);
    auto x = p().put(values);
    auto [wc, wg] = weight(random_floats(hidden, 6, 0.5f, 1.5f), dtype);
    auto y = p().alloc(rows * hidden * 4);
    p().cpu().rms_norm(x.c<float>(), wc, 1e-6f, rows, hidden, y.c<float>());
    p().gpu().rms_norm(x.g<float>(), wg, 1e-6f, rows, hidden, y.g<float>());
    p().expect_close(y, rows * hidden, 1e-5f, 1e-5f, "rms_norm");
    p().cpu().rms_norm(x.c<float>(), wc, 1e-6f, rows, hidden, x.c<float>());
    p().gpu().rms_norm(x.g<float>(), wg, 1e-6f, rows, hidden, x.g<float>());
    p().expect_close(x, rows * hidden, 1e-5f, 1e-5f, "rms_norm in place");
  }
}

TEST_F(CudaOpsTest, RopeMatchesEveryScaling) {
  std::vector<std::int32_t> positions = {0, 1, 2, 15, 16, 255, 1000, 4095};
  const int tokens = static_cast<int>(positions.size());
  auto d_pos = p().put(positions);
  RopeParams none;
  RopeParams linear;
  linear.scaling = RopeScaling::kLinear;
  linear.factor = 4.0f;
  RopeParams llama3;
  llama3.scaling = RopeScaling::kLlama3;
  llama3.theta = 500000.0f;
  llama3.factor = 8.0f;
  llama3.original_max_position = 8192;
  for (const RopeParams& params : {none, linear, llama3}) {
    for (int head_dim : {16, 64, 128}) {
      const int heads = 3;
      auto x = p().put(random_floats(static_cast<std::size_t>(tokens) * heads * head_dim, 7));
      p().cpu().rope(x.c<float>(), d_pos.c<std::int32_t>(), tokens, heads, head_dim, params);
      p().gpu().rope(x.g<float>(), d_pos.g<std::int32_t>(), tokens, heads, head_dim, params);
      SCOPED_TRACE(::testing::Message() << "head_dim=" << head_dim);
      p().expect_close(x, static_cast<std::size_t>(tokens) * heads * head_dim, 2e-5f, 1e-5f,
                       "rope");
    }
  }
}

TEST_F(CudaOpsTest, SiluMulAddGather) {
  const std::size_t count = 100003;  // odd: exercises the grid-stride tail
  auto gate = p().put(random_floats(count, 8, -6.0f, 6.0f));
  auto up = p().put(random_floats(count, 9));
  auto out = p().alloc(count * 4);
  p().cpu().silu_mul(gate.c<float>(), up.c<float>(), count, out.c<float>());
  p().gpu().silu_mul(gate.g<float>(), up.g<float>(), count, out.g<float>());
  p().expect_close(out, count, 1e-6f, 1e-5f, "silu_mul");
  p().cpu().add(out.c<float>(), up.c<float>(), count, out.c<float>());
  p().gpu().add(out.g<float>(), up.g<float>(), count, out.g<float>());
  p().expect_close(out, count, 1e-6f, 1e-5f, "add");
  // Gathered from `up`, the same bytes on both backends: a gather must copy them exactly. (From
  // `out` it compared the SiLU results' last-bit differences, which the checks above allow: the
  // first run on an H200 failed that way.)
  std::vector<std::int32_t> rows = {99, 0, 5, 5};
  auto d_rows = p().put(rows);
  const int width = 1000;
  auto picked = p().alloc(rows.size() * width * 4);
  p().cpu().gather_rows(up.c<float>(), d_rows.c<std::int32_t>(), 4, width, picked.c<float>());
  p().gpu().gather_rows(up.g<float>(), d_rows.g<std::int32_t>(), 4, width, picked.g<float>());
  p().expect_close(picked, rows.size() * width, 0.0f, 0.0f, "gather_rows");
}

TEST_F(CudaOpsTest, ArgmaxTakesFirstMaximum) {
  const int rows = 5, vocab = 3001;
  auto values = random_floats(static_cast<std::size_t>(rows) * vocab, 10);
  values[1 * vocab + 7] = 5.0f;  // a tie: index 7 must win over 2500
  values[1 * vocab + 2500] = 5.0f;
  values[3 * vocab + vocab - 1] = 9.0f;  // the last column
  auto logits = p().put(values);
  auto out = p().alloc(rows * 4);
  p().gpu().argmax(logits.g<float>(), rows, vocab, out.g<std::int32_t>());
  const auto got = p().gpu_values<std::int32_t>(out, rows);
  for (int r = 0; r < rows; ++r) {
    const auto begin = values.begin() + static_cast<std::ptrdiff_t>(r) * vocab;
    EXPECT_EQ(got[static_cast<std::size_t>(r)], std::max_element(begin, begin + vocab) - begin)
        << "row " << r;
  }
}

// Writes K/V for a batch and runs attention over it on both backends (with a sliding `window`
// when > 0), comparing the caches and the outputs. Block tables are shuffled so no sequence's
// blocks are adjacent.
class CudaAttentionTest : public CudaOpsTest {
 protected:
  void run(int head_dim, const std::vector<std::vector<int>>& seq_positions, int window = 0) {
    const int layers = 2, kv_heads = 2, num_heads = 6, blocks = 24;
    KvLayout probe{nullptr, layers, kv_heads, head_dim, 16};
    auto kv = p().put(random_floats(probe.block_bytes() / 4 * blocks, 11));  // stale contents
    KvLayout cpu_layout = probe;
    KvLayout gpu_layout = probe;
    cpu_layout.base = kv.cpu;
    gpu_layout.base = kv.gpu;
    std::vector<std::int32_t> order(blocks);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 rng(12);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::int32_t> token_seq, token_pos, tables, offsets;
    int next_block = 0;
    for (std::size_t s = 0; s < seq_positions.size(); ++s) {
      offsets.push_back(static_cast<std::int32_t>(tables.size()));
      const int max_pos = *std::max_element(seq_positions[s].begin(), seq_positions[s].end());
      for (int b = 0; b <= max_pos / 16; ++b) tables.push_back(order[static_cast<std::size_t>(next_block++)]);
      for (int pos : seq_positions[s]) {
        token_seq.push_back(static_cast<std::int32_t>(s));
        token_pos.push_back(pos);
      }
    }
    const int tokens = static_cast<int>(token_seq.size());
    auto d_seq = p().put(token_seq);
    auto d_pos = p().put(token_pos);
    auto d_tables = p().put(tables);
    auto d_offsets = p().put(offsets);
    TokenBatch cb{tokens, static_cast<int>(seq_positions.size()), d_seq.c<std::int32_t>(),
                  d_pos.c<std::int32_t>(), d_tables.c<std::int32_t>(), d_offsets.c<std::int32_t>()};
    TokenBatch gb{tokens, static_cast<int>(seq_positions.size()), d_seq.g<std::int32_t>(),
                  d_pos.g<std::int32_t>(), d_tables.g<std::int32_t>(), d_offsets.g<std::int32_t>()};
    const std::size_t row = static_cast<std::size_t>(kv_heads) * head_dim;
    auto k = p().put(random_floats(tokens * row, 13));
    auto v = p().put(random_floats(tokens * row, 14));
    const std::size_t q_floats = static_cast<std::size_t>(tokens) * num_heads * head_dim;
    auto q = p().put(random_floats(q_floats, 15));
    auto out = p().alloc(q_floats * 4);
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    for (int layer = 0; layer < layers; ++layer) {
      p().cpu().write_kv(k.c<float>(), v.c<float>(), layer, cpu_layout, cb);
      p().gpu().write_kv(k.g<float>(), v.g<float>(), layer, gpu_layout, gb);
    }
    p().expect_close(kv, kv.bytes / 4, 0.0f, 0.0f, "kv cache after write_kv");
    for (int layer = 0; layer < layers; ++layer) {
      p().cpu().attention(
          {q.c<float>(), out.c<float>(), num_heads, layer, scale, cpu_layout, cb, window});
      p().gpu().attention(
          {q.g<float>(), out.g<float>(), num_heads, layer, scale, gpu_layout, gb, window});
      p().expect_close(out, q_floats, 1e-5f, 1e-4f, "attention");
    }
  }
};

TEST_F(CudaAttentionTest, DecodeBatch) {
  // One token per sequence: the decode kernel; contexts of 1, 18, 41 and 100 positions.
  for (int head_dim : {16, 64, 128}) {
    SCOPED_TRACE(::testing::Message() << "head_dim=" << head_dim);
    run(head_dim, {{0}, {17}, {40}, {99}});
  }
}

std::vector<int> range(int from, int to) {
  std::vector<int> r;
  for (int i = from; i < to; ++i) r.push_back(i);
  return r;
}

TEST_F(CudaAttentionTest, PrefillChunksAndMixedBatch) {
  // Tiles of 8 tokens: uniform ones use shared K/V, the ones spanning two sequences fall back.
  for (int head_dim : {16, 64, 256}) {
    SCOPED_TRACE(::testing::Message() << "head_dim=" << head_dim);
    run(head_dim, {range(0, 37), range(20, 29), {63}, range(0, 3)});
  }
}

TEST_F(CudaAttentionTest, SlidingWindow) {
  // Windows inside one block and spanning blocks, through the decode kernel, the tiled prefill
  // kernel and its mixed-tile fallback.
  for (int window : {11, 40}) {
    SCOPED_TRACE(::testing::Message() << "window=" << window);
    run(64, {{0}, {17}, {40}, {99}}, window);
    run(64, {range(0, 37), range(20, 29), {63}, range(0, 3)}, window);
  }
}

TEST_F(CudaOpsTest, CopyQueueStaysInOrderAcrossDirections) {
  const std::size_t bytes = std::size_t{4} << 20;
  auto region = p().gpu().arena().carve(bytes, "copy");
  ASSERT_TRUE(region.ok());
  std::vector<std::unique_ptr<PinnedBuffer>> host;
  for (int i = 0; i < 4; ++i) {
    auto buffer = p().gpu().allocate_pinned(bytes);
    ASSERT_TRUE(buffer.ok()) << buffer.error().message;
    host.push_back(std::move(buffer).value());
  }
  const auto a = random_floats(bytes / 4, 16);
  const auto c = random_floats(bytes / 4, 17);
  std::memcpy(host[0]->data(), a.data(), bytes);
  std::memcpy(host[2]->data(), c.data(), bytes);
  auto& gpu = p().gpu();
  // H2D, D2H, H2D, D2H of the same device range: each must see the previous one's result.
  gpu.copy(Queue::kCopy, region->data, host[0]->data(), bytes, CopyKind::kHostToDevice);
  gpu.copy(Queue::kCopy, host[1]->data(), region->data, bytes, CopyKind::kDeviceToHost);
  gpu.copy(Queue::kCopy, region->data, host[2]->data(), bytes, CopyKind::kHostToDevice);
  gpu.copy(Queue::kCopy, host[3]->data(), region->data, bytes, CopyKind::kDeviceToHost);
  auto event = gpu.create_event();
  EXPECT_TRUE(gpu.query(*event)) << "a new event is complete";
  gpu.record(Queue::kCopy, *event);
  gpu.synchronize(*event);
  EXPECT_TRUE(gpu.query(*event));
  EXPECT_EQ(std::memcmp(host[1]->data(), a.data(), bytes), 0);
  EXPECT_EQ(std::memcmp(host[3]->data(), c.data(), bytes), 0);
  EXPECT_TRUE(gpu.status().ok());
}

TEST_F(CudaOpsTest, CopyBatchScattersAndGathersBlocks) {
  const std::size_t block = 4096;
  const int blocks = 8;
  auto region = p().gpu().arena().carve(block * blocks, "blocks");
  ASSERT_TRUE(region.ok());
  auto src = p().gpu().allocate_pinned(block * blocks);
  auto dst = p().gpu().allocate_pinned(block * blocks);
  ASSERT_TRUE(src.ok() && dst.ok());
  const auto values = random_floats(block * blocks / 4, 18);
  std::memcpy((*src)->data(), values.data(), block * blocks);
  // Host block i → device block order[i] (two adjacent pairs merge), then back in order.
  const std::vector<int> order = {3, 4, 0, 7, 1, 2, 6, 5};
  std::vector<CopyRange> in, out;
  for (int i = 0; i < blocks; ++i) {
    auto* dev = static_cast<std::byte*>(region->data) + block * static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
    in.push_back({dev, (*src)->data() + block * static_cast<std::size_t>(i), block});
    out.push_back({(*dst)->data() + block * static_cast<std::size_t>(i), dev, block});
  }
  p().gpu().copy_batch(Queue::kCopy, in, CopyKind::kHostToDevice);
  p().gpu().copy_batch(Queue::kCopy, out, CopyKind::kDeviceToHost);
  p().gpu().synchronize(Queue::kCopy);
  EXPECT_EQ(std::memcmp((*dst)->data(), values.data(), block * blocks), 0);
}

TEST_F(CudaOpsTest, KvCacheSwapOutAndInRestoresBlocks) {
  auto& gpu = p().gpu();
  memory::KvShape shape{2, 2, 16};
  KvLayout probe{nullptr, shape.num_layers, shape.kv_heads, shape.head_dim, 16};
  auto region = gpu.arena().carve(probe.block_bytes() * 8, "kv");
  ASSERT_TRUE(region.ok());
  auto cache = memory::KvCache::create(gpu, shape, *region, 8);
  ASSERT_TRUE(cache.ok()) << cache.error().message;
  auto& kv = **cache;
  ASSERT_TRUE(kv.add_sequence(1).ok());
  ASSERT_TRUE(kv.reserve(1, 40).ok());  // 3 blocks
  const std::size_t block_bytes = probe.block_bytes();
  const auto values = random_floats(block_bytes / 4 * 3, 19);
  for (std::size_t i = 0; i < 3; ++i) {
    gpu.copy(Queue::kCompute, region->at(static_cast<std::size_t>(kv.block_table(1)[i]) * block_bytes),
             values.data() + i * block_bytes / 4, block_bytes, CopyKind::kHostToDevice);
  }
  kv.set_num_tokens(1, 40);
  ASSERT_TRUE(kv.swap_out(1).ok());
  // Another sequence takes the freed blocks and overwrites them before the swap-in.
  ASSERT_TRUE(kv.add_sequence(2).ok());
  ASSERT_TRUE(kv.reserve(2, 8 * 16).ok());
  std::vector<float> junk(block_bytes / 4, -7.0f);
  for (std::int32_t b : kv.block_table(2)) {
    gpu.copy(Queue::kCompute, region->at(static_cast<std::size_t>(b) * block_bytes), junk.data(),
             block_bytes, CopyKind::kHostToDevice);
  }
  gpu.synchronize(Queue::kCompute);
  kv.remove_sequence(2);
  ASSERT_TRUE(kv.swap_in(1).ok());
  kv.wait_ready(1);
  std::vector<float> back(values.size());
  for (std::size_t i = 0; i < 3; ++i) {
    gpu.copy(Queue::kCompute, back.data() + i * block_bytes / 4,
             region->at(static_cast<std::size_t>(kv.block_table(1)[i]) * block_bytes), block_bytes,
             CopyKind::kDeviceToHost);
  }
  gpu.synchronize(Queue::kCompute);
  EXPECT_TRUE(kv.is_ready(1));
  EXPECT_EQ(back, values);
  EXPECT_TRUE(gpu.status().ok());
}

}  // namespace
}  // namespace aegaeon::backend::cuda
