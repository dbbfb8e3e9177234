// Vectorized inner kernels of the CPU backend: dot products of F32 activations against F32,
// BF16 or F16 weight rows. AVX2+FMA (+F16C) when the CPU has them, portable loops otherwise.
#pragma once

#include <cstddef>

#include "gpu/backend/dtype.hpp"

namespace aegaeon::backend::cpu {

/// out[j] = dot(x + j*ldx, w) over k elements for j in [0, rows): one weight row against up to
/// `rows` activation rows, so the row is read from memory once (the decode GEMV).
void dot_rows(DType w_dtype, const void* w, const float* x, std::size_t ldx, int rows,
              std::size_t k, float* out);

/// dst[i] = float(src[i]) for `count` elements of `dtype` (vectorized widening of weights).
void widen_to_f32(DType dtype, const void* src, float* dst, std::size_t count);

/// y[i] = y[i] * scale + a * x[i] for `count` floats (the attention value accumulation).
void scale_axpy(float scale, float a, const float* x, float* y, std::size_t count);

/// True when the AVX2/FMA kernels are in use (for benchmark reports).
bool using_avx2();

}  // namespace aegaeon::backend::cpu
