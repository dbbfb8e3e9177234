#include "text/tool_calls.hpp"

#include <nlohmann/json.hpp>

namespace aegaeon::text {
namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
std::size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  for (std::size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

// {"name": "...", "arguments": {...} or "..."} → a call; false when it is not one.
bool parse_call(std::string_view body, ParsedToolCall& call) {
  const auto j = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) return false;
  call.name = name->get<std::string>();
  const auto args = j.find("arguments");
  if (args == j.end() || args->is_null()) {
    call.arguments = "{}";
  } else if (args->is_object()) {
    call.arguments = args->dump();
  } else if (args->is_string()) {  // already JSON text: must be an object
    const auto inner = nlohmann::ordered_json::parse(args->get<std::string>(), nullptr, false);
    if (inner.is_discarded() || !inner.is_object()) return false;
    call.arguments = inner.dump();
  } else {
    return false;
  }
  return true;
}

}  // namespace

ToolCallFormat tool_call_format(std::string_view chat_template) {
  return chat_template.find(kOpen) != std::string_view::npos ? ToolCallFormat::kHermes : ToolCallFormat::kNone;
}

std::string ToolCallScanner::feed(std::string_view piece) {
  held_ += piece;
  if (format_ == ToolCallFormat::kNone) {
    std::string out = std::move(held_);
    held_.clear();
    return out;
  }
  if (in_call_) return {};
  const std::size_t open = held_.find(kOpen);
  std::size_t release = 0;
  if (open != std::string::npos) {
    in_call_ = true;
    release = open;
  } else {
    release = held_.size() - partial_tag_suffix(held_, kOpen);
  }
  std::string out = held_.substr(0, release);
  held_.erase(0, release);
  return out;
}

ToolCallScanner::Result ToolCallScanner::finish() {
  Result result;
  if (!in_call_) {
    result.content = std::move(held_);
    held_.clear();
    return result;
  }
  // held_ starts with the first <tool_call>: every block must be a call, with only whitespace
  // between and after them (a generation may stop before the last closing tag).
  std::vector<ParsedToolCall> calls;
  std::string_view rest = held_;
  bool well_formed = true;
  while (well_formed) {
    const std::size_t start = rest.find_first_not_of(" \t\r\n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    if (rest.substr(0, kOpen.size()) != kOpen) {
      well_formed = false;
      break;
    }
    rest.remove_prefix(kOpen.size());
    const std::size_t close = rest.find(kClose);
    ParsedToolCall call;
    well_formed = parse_call(rest.substr(0, close), call);
    if (well_formed) calls.push_back(std::move(call));
    rest.remove_prefix(close == std::string_view::npos ? rest.size() : close + kClose.size());
  }
  if (well_formed && !calls.empty()) {
    result.calls = std::move(calls);
  } else {
    result.content = std::move(held_);  // not calls after all: the text is content
  }
  held_.clear();
  return result;
}

}  // namespace aegaeon::text
