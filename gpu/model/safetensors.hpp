// Reading and writing the safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then the raw tensor bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "gpu/backend/dtype.hpp"

namespace aegaeon::model {

/// One tensor of a safetensors file, validated against the file's size.
struct SafetensorsEntry {
  std::string name;
  backend::DType dtype = backend::DType::kF32;
  std::vector<std::int64_t> shape;
  std::uint64_t file_offset = 0;  ///< absolute offset of the first byte in the file
  std::uint64_t bytes = 0;
};

/// Reads and validates the header of `file`: a bad header, an unsupported dtype, offsets that
/// disagree with the shape, or a file too short for its tensors (truncated) each give an error
/// naming the file and the tensor.
core::Result<std::vector<SafetensorsEntry>> read_safetensors_header(
    const std::filesystem::path& file);

/// A tensor to write: raw bytes already in `dtype`.
struct SafetensorsTensor {
  std::string name;
  backend::DType dtype = backend::DType::kF32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;
};

/// Writes `tensors` to `file` as safetensors (8-byte aligned data, as the reference writer does).
core::Result<void> write_safetensors(const std::filesystem::path& file,
                                     const std::vector<SafetensorsTensor>& tensors);

}  // namespace aegaeon::model
