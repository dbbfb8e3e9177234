// Each CPU backend op against a naive reference written out here in the plainest form.
#include "gpu/backend/cpu/cpu_backend.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace aegaeon::backend::cpu {
namespace {

std::unique_ptr<CpuBackend> make_backend(std::size_t arena_bytes = std::size_t{64} << 20) {
  auto backend = CpuBackend::create(CpuBackendOptions{arena_bytes, 2});
  EXPECT_TRUE(backend.ok());
  return std::move(backend).value();
}

std::vector<float> random_floats(std::size_t count, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> out(count);
  for (float& v : out) v = dist(rng);
  return out;
}

// Holds a weight tensor of some dtype in the arena plus its exact F32 values.
struct DeviceTensor {
  Weight weight;
  std::vector<float> values;
};

DeviceTensor upload(CpuBackend& backend, const std::vector<float>& values, DType dtype) {
  auto region = backend.arena().carve(values.size() * dtype_bytes(dtype) + 64, "test");
  EXPECT_TRUE(region.ok());
  DeviceTensor out{Weight{region->data, dtype}, values};
  if (dtype == DType::kF32) {
    std::memcpy(region->data, values.data(), values.size() * 4);
  } else {
    auto* bits = static_cast<std::uint16_t*>(region->data);
    for (std::size_t i = 0; i < values.size(); ++i) {
      bits[i] = dtype == DType::kBF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      out.values[i] = dtype == DType::kBF16 ? bf16_to_f32(bits[i]) : f16_to_f32(bits[i]);
    }
  }
  return out;
}

TEST(DTypeTest, RoundTripsKnownValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // tie rounds to even
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  for (float v : {0.1f, -2.5f, 1234.5f, 3e-5f}) {
    EXPECT_NEAR(f16_to_f32(f32_to_f16(v)), v, std::fabs(v) * 1e-3f);
    EXPECT_NEAR(bf16_to_f32(f32_to_bf16(v)), v, std::fabs(v) * 8e-3f);
  }
}

TEST(DeviceArenaTest, CarvesAlignedRegionsAndRejectsOverflow) {
  std::vector<std::byte> memory(4096);
  DeviceArena arena(memory.data(), memory.size());
  auto a = arena.carve(1000, "kv");
  ASSERT_TRUE(a.ok());
  auto b = arena.carve(1000, "weights", 256);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->data) % 256, 0u);
  EXPECT_GE(static_cast<std::byte*>(b->data), static_cast<std::byte*>(a->data) + 1000);
  auto too_big = arena.carve(4096, "prefetch");
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.error().code, core::ErrorCode::kResourceExhausted);
  EXPECT_NE(too_big.error().message.find("prefetch"), std::string::npos);
  EXPECT_FALSE(arena.release(*a).ok());  // not the top region
  const std::size_t used = arena.used_bytes();
  ASSERT_TRUE(arena.release(*b).ok());
  EXPECT_LT(arena.used_bytes(), used);
  auto again = arena.carve(2000, "prefetch");
  EXPECT_TRUE(again.ok());
}

TEST(CpuBackendTest, CopyQueueMovesBytesAsynchronouslyWithEvents) {
  auto backend = make_backend();
  const std::size_t bytes = std::size_t{8} << 20;
  auto host = backend->allocate_pinned(bytes);
  ASSERT_TRUE(host.ok());
  for (std::size_t i = 0; i < bytes; ++i) (*host)->data()[i] = static_cast<std::byte>(i * 7 + 1);
  auto region = backend->arena().carve(bytes, "dst");
  ASSERT_TRUE(region.ok());
  auto event = backend->create_event();
  EXPECT_TRUE(backend->query(*event));  // a fresh event is complete
  backend->copy(Queue::kCopy, region->data, (*host)->data(), bytes, CopyKind::kHostToDevice);
  backend->record(Queue::kCopy, *event);
  backend->wait(Queue::kCompute, *event);  // compute (the host here) now sees the bytes
  EXPECT_TRUE(backend->query(*event));
  EXPECT_EQ(std::memcmp(region->data, (*host)->data(), bytes), 0);
  auto back = backend->allocate_pinned(bytes);
  ASSERT_TRUE(back.ok());
  backend->copy(Queue::kCopy, (*back)->data(), region->data, bytes, CopyKind::kDeviceToHost);
  backend->synchronize(Queue::kCopy);
  EXPECT_EQ(std::memcmp((*back)->data(), (*host)->data(), bytes), 0);
}

TEST(CpuBackendTest, EmbeddingWidensRows) {
  auto backend = make_backend();
  const int vocab = 11;
  const int hidden = 24;
  auto table = upload(*backend, random_floats(vocab * hidden, 1), DType::kBF16);
  std::vector<std::int32_t> ids = {3, 0, 10, 3};
  std::vector<float> out(ids.size() * hidden);
  backend->embedding(table.weight, ids.data(), 4, hidden, out.data());
  for (std::size_t t = 0; t < ids.size(); ++t) {
    for (int i = 0; i < hidden; ++i) {
      EXPECT_EQ(out[t * hidden + static_cast<std::size_t>(i)],
                table.values[static_cast<std::size_t>(ids[t] * hidden + i)]);
    }
  }
}

class MatmulTest : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(MatmulTest, MatchesNaiveProductWithBias) {
  const auto [dtype, m] = GetParam();
  auto backend = make_backend();
  const int n = 45;
  const int k = 70;  // not a multiple of the vector width: tails are exercised
  auto w = upload(*backend, random_floats(static_cast<std::size_t>(n * k), 2), dtype);
  auto bias = upload(*backend, random_floats(static_cast<std::size_t>(n), 3), dtype);
  const auto x = random_floats(static_cast<std::size_t>(m * k), 4);
  std::vector<float> y(static_cast<std::size_t>(m * n));
  backend->matmul(MatmulArgs{x.data(), w.weight, bias.weight, y.data(), m, n, k});
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double expected = bias.values[static_cast<std::size_t>(j)];
      for (int l = 0; l < k; ++l) {
        expected += static_cast<double>(x[static_cast<std::size_t>(i * k + l)]) *
                    w.values[static_cast<std::size_t>(j * k + l)];
      }
      EXPECT_NEAR(y[static_cast<std::size_t>(i * n + j)], expected, 1e-4) << i << "," << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypesAndRows, MatmulTest,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16,
                                                              DType::kF16),
                                            ::testing::Values(1, 3, 5, 8, 33,
                                                              CpuBackend::kGemmMinRows + 3)));

TEST(CpuBackendTest, RmsNormMatchesFormula) {
  auto backend = make_backend();
  const int rows = 3;
  const int hidden = 40;
  auto weight = upload(*backend, random_floats(hidden, 5), DType::kF16);
  const auto x = random_floats(rows * hidden, 6, 3.0f);
  std::vector<float> y(x.size());
  backend->rms_norm(x.data(), weight.weight, 1e-5f, rows, hidden, y.data());
  for (int r = 0; r < rows; ++r) {
    double sum = 0;
    for (int i = 0; i < hidden; ++i) sum += double(x[r * hidden + i]) * x[r * hidden + i];
    const double inv = 1.0 / std::sqrt(sum / hidden + 1e-5);
    for (int i = 0; i < hidden; ++i) {
      EXPECT_NEAR(y[r * hidden + i], x[r * hidden + i] * inv * weight.values[i], 1e-5);
    }
  }
}

// inv_freq straight from the transformers formulas, in double.
std::vector<double> reference_inv_freq(const RopeParams& p, int dim) {
  std::vector<double> f;
  for (int i = 0; i < dim / 2; ++i) {
    double v = 1.0 / std::pow(double(p.theta), 2.0 * i / dim);
    if (p.scaling == RopeScaling::kLinear) v /= p.factor;
    if (p.scaling == RopeScaling::kLlama3) {
      const double wavelen = 2 * M_PI / v;
      const double low = p.original_max_position / double(p.low_freq_factor);
      const double high = p.original_max_position / double(p.high_freq_factor);
      if (wavelen > low) {
        v /= p.factor;
      } else if (wavelen >= high) {
        const double s = (p.original_max_position / wavelen - p.low_freq_factor) /
                         (p.high_freq_factor - p.low_freq_factor);
        v = (1 - s) * v / p.factor + s * v;
      }
    }
    f.push_back(v);
  }
  return f;
}

TEST(CpuBackendTest, RopeMatchesRotateHalfForEveryScaling) {
  auto backend = make_backend();
  const int tokens = 3;
  const int heads = 2;
  const int dim = 16;
  std::vector<std::int32_t> positions = {0, 7, 300};
  for (RopeScaling scaling : {RopeScaling::kNone, RopeScaling::kLinear, RopeScaling::kLlama3}) {
    RopeParams params;
    params.theta = 500000.0f;
    params.scaling = scaling;
    params.factor = 8.0f;
    params.original_max_position = 64;
    const auto inv = reference_inv_freq(params, dim);
    auto x = random_floats(tokens * heads * dim, 7);
    const auto original = x;
    backend->rope(x.data(), positions.data(), tokens, heads, dim, params);
    for (int t = 0; t < tokens; ++t) {
      for (int h = 0; h < heads; ++h) {
        const float* in = original.data() + (t * heads + h) * dim;
        const float* out = x.data() + (t * heads + h) * dim;
        for (int i = 0; i < dim / 2; ++i) {
          const double angle = positions[t] * inv[i];
          EXPECT_NEAR(out[i], in[i] * std::cos(angle) - in[i + dim / 2] * std::sin(angle), 2e-4);
          EXPECT_NEAR(out[i + dim / 2], in[i + dim / 2] * std::cos(angle) + in[i] * std::sin(angle),
                      2e-4);
        }
      }
    }
  }
}

TEST(CpuBackendTest, PagedAttentionMatchesDenseCausalSoftmaxWithGqaAndWindow) {
  auto backend = make_backend();
  const int layers = 2;
  const int kv_heads = 2;
  const int heads = 4;
  const int dim = 8;
  const int blocks = 8;
  KvLayout layout{nullptr, layers, kv_heads, dim, 16};
  auto region = backend->arena().carve(layout.block_bytes() * blocks, "kv");
  ASSERT_TRUE(region.ok());
  layout.base = region->data;
  std::memset(region->data, 0xff, region->bytes);  // NaN garbage: unwritten rows must not be read
  // Two sequences of lengths 20 and 5, scattered non-contiguous blocks.
  const std::vector<int> lengths = {20, 5};
  std::vector<std::int32_t> tables = {5, 2, 7};
  std::vector<std::int32_t> offsets = {0, 2};
  std::vector<std::int32_t> token_seq;
  std::vector<std::int32_t> token_pos;
  for (int s = 0; s < 2; ++s) {
    for (int p = 0; p < lengths[static_cast<std::size_t>(s)]; ++p) {
      token_seq.push_back(s);
      token_pos.push_back(p);
    }
  }
  const int n = static_cast<int>(token_seq.size());
  TokenBatch batch{n, 2, token_seq.data(), token_pos.data(), tables.data(), offsets.data()};
  const auto k = random_floats(static_cast<std::size_t>(n * kv_heads * dim), 8);
  const auto v = random_floats(static_cast<std::size_t>(n * kv_heads * dim), 9);
  const auto q = random_floats(static_cast<std::size_t>(n * heads * dim), 10);
  const int layer = 1;
  backend->write_kv(k.data(), v.data(), layer, layout, batch);
  std::vector<float> out(q.size());
  const float scale = 1.0f / std::sqrt(float(dim));
  // Full causal attention, then a sliding window (as transformers masks it: the last `window`
  // positions, the token itself included) that crosses block boundaries.
  for (const int window : {0, 7}) {
    backend->attention(
        AttentionArgs{q.data(), out.data(), heads, layer, scale, layout, batch, window});
    int first = 0;
    for (int s = 0; s < 2; ++s) {
      for (int p = 0; p < lengths[static_cast<std::size_t>(s)]; ++p) {
        const int t = first + p;
        const int oldest = window > 0 ? std::max(0, p - window + 1) : 0;
        for (int h = 0; h < heads; ++h) {
          const int g = h / (heads / kv_heads);
          std::vector<double> scores;
          double max_score = -1e30;
          for (int j = oldest; j <= p; ++j) {
            double dot = 0;
            for (int i = 0; i < dim; ++i) {
              dot +=
                  double(q[(t * heads + h) * dim + i]) * k[((first + j) * kv_heads + g) * dim + i];
            }
            scores.push_back(dot * scale);
            max_score = std::max(max_score, dot * scale);
          }
          double total = 0;
          for (double& sc : scores) total += (sc = std::exp(sc - max_score));
          for (int i = 0; i < dim; ++i) {
            double expected = 0;
            for (int j = oldest; j <= p; ++j) {
              expected += scores[static_cast<std::size_t>(j - oldest)] / total *
                          v[((first + j) * kv_heads + g) * dim + i];
            }
            EXPECT_NEAR(out[(t * heads + h) * dim + i], expected, 1e-5)
                << "window " << window << " seq " << s << " pos " << p;
          }
        }
      }
      first += lengths[static_cast<std::size_t>(s)];
    }
  }
}

TEST(CpuBackendTest, ElementwiseOpsAndGather) {
  auto backend = make_backend();
  const std::size_t count = 50000;  // spans several pool chunks
  const auto a = random_floats(count, 11, 4.0f);
  const auto b = random_floats(count, 12);
  std::vector<float> out(count);
  backend->silu_mul(a.data(), b.data(), count, out.data());
  for (std::size_t i = 0; i < count; i += 97) {
    EXPECT_NEAR(out[i], a[i] / (1 + std::exp(-double(a[i]))) * b[i], 1e-5);
  }
  backend->add(a.data(), b.data(), count, out.data());
  for (std::size_t i = 0; i < count; i += 89) EXPECT_FLOAT_EQ(out[i], a[i] + b[i]);
  std::vector<std::int32_t> rows = {4, 0};
  std::vector<float> gathered(2 * 10);
  backend->gather_rows(a.data(), rows.data(), 2, 10, gathered.data());
  EXPECT_EQ(gathered[0], a[40]);
  EXPECT_EQ(gathered[19], a[9]);
}

}  // namespace
}  // namespace aegaeon::backend::cpu
