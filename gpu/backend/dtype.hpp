// Element types of tensors in device memory and the scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace aegaeon::backend {

/// Element type of a tensor: weights may be any float type, activations are always kF32.
enum class DType : std::uint8_t { kF32, kBF16, kF16, kI32 };

/// Bytes per element of `dtype`.
std::size_t dtype_bytes(DType dtype);

/// Safetensors spelling of `dtype` ("F32", "BF16", "F16", "I32").
std::string_view to_string(DType dtype);

/// Widens a bfloat16 bit pattern to float (exact).
inline float bf16_to_f32(std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

/// Rounds a float to the nearest bfloat16 (ties to even), as PyTorch does.
std::uint16_t f32_to_bf16(float value);

/// Widens an IEEE half bit pattern to float (exact).
float f16_to_f32(std::uint16_t bits);

/// Rounds a float to the nearest IEEE half (ties to even).
std::uint16_t f32_to_f16(float value);

/// Converts `count` elements of `dtype` at `src` to floats at `dst` (kI32 is not a float type).
void convert_to_f32(DType dtype, const void* src, float* dst, std::size_t count);

}  // namespace aegaeon::backend
