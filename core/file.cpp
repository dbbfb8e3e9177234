#include "core/file.hpp"

#include <fstream>
#include <sstream>
#include <system_error>

namespace aegaeon::core {

Result<std::string> read_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return error(ErrorCode::kNotFound, path.string() + ": no such file");
  }
  if (ec) return error(ErrorCode::kUnavailable, path.string() + ": " + ec.message());
  if (status.type() != std::filesystem::file_type::regular) {
    return error(ErrorCode::kInvalidArgument, path.string() + ": not a regular file");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return error(ErrorCode::kUnavailable, path.string() + ": cannot open for reading");
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return error(ErrorCode::kDataLoss, path.string() + ": read failed");
  return std::move(text).str();
}

}  // namespace aegaeon::core
