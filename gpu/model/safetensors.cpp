#include "gpu/model/safetensors.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

namespace aegaeon::model {

namespace {

using core::ErrorCode;
using nlohmann::json;

constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference reader's limit

core::Error bad(const std::filesystem::path& file, const std::string& what,
                ErrorCode code = ErrorCode::kDataLoss) {
  return core::error(code, file.string() + ": " + what);
}

}  // namespace

core::Result<std::vector<SafetensorsEntry>> read_safetensors_header(
    const std::filesystem::path& file) {
  std::error_code ec;
  const std::uint64_t file_bytes = std::filesystem::file_size(file, ec);
  if (ec) return bad(file, "cannot open (" + ec.message() + ")", ErrorCode::kNotFound);
  std::ifstream in(file, std::ios::binary);
  if (!in) return bad(file, "cannot open for reading", ErrorCode::kNotFound);
  if (file_bytes < 8) return bad(file, "truncated: shorter than the 8-byte header length");
  unsigned char length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  std::uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | length_bytes[i];
  if (header_bytes > kMaxHeaderBytes) {
    return bad(file, "bad header: header length " + std::to_string(header_bytes) +
                         " exceeds the 100 MiB limit");
  }
  if (8 + header_bytes > file_bytes) {
    return bad(file, "truncated: header needs " + std::to_string(header_bytes) +
                         " bytes but the file has " + std::to_string(file_bytes - 8) +
                         " after the length");
  }
  std::string header(header_bytes, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_bytes));
  json j = json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return bad(file, "bad header: not a JSON object");
  }
  const std::uint64_t data_start = 8 + header_bytes;
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, value] : j.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor '" + name + "': ";
    if (!value.is_object() || !value.contains("dtype") || !value["dtype"].is_string() ||
        !value.contains("shape") || !value["shape"].is_array() ||
        !value.contains("data_offsets") || !value["data_offsets"].is_array() ||
        value["data_offsets"].size() != 2) {
      return bad(file, "bad header: " + where + "expected {dtype, shape, data_offsets[2]}");
    }
    SafetensorsEntry entry;
    entry.name = name;
    const std::string dtype = value["dtype"].get<std::string>();
    if (dtype == "F32") {
      entry.dtype = backend::DType::kF32;
    } else if (dtype == "BF16") {
      entry.dtype = backend::DType::kBF16;
    } else if (dtype == "F16") {
      entry.dtype = backend::DType::kF16;
    } else if (dtype == "I32") {
      entry.dtype = backend::DType::kI32;
    } else {
      return bad(file, where + "unsupported dtype '" + dtype + "' (expected F32, BF16, F16)",
                 ErrorCode::kInvalidArgument);
    }
    std::uint64_t elements = 1;
    for (const auto& dim : value["shape"]) {
      if (!dim.is_number_unsigned()) {
        return bad(file, "bad header: " + where + "shape must hold non-negative integers");
      }
      entry.shape.push_back(dim.get<std::int64_t>());
      elements *= dim.get<std::uint64_t>();
    }
    const auto& offsets = value["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      return bad(file, "bad header: " + where + "data_offsets must be non-negative integers");
    }
    const auto begin = offsets[0].get<std::uint64_t>();
    const auto end = offsets[1].get<std::uint64_t>();
    const std::uint64_t expected = elements * backend::dtype_bytes(entry.dtype);
    if (end < begin || end - begin != expected) {
      return bad(file, "bad header: " + where + "data_offsets [" + std::to_string(begin) + ", " +
                           std::to_string(end) + ") hold " + std::to_string(end - begin) +
                           " bytes but dtype and shape need " + std::to_string(expected));
    }
    if (data_start + end > file_bytes) {
      return bad(file, "truncated: " + where + "needs bytes up to " +
                           std::to_string(data_start + end) + " but the file has " +
                           std::to_string(file_bytes));
    }
    entry.file_offset = data_start + begin;
    entry.bytes = expected;
    entries.push_back(std::move(entry));
  }
  return entries;
}

core::Result<void> write_safetensors(const std::filesystem::path& file,
                                     const std::vector<SafetensorsTensor>& tensors) {
  json header = json::object();
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", std::string(backend::to_string(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keeps tensor data 8-byte aligned
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) {
    return core::error(ErrorCode::kUnavailable, file.string() + ": cannot open for writing");
  }
  std::uint64_t length = text.size();
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(length >> (8 * i));
  out.write(reinterpret_cast<const char*>(length_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors) {
    out.write(reinterpret_cast<const char*>(t.data.data()),
              static_cast<std::streamsize>(t.data.size()));
  }
  if (!out) return core::error(ErrorCode::kUnavailable, file.string() + ": write failed");
  return core::ok();
}

}  // namespace aegaeon::model
