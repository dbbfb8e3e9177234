#include "core/file.hpp"

#include <fstream>
#include <sstream>
#include <system_error>

namespace aegaeon::core {

Result<std::string> read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    const bool exists = std::filesystem::exists(path, ec);
    return error(exists ? ErrorCode::kInvalidArgument : ErrorCode::kNotFound,
                 path.string() + (exists ? ": not a regular file" : ": no such file"));
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return error(ErrorCode::kUnavailable, path.string() + ": cannot open for reading");
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return error(ErrorCode::kDataLoss, path.string() + ": read failed");
  return std::move(text).str();
}

}  // namespace aegaeon::core
