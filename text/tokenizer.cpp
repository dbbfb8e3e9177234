// The encode and decode pipelines of Tokenizer, in the order Hugging Face tokenizers runs them:
// split out added tokens → normalize → split out normalized added tokens → pre-tokenize →
// BPE per word (cached) → post-process template; decode: ids → token strings → decoder chain.
#include "text/tokenizer.hpp"

#include <algorithm>
#include <mutex>

#include "core/utf8.hpp"
#include "text/tokenizer_impl.hpp"
#include "text/utf8.hpp"

namespace aegaeon::text {
namespace tokenizer_detail {

std::string normalize_text(const std::vector<Normalizer>& normalizers, std::string text) {
  for (const Normalizer& n : normalizers) {
    switch (n.kind) {
      case Normalizer::Kind::kNfc:
        text = utf8::to_nfc(text);
        break;
      case Normalizer::Kind::kPrepend:
        if (!text.empty()) text.insert(0, n.text);
        break;
      case Normalizer::Kind::kReplace: {
        std::string out;
        out.reserve(text.size());
        std::size_t pos = 0;
        for (std::size_t hit; (hit = text.find(n.text, pos)) != std::string::npos; pos = hit + n.text.size()) {
          out.append(text, pos, hit - pos);
          out.append(n.content);
        }
        out.append(text, pos);
        text = std::move(out);
        break;
      }
      case Normalizer::Kind::kStrip: {
        std::size_t begin = 0, end = text.size();
        if (n.strip_left) {
          for (std::size_t pos = 0; pos < end;) {
            std::size_t next = pos;
            if (!utf8::is_whitespace(utf8::decode(text, next))) break;
            begin = pos = next;
          }
        }
        if (n.strip_right) {
          // Walk forward, remembering where the trailing whitespace run starts.
          std::size_t run = end;
          for (std::size_t pos = begin; pos < end;) {
            const std::size_t at = pos;
            const bool ws = utf8::is_whitespace(utf8::decode(text, pos));
            if (!ws) run = end;
            else if (run == end) run = at;
          }
          end = run;
        }
        text = text.substr(begin, end - begin);
        break;
      }
    }
  }
  return text;
}

}  // namespace tokenizer_detail

namespace {

using namespace tokenizer_detail;
using Range = std::pair<std::size_t, std::size_t>;

// A piece of text on its way to the model, or an added token already resolved to an id.
struct Piece {
  std::string text;
  std::int32_t token_id = -1;
  bool at_start = false;  // begins at offset 0 of the original input (Metaspace "first")
};

bool is_word_char(std::string_view text, std::size_t pos) {
  std::size_t p = pos;
  const char32_t cp = utf8::decode(text, p);
  return cp == '_' || (cp < 0x80 ? std::isalnum(static_cast<int>(cp)) != 0 : !utf8::is_whitespace(cp));
}

// Splits `text` on the matcher's added tokens (leftmost-longest), honouring lstrip, rstrip and
// single_word as tokenizers' AddedVocabulary::find_matches does.
void split_added(const std::string& text, bool at_start, const AddedTokenMatcher& m, std::vector<Piece>& out) {
  if (m.patterns.empty()) {
    if (!text.empty()) out.push_back(Piece{text, -1, at_start});
    return;
  }
  std::size_t emitted = 0;  // text before this offset is already in `out`
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = m.by_first_byte[static_cast<unsigned char>(text[pos])];
    std::size_t found = SIZE_MAX;
    for (std::size_t idx : bucket) {
      const std::string& p = m.patterns[idx];
      if (text.compare(pos, p.size(), p) == 0) {
        found = idx;
        break;
      }
    }
    if (found == SIZE_MAX) {
      ++pos;
      continue;
    }
    const AddedToken& token = *m.tokens[found];
    std::size_t start = pos;
    std::size_t stop = pos + m.patterns[found].size();
    if (token.single_word) {
      const bool start_ok = start == 0 || !is_word_char(text, [&] {
        std::size_t b = start - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        return b;
      }());
      const bool stop_ok = stop == text.size() || !is_word_char(text, stop);
      if (!start_ok || !stop_ok) {
        pos = stop;  // a non-overlapping search continues after the rejected match
        continue;
      }
    }
    if (token.lstrip) {
      std::size_t s = start;
      while (s > emitted) {
        std::size_t b = s - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        std::size_t probe = b;
        if (!utf8::is_whitespace(utf8::decode(text, probe))) break;
        s = b;
      }
      start = s;
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        std::size_t probe = stop;
        if (!utf8::is_whitespace(utf8::decode(text, probe))) break;
        stop = probe;
      }
    }
    if (emitted < start) out.push_back(Piece{text.substr(emitted, start - emitted), -1, at_start && emitted == 0});
    out.push_back(Piece{{}, token.id, false});
    emitted = stop;
    pos = stop;
  }
  if (emitted < text.size()) out.push_back(Piece{text.substr(emitted), -1, at_start && emitted == 0});
}

// tokenizers' NormalizedString::split: matches → pieces by behavior; empty pieces dropped.
void split_by(const std::string& text, const std::vector<Range>& matches, SplitBehavior behavior,
              bool invert, std::vector<Range>& out) {
  std::vector<std::pair<Range, bool>> parts;
  parts.reserve(matches.size() * 2 + 1);
  std::size_t prev = 0;
  for (const Range& m : matches) {
    if (prev != m.first) parts.push_back({{prev, m.first}, invert});
    parts.push_back({m, !invert});
    prev = m.second;
  }
  if (prev != text.size()) parts.push_back({{prev, text.size()}, invert});

  std::vector<Range> result;
  result.reserve(parts.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& [r, is_match] : parts) {
        if (!is_match) result.push_back(r);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const auto& [r, is_match] : parts) result.push_back(r);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& [r, is_match] : parts) {
        if (is_match && !previous_match && !result.empty()) {
          result.back().second = r.second;
        } else {
          result.push_back(r);
        }
        previous_match = is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->second && !previous_match && !result.empty()) {
          result.back().first = it->first.first;
        } else {
          result.push_back(it->first);
        }
        previous_match = it->second;
      }
      std::reverse(result.begin(), result.end());
      break;
    case SplitBehavior::kContiguous:
      for (const auto& [r, is_match] : parts) {
        if (is_match == previous_match && !result.empty()) {
          result.back().second = r.second;
        } else {
          result.push_back(r);
        }
        previous_match = is_match;
      }
      break;
  }
  for (const Range& r : result) {
    if (r.second > r.first) out.push_back(r);
  }
}

void pre_tokenize(const std::vector<PreTokenizer>& steps, std::vector<Piece>& pieces) {
  std::vector<Range> matches, ranges;
  std::vector<Piece> next;
  for (const PreTokenizer& step : steps) {
    next.clear();
    for (Piece& piece : pieces) {
      std::string& text = piece.text;
      switch (step.kind) {
        case PreTokenizer::Kind::kByteLevel:
          if (step.add_prefix_space && text.front() != ' ') text.insert(0, 1, ' ');
          if (!step.regex) {
            next.push_back(std::move(piece));
            continue;
          }
          break;
        case PreTokenizer::Kind::kMetaspace: {
          std::string replaced;
          replaced.reserve(text.size() + step.replacement.size());
          for (char c : text) {
            if (c == ' ') {
              replaced += step.replacement;
            } else {
              replaced.push_back(c);
            }
          }
          const bool starts = replaced.compare(0, step.replacement.size(), step.replacement) == 0;
          if (!starts && (step.prepend_scheme == PreTokenizer::PrependScheme::kAlways ||
                          (step.prepend_scheme == PreTokenizer::PrependScheme::kFirst && piece.at_start))) {
            replaced.insert(0, step.replacement);
          }
          text = std::move(replaced);
          if (!step.split) {
            next.push_back(std::move(piece));
            continue;
          }
          break;
        }
        case PreTokenizer::Kind::kSplit:
        case PreTokenizer::Kind::kDigits:
          break;
      }
      matches.clear();
      ranges.clear();
      if (step.kind == PreTokenizer::Kind::kMetaspace) {
        for (std::size_t at = text.find(step.replacement); at != std::string::npos;
             at = text.find(step.replacement, at + step.replacement.size())) {
          matches.emplace_back(at, at + step.replacement.size());
        }
        split_by(text, matches, SplitBehavior::kMergedWithNext, false, ranges);
      } else {
        step.regex->find_all(text, matches);
        const SplitBehavior behavior =
            step.kind == PreTokenizer::Kind::kByteLevel ? SplitBehavior::kIsolated : step.behavior;
        split_by(text, matches, behavior, step.kind == PreTokenizer::Kind::kSplit && step.invert, ranges);
      }
      for (const Range& r : ranges) {
        next.push_back(Piece{text.substr(r.first, r.second - r.first), -1, piece.at_start && r.first == 0});
      }
    }
    pieces.swap(next);
  }
}

// GPT-2 byte alphabet, inverted: code point → byte, -1 outside the alphabet (decode side).
struct ByteDecoderTable {
  std::array<std::int16_t, 0x144> byte_of{};
  ByteDecoderTable() {
    byte_of.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_of[static_cast<std::size_t>(printable ? b : next++)] = static_cast<std::int16_t>(b);
    }
  }
};

void append_byte_level(std::string_view token, std::string& bytes) {
  static const ByteDecoderTable table;
  const std::size_t mark = bytes.size();
  for (std::size_t pos = 0; pos < token.size();) {
    if (core::utf8_sequence_length(token, pos) == 0) {
      bytes.resize(mark);
      bytes.append(token);
      return;
    }
    const char32_t cp = utf8::decode(token, pos);
    const int b = cp < table.byte_of.size() ? table.byte_of[cp] : -1;
    if (b < 0) {
      // A character outside the alphabet: the whole token passes through as text.
      bytes.resize(mark);
      bytes.append(token);
      return;
    }
    bytes.push_back(static_cast<char>(b));
  }
}

std::optional<unsigned char> byte_token(std::string_view token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    value = value * 16 + digit;
  }
  return static_cast<unsigned char>(value);
}

}  // namespace

std::string Tokenizer::Impl::run_decoders(std::vector<std::string> tokens, bool token_bytes) const {
  if (!has_decoder) {
    std::string joined;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) joined.push_back(' ');
      joined += tokens[i];
    }
    return joined;
  }
  for (const Decoder& d : decoders) {
    switch (d.kind) {
      case Decoder::Kind::kByteLevel: {
        std::string bytes;
        for (const std::string& t : tokens) append_byte_level(t, bytes);
        tokens.assign(1, token_bytes ? std::move(bytes) : core::to_valid_utf8(bytes));
        break;
      }
      case Decoder::Kind::kReplace:
        for (std::string& t : tokens) {
          std::string out;
          std::size_t pos = 0;
          for (std::size_t hit; (hit = t.find(d.pattern, pos)) != std::string::npos; pos = hit + d.pattern.size()) {
            out.append(t, pos, hit - pos);
            out += d.content;
          }
          out.append(t, pos);
          t = std::move(out);
        }
        break;
      case Decoder::Kind::kByteFallback: {
        std::vector<std::string> out;
        std::string run;
        std::size_t run_tokens = 0;
        const auto flush = [&] {
          if (run_tokens == 0) return;
          if (token_bytes || core::is_valid_utf8(run)) {
            out.push_back(run);
          } else {
            for (std::size_t i = 0; i < run_tokens; ++i) out.emplace_back(core::kUtf8Replacement);
          }
          run.clear();
          run_tokens = 0;
        };
        for (std::string& t : tokens) {
          if (auto b = byte_token(t)) {
            run.push_back(static_cast<char>(*b));
            ++run_tokens;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case Decoder::Kind::kFuse: {
        std::string fused;
        for (const std::string& t : tokens) fused += t;
        tokens.assign(1, std::move(fused));
        break;
      }
      case Decoder::Kind::kStrip:
        if (token_bytes) break;  // strips the start and end of a whole text, not of a token inside it
        for (std::string& t : tokens) {
          std::size_t begin = 0, end = t.size();
          for (std::size_t i = 0; i < d.start && t.compare(begin, d.content.size(), d.content) == 0; ++i) {
            begin += d.content.size();
          }
          for (std::size_t i = 0; i < d.stop && end >= begin + d.content.size() &&
                                  t.compare(end - d.content.size(), d.content.size(), d.content) == 0;
               ++i) {
            end -= d.content.size();
          }
          t = t.substr(begin, end - begin);
        }
        break;
      case Decoder::Kind::kMetaspace:
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          std::string out;
          std::string& t = tokens[i];
          std::size_t pos = 0;
          for (std::size_t hit; (hit = t.find(d.content, pos)) != std::string::npos; pos = hit + d.content.size()) {
            out.append(t, pos, hit - pos);
            out.push_back(' ');
          }
          out.append(t, pos);
          if (i == 0 && d.prepend && !token_bytes && !out.empty() && out.front() == ' ') out.erase(0, 1);
          t = std::move(out);
        }
        break;
    }
  }
  std::string joined;
  for (const std::string& t : tokens) joined += t;
  return joined;
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& impl = *impl_;
  const std::string valid = core::is_valid_utf8(text) ? std::string(text) : core::to_valid_utf8(text);

  std::vector<Piece> raw;
  split_added(valid, true, impl.raw_matcher, raw);
  std::vector<Piece> pieces;
  std::vector<std::int32_t> ids;
  ids.reserve(valid.size() / 3 + 4);
  std::vector<std::int32_t> word_ids;
  for (Piece& segment : raw) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
      continue;
    }
    pieces.clear();
    std::string normalized = impl.normalizers.empty() ? std::move(segment.text)
                                                      : normalize_text(impl.normalizers, std::move(segment.text));
    split_added(normalized, segment.at_start, impl.normalized_matcher, pieces);
    std::vector<Piece> words;
    for (Piece& p : pieces) {
      if (p.token_id >= 0) {
        ids.push_back(p.token_id);
        continue;
      }
      words.clear();
      words.push_back(std::move(p));
      pre_tokenize(impl.pre_tokenizers, words);
      for (const Piece& w : words) {
        if (w.text.size() > WordCache::kMaxWordBytes) {
          impl.model.encode_word(w.text, ids);
          continue;
        }
        {
          std::shared_lock lock(impl.cache.mutex);
          auto it = impl.cache.entries.find(w.text);
          if (it != impl.cache.entries.end()) {
            ids.insert(ids.end(), it->second.begin(), it->second.end());
            continue;
          }
        }
        word_ids.clear();
        impl.model.encode_word(w.text, word_ids);
        ids.insert(ids.end(), word_ids.begin(), word_ids.end());
        std::unique_lock lock(impl.cache.mutex);
        if (impl.cache.entries.size() < WordCache::kCapacity) impl.cache.entries.emplace(w.text, word_ids);
      }
    }
  }
  if (!add_special_tokens || impl.post_template.empty()) return ids;
  std::vector<std::int32_t> out;
  out.reserve(ids.size() + 4);
  for (const TemplateItem& item : impl.post_template) {
    if (item.is_sequence) {
      out.insert(out.end(), ids.begin(), ids.end());
    } else {
      out.insert(out.end(), item.ids.begin(), item.ids.end());
    }
  }
  return out;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::int32_t id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= impl.id_to_token.size()) continue;
    const auto index = static_cast<std::size_t>(id);
    if (impl.id_exists[index] == 0) continue;
    if (skip_special_tokens && impl.id_special[index] != 0) continue;
    tokens.push_back(impl.id_to_token[index]);
  }
  return impl.run_decoders(std::move(tokens));
}

std::string Tokenizer::token_bytes(std::int32_t id) const {
  const Impl& impl = *impl_;
  if (id < 0 || static_cast<std::size_t>(id) >= impl.id_to_token.size()) return {};
  if (impl.id_exists[static_cast<std::size_t>(id)] == 0) return {};
  return impl.run_decoders({impl.id_to_token[static_cast<std::size_t>(id)]}, /*token_bytes=*/true);
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_to_id.find(std::string(token));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string_view> Tokenizer::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_to_token.size()) return std::nullopt;
  if (impl_->id_exists[static_cast<std::size_t>(id)] == 0) return std::nullopt;
  return impl_->id_to_token[static_cast<std::size_t>(id)];
}

std::size_t Tokenizer::vocab_size() const { return impl_->id_to_token.size(); }

bool Tokenizer::is_special(std::int32_t id) const {
  return id >= 0 && static_cast<std::size_t>(id) < impl_->id_special.size() &&
         impl_->id_special[static_cast<std::size_t>(id)] != 0;
}

std::optional<std::int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<std::int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }

}  // namespace aegaeon::text
