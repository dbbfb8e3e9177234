// Vectorized inner kernels of the CPU backend: dot products of F32 activations against F32,
// BF16 or F16 weight rows, tiled over several weight and activation rows. AVX2+FMA (+F16C)
// when the CPU has them, portable loops otherwise.
#pragma once

#include <cstddef>

#include "gpu/backend/dtype.hpp"

namespace aegaeon::backend::cpu {

/// out[j] = dot(x + j*ldx, w) over k elements for j in [0, rows): one weight row against
/// `rows` activation rows.
void dot_rows(DType w_dtype, const void* w, const float* x, std::size_t ldx, int rows,
              std::size_t k, float* out);

/// y[j*ldy + r] = dot(x + j*k, w + r*k) for activation rows j < m and weight rows r < n of a
/// row-major [n, k] weight slice: the decode matmul (few activation rows) on one thread's share
/// of the weights. Each weight row is read from memory once; a row's result is the same whatever
/// m is (batch-invariant), and equals dot_rows on that row.
void matmul_rows(DType w_dtype, const void* w, std::size_t n, const float* x, int m,
                 std::size_t k, float* y, std::size_t ldy);

/// dst[i] = float(src[i]) for `count` elements of `dtype` (vectorized widening of weights).
void widen_to_f32(DType dtype, const void* src, float* dst, std::size_t count);

/// y[i] = y[i] * scale + a * x[i] for `count` floats (the attention value accumulation).
void scale_axpy(float scale, float a, const float* x, float* y, std::size_t count);

/// True when the AVX2/FMA kernels are in use (for benchmark reports).
bool using_avx2();

}  // namespace aegaeon::backend::cpu
