#include "gpu/backend/cpu/cpu_kernels.hpp"

#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace aegaeon::backend::cpu {

namespace {

float load_weight(DType dtype, const void* w, std::size_t i) {
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(w)[i];
    case DType::kBF16: return bf16_to_f32(static_cast<const std::uint16_t*>(w)[i]);
    case DType::kF16: return f16_to_f32(static_cast<const std::uint16_t*>(w)[i]);
    case DType::kI32: return static_cast<float>(static_cast<const std::int32_t*>(w)[i]);
  }
  return 0.0f;
}

// Portable path: 4 independent partial sums per row keep the adds from serializing.
// out[j * ldo] = dot(x + j * ldx, w) for j < rows.
void dot_rows_generic(DType dtype, const void* w, const float* x, std::size_t ldx, int rows,
                      std::size_t k, float* out, std::size_t ldo) {
  for (int j = 0; j < rows; ++j) {
    const float* xr = x + static_cast<std::size_t>(j) * ldx;
    float acc[4] = {0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 4 <= k; i += 4) {
      for (std::size_t l = 0; l < 4; ++l) acc[l] += xr[i + l] * load_weight(dtype, w, i + l);
    }
    float sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < k; ++i) sum += xr[i] * load_weight(dtype, w, i);
    out[static_cast<std::size_t>(j) * ldo] = sum;
  }
}

#if defined(__x86_64__)
template <DType kDType>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const void* w, std::size_t i) {
  if constexpr (kDType == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else {
    const auto* p = reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(w) + i);
    const __m128i half = _mm_loadu_si128(p);
    if constexpr (kDType == DType::kF16) return _mm256_cvtph_ps(half);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
  }
}

__attribute__((target("avx2,fma,f16c"))) inline float hsum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One tile of kX activation rows × kW weight rows (row r at w + r*k elements) with one 8-lane
// accumulator per pair: each weight vector loaded (and widened) once serves kX FMAs, each
// activation vector kW. Every pair sums in the same order whatever the tile (8-lane partial
// sums over k, then the lanes, then the tail), so a row's result does not depend on how many
// other rows share the call: a sequence's logits are the same at any batch size.
template <DType kDType, int kX, int kW>
__attribute__((target("avx2,fma,f16c"))) void tile_avx2(const void* w, const float* x,
                                                        std::size_t ldx, std::size_t k, float* y,
                                                        std::size_t ldy) {
  __m256 acc[kX][kW];
  // Fully unrolled so the accumulators stay in registers (-O2 does not unroll on its own).
#pragma GCC unroll 4
  for (int j = 0; j < kX; ++j) {
#pragma GCC unroll 4
    for (int r = 0; r < kW; ++r) acc[j][r] = _mm256_setzero_ps();
  }
  std::size_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[kW];
#pragma GCC unroll 4
    for (int r = 0; r < kW; ++r) wv[r] = load8<kDType>(w, static_cast<std::size_t>(r) * k + i);
#pragma GCC unroll 4
    for (int j = 0; j < kX; ++j) {
      const __m256 xv = _mm256_loadu_ps(x + static_cast<std::size_t>(j) * ldx + i);
#pragma GCC unroll 4
      for (int r = 0; r < kW; ++r) acc[j][r] = _mm256_fmadd_ps(xv, wv[r], acc[j][r]);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < kX; ++j) {
    const float* xr = x + static_cast<std::size_t>(j) * ldx;
#pragma GCC unroll 4
    for (int r = 0; r < kW; ++r) {
      const std::size_t w_row = static_cast<std::size_t>(r) * k;
      float sum = hsum(acc[j][r]);
      for (std::size_t t = i; t < k; ++t) sum += xr[t] * load_weight(kDType, w, w_row + t);
      y[static_cast<std::size_t>(j) * ldy + static_cast<std::size_t>(r)] = sum;
    }
  }
}

// All activation rows against kW weight rows: 2 activation rows per tile (8 accumulators, 4
// weight vectors and an activation vector fit the 16 AVX2 registers); the kW rows stay in L1
// for the later tiles, so they come from memory once.
template <DType kDType, int kW>
__attribute__((target("avx2,fma,f16c"))) void weight_rows_avx2(const void* w, const float* x,
                                                               std::size_t ldx, int m,
                                                               std::size_t k, float* y,
                                                               std::size_t ldy) {
  int j = 0;
  for (; j + 2 <= m; j += 2) {
    tile_avx2<kDType, 2, kW>(w, x + static_cast<std::size_t>(j) * ldx, ldx, k,
                             y + static_cast<std::size_t>(j) * ldy, ldy);
  }
  if (j < m) {
    tile_avx2<kDType, 1, kW>(w, x + static_cast<std::size_t>(j) * ldx, ldx, k,
                             y + static_cast<std::size_t>(j) * ldy, ldy);
  }
}

template <DType kDType>
__attribute__((target("avx2,fma,f16c"))) void matmul_tiles_typed(const void* w, std::size_t n,
                                                                 const float* x, std::size_t ldx,
                                                                 int m, std::size_t k, float* y,
                                                                 std::size_t ldy) {
  const std::size_t row_bytes = k * dtype_bytes(kDType);
  const auto* bytes = static_cast<const std::byte*>(w);
  std::size_t r = 0;
  for (; r + 4 <= n; r += 4) weight_rows_avx2<kDType, 4>(bytes + r * row_bytes, x, ldx, m, k, y + r, ldy);
  for (; r < n; ++r) weight_rows_avx2<kDType, 1>(bytes + r * row_bytes, x, ldx, m, k, y + r, ldy);
}

// y[j * ldy + r] = dot(x + j * ldx, weight row r) for j < m, r < n (F32, BF16 or F16 weights).
void matmul_tiles_avx2(DType dtype, const void* w, std::size_t n, const float* x, std::size_t ldx,
                       int m, std::size_t k, float* y, std::size_t ldy) {
  switch (dtype) {
    case DType::kF32: matmul_tiles_typed<DType::kF32>(w, n, x, ldx, m, k, y, ldy); return;
    case DType::kBF16: matmul_tiles_typed<DType::kBF16>(w, n, x, ldx, m, k, y, ldy); return;
    case DType::kF16: matmul_tiles_typed<DType::kF16>(w, n, x, ldx, m, k, y, ldy); return;
    case DType::kI32: return;  // callers take the portable path for I32
  }
}

template <DType kDType>
__attribute__((target("avx2,fma,f16c"))) void widen_typed(const void* src, float* dst,
                                                          std::size_t count) {
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load8<kDType>(src, i));
  for (; i < count; ++i) dst[i] = load_weight(kDType, src, i);
}

void widen_avx2(DType dtype, const void* src, float* dst, std::size_t count) {
  switch (dtype) {
    case DType::kBF16: widen_typed<DType::kBF16>(src, dst, count); return;
    case DType::kF16: widen_typed<DType::kF16>(src, dst, count); return;
    default: convert_to_f32(dtype, src, dst, count); return;
  }
}

__attribute__((target("avx2,fma,f16c"))) void scale_axpy_avx2(float scale, float a,
                                                              const float* x, float* y,
                                                              std::size_t count) {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 va = _mm256_set1_ps(a);
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(y + i), vs);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), scaled));
  }
  for (; i < count; ++i) y[i] = y[i] * scale + a * x[i];
}

bool detect_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
#else
bool detect_avx2() { return false; }
#endif

}  // namespace

bool using_avx2() {
  static const bool kHasAvx2 = detect_avx2();
  return kHasAvx2;
}

void widen_to_f32(DType dtype, const void* src, float* dst, std::size_t count) {
#if defined(__x86_64__)
  if (using_avx2() && dtype != DType::kI32) {
    widen_avx2(dtype, src, dst, count);
    return;
  }
#endif
  convert_to_f32(dtype, src, dst, count);
}

void scale_axpy(float scale, float a, const float* x, float* y, std::size_t count) {
#if defined(__x86_64__)
  if (using_avx2()) {
    scale_axpy_avx2(scale, a, x, y, count);
    return;
  }
#endif
  for (std::size_t i = 0; i < count; ++i) y[i] = y[i] * scale + a * x[i];
}

void dot_rows(DType w_dtype, const void* w, const float* x, std::size_t ldx, int rows,
              std::size_t k, float* out) {
#if defined(__x86_64__)
  if (using_avx2() && w_dtype != DType::kI32) {
    matmul_tiles_avx2(w_dtype, w, 1, x, ldx, rows, k, out, 1);
    return;
  }
#endif
  dot_rows_generic(w_dtype, w, x, ldx, rows, k, out, 1);
}

void matmul_rows(DType w_dtype, const void* w, std::size_t n, const float* x, int m,
                 std::size_t k, float* y, std::size_t ldy) {
#if defined(__x86_64__)
  if (using_avx2() && w_dtype != DType::kI32) {
    matmul_tiles_avx2(w_dtype, w, n, x, k, m, k, y, ldy);
    return;
  }
#endif
  const std::size_t row_bytes = k * dtype_bytes(w_dtype);
  for (std::size_t r = 0; r < n; ++r) {
    dot_rows_generic(w_dtype, static_cast<const std::byte*>(w) + r * row_bytes, x, k, m, k, y + r,
                     ldy);
  }
}

}  // namespace aegaeon::backend::cpu
