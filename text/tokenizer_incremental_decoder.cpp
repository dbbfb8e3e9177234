#include "text/tokenizer_incremental_decoder.hpp"

#include <utility>

#include "core/utf8.hpp"

namespace aegaeon::text {

IncrementalDecoder::IncrementalDecoder(Tokenizer tokenizer, bool skip_special_tokens)
    : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDecoder::step(std::int32_t id) {
  // tokenizers' DecodeStream: decode a short window that starts a few ids back, so decoders
  // that look at neighbours (Strip, Metaspace, byte runs) see context; emit what grew.
  if (prefix_.empty() && !ids_.empty()) {
    std::string new_prefix = tokenizer_.decode(ids_, skip_special_tokens_);
    if (!new_prefix.ends_with(core::kUtf8Replacement)) {
      prefix_ = std::move(new_prefix);
      prefix_index_ = ids_.size();
    }
  }
  ids_.push_back(id);
  const std::string text = tokenizer_.decode(ids_, skip_special_tokens_);
  const bool incomplete = text.ends_with(core::kUtf8Replacement) && ids_.size() - prefix_index_ <= kMaxHeldIds;
  if (text.size() <= prefix_.size() || incomplete) return {};
  // (A decoder whose output for the window does not extend the prefix cannot happen with the
  // supported decoders; the new tail is emitted either way.)
  std::string fresh = text.substr(prefix_.size());
  const std::size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_ = tokenizer_.decode(ids_, skip_special_tokens_);
  prefix_index_ = new_prefix_index;
  return fresh;
}

std::string IncrementalDecoder::flush() {
  const std::string text = tokenizer_.decode(ids_, skip_special_tokens_);
  std::string rest = text.size() > prefix_.size() ? text.substr(prefix_.size()) : std::string();
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return rest;
}

}  // namespace aegaeon::text
