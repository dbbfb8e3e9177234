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
void dot_rows_generic(DType dtype, const void* w, const float* x, std::size_t ldx, int rows,
                      std::size_t k, float* out) {
  for (int j = 0; j < rows; ++j) {
    const float* xr = x + static_cast<std::size_t>(j) * ldx;
    float acc[4] = {0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 4 <= k; i += 4) {
      for (std::size_t l = 0; l < 4; ++l) acc[l] += xr[i + l] * load_weight(dtype, w, i + l);
    }
    float sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < k; ++i) sum += xr[i] * load_weight(dtype, w, i);
    out[j] = sum;
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

// Up to 4 activation rows per pass over the weight row; 2 vectors per row per step keep the
// FMA pipes busy while the weight stream comes from memory.
template <DType kDType, int kRows>
__attribute__((target("avx2,fma,f16c"))) void dot_block_avx2(const void* w, const float* x,
                                                             std::size_t ldx, std::size_t k,
                                                             float* out) {
  __m256 acc0[kRows];
  __m256 acc1[kRows];
  // Fully unrolled so the accumulators stay in registers (-O2 does not unroll on its own).
#pragma GCC unroll 4
  for (int j = 0; j < kRows; ++j) {
    acc0[j] = _mm256_setzero_ps();
    acc1[j] = _mm256_setzero_ps();
  }
  std::size_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256 w0 = load8<kDType>(w, i);
    const __m256 w1 = load8<kDType>(w, i + 8);
    // Fully unrolled so the accumulators stay in registers (-O2 does not unroll on its own).
#pragma GCC unroll 4
  for (int j = 0; j < kRows; ++j) {
      const float* xr = x + static_cast<std::size_t>(j) * ldx + i;
      acc0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xr), w0, acc0[j]);
      acc1[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 8), w1, acc1[j]);
    }
  }
  // Fully unrolled so the accumulators stay in registers (-O2 does not unroll on its own).
#pragma GCC unroll 4
  for (int j = 0; j < kRows; ++j) {
    const float* xr = x + static_cast<std::size_t>(j) * ldx;
    float sum = hsum(_mm256_add_ps(acc0[j], acc1[j]));
    for (std::size_t t = i; t < k; ++t) sum += xr[t] * load_weight(kDType, w, t);
    out[j] = sum;
  }
}

template <DType kDType>
__attribute__((target("avx2,fma,f16c"))) void dot_rows_typed(const void* w, const float* x,
                                                             std::size_t ldx, int rows,
                                                             std::size_t k, float* out) {
  int j = 0;
  for (; j + 4 <= rows; j += 4) {
    dot_block_avx2<kDType, 4>(w, x + static_cast<std::size_t>(j) * ldx, ldx, k, out + j);
  }
  const float* rest = x + static_cast<std::size_t>(j) * ldx;
  switch (rows - j) {
    case 3: dot_block_avx2<kDType, 3>(w, rest, ldx, k, out + j); break;
    case 2: dot_block_avx2<kDType, 2>(w, rest, ldx, k, out + j); break;
    case 1: dot_block_avx2<kDType, 1>(w, rest, ldx, k, out + j); break;
    default: break;
  }
}

void dot_rows_avx2(DType dtype, const void* w, const float* x, std::size_t ldx, int rows,
                   std::size_t k, float* out) {
  switch (dtype) {
    case DType::kF32: dot_rows_typed<DType::kF32>(w, x, ldx, rows, k, out); return;
    case DType::kBF16: dot_rows_typed<DType::kBF16>(w, x, ldx, rows, k, out); return;
    case DType::kF16: dot_rows_typed<DType::kF16>(w, x, ldx, rows, k, out); return;
    case DType::kI32: dot_rows_generic(dtype, w, x, ldx, rows, k, out); return;
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
    dot_rows_avx2(w_dtype, w, x, ldx, rows, k, out);
    return;
  }
#endif
  dot_rows_generic(w_dtype, w, x, ldx, rows, k, out);
}

}  // namespace aegaeon::backend::cpu
