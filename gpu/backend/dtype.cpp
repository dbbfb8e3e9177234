#include "gpu/backend/dtype.hpp"

#include <cmath>

namespace aegaeon::backend {

std::size_t dtype_bytes(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI32: return 4;
  }
  return 0;
}

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kI32: return "I32";
  }
  return "?";
}

std::uint16_t f32_to_bf16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if (std::isnan(value)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  const std::uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000) << 16;
  std::uint32_t exponent = (bits >> 10) & 0x1f;
  std::uint32_t mantissa = bits & 0x3ff;
  std::uint32_t out;
  if (exponent == 0) {
    if (mantissa == 0) {
      out = sign;
    } else {  // subnormal: renormalize
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      mantissa &= 0x3ff;
      out = sign | (exponent << 23) | (mantissa << 13);
    }
  } else if (exponent == 0x1f) {
    out = sign | 0x7f800000 | (mantissa << 13);
  } else {
    out = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &out, sizeof value);
  return value;
}

std::uint16_t f32_to_f16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
  const std::uint32_t abs_bits = bits & 0x7fffffff;
  if (abs_bits >= 0x7f800000) {  // inf or nan
    return static_cast<std::uint16_t>(sign | 0x7c00 | (abs_bits > 0x7f800000 ? 0x200 : 0));
  }
  if (abs_bits >= 0x477ff000) return static_cast<std::uint16_t>(sign | 0x7c00);  // overflow
  if (abs_bits < 0x38800000) {  // subnormal or zero in half
    const float abs_value = std::fabs(value);
    const auto sub = static_cast<std::uint32_t>(std::nearbyint(abs_value * 16777216.0f));  // 2^24
    return static_cast<std::uint16_t>(sign | sub);
  }
  const std::uint32_t rounding = 0xfff + ((abs_bits >> 13) & 1);
  const std::uint32_t rounded = abs_bits + rounding;
  return static_cast<std::uint16_t>(sign | (((rounded >> 13) - ((127 - 15) << 10)) & 0x7fff));
}

void convert_to_f32(DType dtype, const void* src, float* dst, std::size_t count) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kBF16: {
      const auto* in = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(in[i]);
      return;
    }
    case DType::kF16: {
      const auto* in = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < count; ++i) dst[i] = f16_to_f32(in[i]);
      return;
    }
    case DType::kI32: {
      const auto* in = static_cast<const std::int32_t*>(src);
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(in[i]);
      return;
    }
  }
}

}  // namespace aegaeon::backend
