#include "text/tokenizer_trainer.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "core/utf8.hpp"
#include "text/tokenizer_impl.hpp"
#include "text/utf8.hpp"

namespace aegaeon::text {
namespace {

using tokenizer_detail::Regex;

std::uint64_t pair_key(int left, int right) {
  return (std::uint64_t{static_cast<std::uint32_t>(left)} << 32) | static_cast<std::uint32_t>(right);
}

// The pieces the tokenizer's Split(Isolated) pre-tokenizer would produce: the matches and the
// text between them, with how often each occurs.
std::map<std::string, std::int64_t> count_words(std::string_view text, const Regex& split, bool nfc) {
  std::string normalized = core::to_valid_utf8(text);
  if (nfc) normalized = utf8::to_nfc(normalized);
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  split.find_all(normalized, matches);
  std::map<std::string, std::int64_t> counts;
  std::size_t last = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > last) ++counts[normalized.substr(last, begin - last)];
    ++counts[normalized.substr(begin, end - begin)];
    last = end;
  }
  if (last < normalized.size()) ++counts[normalized.substr(last)];
  return counts;
}

// Classic BPE training (Sennrich et al. 2016) with pair counts updated incrementally: a merge
// only recounts the words that contain its pair.
class Trainer {
 public:
  explicit Trainer(const std::map<std::string, std::int64_t>& word_counts) {
    for (int b = 0; b < 256; ++b) add_token(std::string(1, static_cast<char>(b)));
    for (const auto& [text, count] : word_counts) {
      Word word{{}, count};
      for (unsigned char ch : text) word.symbols.push_back(ch);
      words_.push_back(std::move(word));
      count_pairs(static_cast<int>(words_.size()) - 1, +1);
    }
  }

  ByteLevelBpe run(std::size_t max_tokens) {
    ByteLevelBpe out;
    while (tokens_.size() < max_tokens) {
      const auto best = best_pair();
      if (!best) break;
      const auto [left, right] = *best;
      out.merges.emplace_back(tokens_[left], tokens_[right]);
      merge(left, right, add_token(tokens_[left] + tokens_[right]));
    }
    out.tokens = std::move(tokens_);
    return out;
  }

 private:
  struct Word {
    std::vector<int> symbols;
    std::int64_t count = 0;
  };

  // Id of `token`, new or (when another merge already spelled it) existing.
  int add_token(const std::string& token) {
    auto [it, inserted] = ids_.try_emplace(token, static_cast<int>(tokens_.size()));
    if (inserted) tokens_.push_back(token);
    return it->second;
  }

  void count_pairs(int w, int sign) {
    const Word& word = words_[static_cast<std::size_t>(w)];
    for (std::size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      const std::uint64_t key = pair_key(word.symbols[i], word.symbols[i + 1]);
      std::int64_t& count = pair_counts_[key];
      count += sign * word.count;
      if (count == 0) pair_counts_.erase(key);
      if (sign > 0) pair_words_[key].push_back(w);
    }
  }

  // The most frequent pair; ties go to the smaller (left, right) strings, a total order, so the
  // hash map's iteration order cannot change the result. Pairs seen once still merge (as with
  // Hugging Face's BpeTrainer at its default min_frequency): a small text can fill a vocabulary.
  std::optional<std::pair<int, int>> best_pair() const {
    std::optional<std::pair<int, int>> best;
    std::int64_t best_count = 0;
    for (const auto& [key, count] : pair_counts_) {
      const int left = static_cast<int>(key >> 32);
      const int right = static_cast<int>(key & 0xFFFFFFFFu);
      if (count > best_count ||
          (count == best_count && best &&
           std::tie(tokens_[left], tokens_[right]) < std::tie(tokens_[best->first], tokens_[best->second]))) {
        best = std::pair{left, right};
        best_count = count;
      }
    }
    return best;
  }

  void merge(int left, int right, int merged) {
    auto it = pair_words_.find(pair_key(left, right));
    std::vector<int> candidates = std::move(it->second);
    pair_words_.erase(it);
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    for (int w : candidates) {
      std::vector<int>& symbols = words_[static_cast<std::size_t>(w)].symbols;
      std::vector<int> next;
      next.reserve(symbols.size());
      for (std::size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      if (next.size() == symbols.size()) continue;  // listed for a pair it no longer has
      count_pairs(w, -1);
      symbols = std::move(next);
      count_pairs(w, +1);
    }
  }

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int> ids_;
  std::vector<Word> words_;
  std::unordered_map<std::uint64_t, std::int64_t> pair_counts_;
  std::unordered_map<std::uint64_t, std::vector<int>> pair_words_;  // may list stale words
};

}  // namespace

core::Result<ByteLevelBpe> train_byte_level_bpe(std::string_view text, const BpeTrainerOptions& options) {
  if (options.max_tokens < 256) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "BPE trainer: max_tokens " + std::to_string(options.max_tokens) +
                           " is below the 256 byte tokens");
  }
  auto split = Regex::compile(options.split_regex, /*literal=*/false);
  if (!split.ok()) {
    return core::error(core::ErrorCode::kInvalidArgument, "BPE trainer: split_regex: " + split.error().message);
  }
  return Trainer(count_words(text, **split, options.nfc)).run(options.max_tokens);
}

std::string to_byte_level_alphabet(std::string_view bytes) {
  static const std::array<char32_t, 256> kChars = tokenizer_detail::byte_level_chars();
  std::string out;
  for (unsigned char b : bytes) utf8::append(out, kChars[b]);
  return out;
}

}  // namespace aegaeon::text
