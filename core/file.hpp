// Reading a whole file, with errors that name it: the one reader of config.json, tokenizer.json,
// chat templates, serve configs and the like, in every layer.
#pragma once

#include <filesystem>
#include <string>

#include "core/result.hpp"

namespace aegaeon::core {

/// The bytes of the file at `path`. Errors say "<path>: ..." with kNotFound when nothing is
/// there, kInvalidArgument for a directory or another non-regular file, kUnavailable when it
/// cannot be opened, kDataLoss when reading fails.
Result<std::string> read_file(const std::filesystem::path& path);

}  // namespace aegaeon::core
