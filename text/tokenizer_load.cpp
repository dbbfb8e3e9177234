// tokenizer.json (and tokenizer_config.json) → Tokenizer::Impl. Every unsupported or malformed
// piece is reported with the file and the JSON key, e.g.
//   tokenizer.json: key 'model.merges[12]': expected a string "a b" or a pair of strings
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "text/tokenizer_impl.hpp"
#include "core/file.hpp"
#include "core/utf8.hpp"
#include "text/utf8.hpp"

namespace aegaeon::text {
namespace {

using core::ErrorCode;
using core::Result;
using nlohmann::json;
using namespace tokenizer_detail;

// The GPT-2 split used by the ByteLevel pre-tokenizer when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Ids index dense tables; a typo like 2000000000 must not allocate gigabytes. The largest real
// vocabularies (Gemma, 256k) are far below this.
constexpr std::int64_t kMaxTokenId = (1 << 24) - 1;

// Builds errors that name the file and the key path.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}
  [[nodiscard]] core::Error fail(std::string_view key, std::string_view what) const {
    return core::error(ErrorCode::kInvalidArgument,
                       source_ + ": key '" + std::string(key) + "': " + std::string(what));
  }
  [[nodiscard]] const std::string& source() const { return source_; }

  // Optional member: nullptr when absent or null.
  static const json* member(const json& obj, const char* name) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(name);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }

  Result<bool> boolean(const json& obj, const std::string& path, const char* name, bool fallback) const {
    const json* v = member(obj, name);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return fail(path + "." + name, "expected true or false");
    return v->get<bool>();
  }
  Result<std::string> string(const json& obj, const std::string& path, const char* name) const {
    const json* v = member(obj, name);
    if (v == nullptr || !v->is_string()) return fail(path + "." + name, "expected a string");
    return v->get<std::string>();
  }
  Result<std::size_t> count(const json& obj, const std::string& path, const char* name) const {
    const json* v = member(obj, name);
    if (v == nullptr) return std::size_t{0};
    if (!v->is_number_unsigned()) return fail(path + "." + name, "expected a non-negative integer");
    return v->get<std::size_t>();
  }

 private:
  std::string source_;
};

// The raw bytes a byte-level token spells, or nullopt when a character is outside the alphabet.
std::optional<std::string> byte_level_to_bytes(std::string_view token,
                                               const std::unordered_map<char32_t, unsigned char>& inverse) {
  std::string out;
  for (std::size_t pos = 0; pos < token.size();) {
    if (core::utf8_sequence_length(token, pos) == 0) return std::nullopt;
    auto it = inverse.find(utf8::decode(token, pos));
    if (it == inverse.end()) return std::nullopt;
    out.push_back(static_cast<char>(it->second));
  }
  return out;
}

Result<std::shared_ptr<const Regex>> pattern_of(const Reader& r, const json& node, const std::string& path) {
  const json* pattern = Reader::member(node, "pattern");
  if (pattern == nullptr || !pattern->is_object()) {
    return r.fail(path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
  }
  const json* literal = Reader::member(*pattern, "String");
  const json* regex = Reader::member(*pattern, "Regex");
  const json* chosen = literal != nullptr ? literal : regex;
  if (chosen == nullptr || !chosen->is_string()) {
    return r.fail(path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
  }
  auto compiled = Regex::compile(chosen->get<std::string>(), literal != nullptr);
  if (!compiled.ok()) return r.fail(path + ".pattern", compiled.error().message);
  return std::move(compiled).value();
}

Result<std::string> type_of(const Reader& r, const json& node, const std::string& path) {
  if (!node.is_object()) return r.fail(path, "expected an object");
  const json* type = Reader::member(node, "type");
  if (type == nullptr || !type->is_string()) return r.fail(path + ".type", "expected a string");
  return type->get<std::string>();
}

Result<void> parse_normalizer(const Reader& r, const json& node, const std::string& path,
                              std::vector<Normalizer>& out) {
  auto type = type_of(r, node, path);
  if (!type.ok()) return type.error();
  if (*type == "Sequence") {
    const json* list = Reader::member(node, "normalizers");
    if (list == nullptr || !list->is_array()) return r.fail(path + ".normalizers", "expected an array");
    for (std::size_t i = 0; i < list->size(); ++i) {
      AEGAEON_TRY(parse_normalizer(r, (*list)[i], path + ".normalizers[" + std::to_string(i) + "]", out));
    }
    return core::ok();
  }
  Normalizer n;
  if (*type == "NFC") {
    n.kind = Normalizer::Kind::kNfc;
  } else if (*type == "Prepend") {
    auto prepend = r.string(node, path, "prepend");
    if (!prepend.ok()) return prepend.error();
    n.kind = Normalizer::Kind::kPrepend;
    n.text = *prepend;
  } else if (*type == "Replace") {
    const json* pattern = Reader::member(node, "pattern");
    const json* literal = pattern != nullptr ? Reader::member(*pattern, "String") : nullptr;
    if (literal == nullptr || !literal->is_string()) {
      return r.fail(path + ".pattern", "expected {\"String\": ...} (Regex patterns are not supported in Replace)");
    }
    auto content = r.string(node, path, "content");
    if (!content.ok()) return content.error();
    n.kind = Normalizer::Kind::kReplace;
    n.text = literal->get<std::string>();
    n.content = *content;
    if (n.text.empty()) return r.fail(path + ".pattern", "expected a non-empty string");
  } else if (*type == "Strip") {
    auto left = r.boolean(node, path, "strip_left", false);
    auto right = r.boolean(node, path, "strip_right", false);
    if (!left.ok()) return left.error();
    if (!right.ok()) return right.error();
    n.kind = Normalizer::Kind::kStrip;
    n.strip_left = *left;
    n.strip_right = *right;
  } else {
    return r.fail(path + ".type", "unsupported normalizer '" + *type +
                                      "' (supported: NFC, Prepend, Replace, Strip, Sequence)");
  }
  out.push_back(std::move(n));
  return core::ok();
}

Result<void> parse_pre_tokenizer(const Reader& r, const json& node, const std::string& path,
                                 std::vector<PreTokenizer>& out) {
  auto type = type_of(r, node, path);
  if (!type.ok()) return type.error();
  if (*type == "Sequence") {
    const json* list = Reader::member(node, "pretokenizers");
    if (list == nullptr || !list->is_array()) return r.fail(path + ".pretokenizers", "expected an array");
    for (std::size_t i = 0; i < list->size(); ++i) {
      AEGAEON_TRY(parse_pre_tokenizer(r, (*list)[i], path + ".pretokenizers[" + std::to_string(i) + "]", out));
    }
    return core::ok();
  }
  PreTokenizer p;
  if (*type == "Split") {
    auto regex = pattern_of(r, node, path);
    if (!regex.ok()) return regex.error();
    auto behavior = r.string(node, path, "behavior");
    if (!behavior.ok()) return behavior.error();
    auto invert = r.boolean(node, path, "invert", false);
    if (!invert.ok()) return invert.error();
    p.kind = PreTokenizer::Kind::kSplit;
    p.regex = *regex;
    p.invert = *invert;
    if (*behavior == "Isolated") {
      p.behavior = SplitBehavior::kIsolated;
    } else if (*behavior == "Removed") {
      p.behavior = SplitBehavior::kRemoved;
    } else if (*behavior == "MergedWithPrevious") {
      p.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (*behavior == "MergedWithNext") {
      p.behavior = SplitBehavior::kMergedWithNext;
    } else if (*behavior == "Contiguous") {
      p.behavior = SplitBehavior::kContiguous;
    } else {
      return r.fail(path + ".behavior",
                    "expected Isolated, Removed, MergedWithPrevious, MergedWithNext or Contiguous");
    }
  } else if (*type == "ByteLevel") {
    auto prefix = r.boolean(node, path, "add_prefix_space", true);
    auto use_regex = r.boolean(node, path, "use_regex", true);
    if (!prefix.ok()) return prefix.error();
    if (!use_regex.ok()) return use_regex.error();
    p.kind = PreTokenizer::Kind::kByteLevel;
    p.add_prefix_space = *prefix;
    if (*use_regex) {
      auto regex = Regex::compile(kGpt2Pattern, false);
      if (!regex.ok()) return regex.error();
      p.regex = *regex;
    }
  } else if (*type == "Metaspace") {
    auto replacement = r.string(node, path, "replacement");
    if (!replacement.ok()) return replacement.error();
    auto split = r.boolean(node, path, "split", true);
    if (!split.ok()) return split.error();
    p.kind = PreTokenizer::Kind::kMetaspace;
    p.replacement = *replacement;
    p.split = *split;
    if (core::utf8_sequence_length(p.replacement, 0) != p.replacement.size() || p.replacement.empty()) {
      return r.fail(path + ".replacement", "expected one character");
    }
    const json* scheme = Reader::member(node, "prepend_scheme");
    std::string s = scheme != nullptr && scheme->is_string() ? scheme->get<std::string>() : "";
    if (scheme == nullptr) {
      auto add = r.boolean(node, path, "add_prefix_space", true);  // the pre-0.14 spelling
      if (!add.ok()) return add.error();
      s = *add ? "always" : "never";
    }
    if (s == "always") {
      p.prepend_scheme = PreTokenizer::PrependScheme::kAlways;
    } else if (s == "first") {
      p.prepend_scheme = PreTokenizer::PrependScheme::kFirst;
    } else if (s == "never") {
      p.prepend_scheme = PreTokenizer::PrependScheme::kNever;
    } else {
      return r.fail(path + ".prepend_scheme", "expected \"always\", \"first\" or \"never\"");
    }
  } else if (*type == "Digits") {
    auto individual = r.boolean(node, path, "individual_digits", false);
    if (!individual.ok()) return individual.error();
    auto regex = Regex::compile(R"(\p{N})", false);
    if (!regex.ok()) return regex.error();
    p.kind = PreTokenizer::Kind::kDigits;
    p.regex = *regex;
    p.behavior = *individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous;
  } else {
    return r.fail(path + ".type", "unsupported pre_tokenizer '" + *type +
                                      "' (supported: Split, ByteLevel, Metaspace, Digits, Sequence)");
  }
  out.push_back(std::move(p));
  return core::ok();
}

Result<void> parse_decoder(const Reader& r, const json& node, const std::string& path, std::vector<Decoder>& out) {
  auto type = type_of(r, node, path);
  if (!type.ok()) return type.error();
  if (*type == "Sequence") {
    const json* list = Reader::member(node, "decoders");
    if (list == nullptr || !list->is_array()) return r.fail(path + ".decoders", "expected an array");
    for (std::size_t i = 0; i < list->size(); ++i) {
      AEGAEON_TRY(parse_decoder(r, (*list)[i], path + ".decoders[" + std::to_string(i) + "]", out));
    }
    return core::ok();
  }
  Decoder d;
  if (*type == "ByteLevel") {
    d.kind = Decoder::Kind::kByteLevel;
  } else if (*type == "ByteFallback") {
    d.kind = Decoder::Kind::kByteFallback;
  } else if (*type == "Fuse") {
    d.kind = Decoder::Kind::kFuse;
  } else if (*type == "Replace") {
    const json* pattern = Reader::member(node, "pattern");
    const json* literal = pattern != nullptr ? Reader::member(*pattern, "String") : nullptr;
    if (literal == nullptr || !literal->is_string() || literal->get<std::string>().empty()) {
      return r.fail(path + ".pattern", "expected {\"String\": \"<non-empty>\"}");
    }
    auto content = r.string(node, path, "content");
    if (!content.ok()) return content.error();
    d.kind = Decoder::Kind::kReplace;
    d.pattern = literal->get<std::string>();
    d.content = *content;
  } else if (*type == "Strip") {
    auto content = r.string(node, path, "content");
    auto start = r.count(node, path, "start");
    auto stop = r.count(node, path, "stop");
    if (!content.ok()) return content.error();
    if (!start.ok()) return start.error();
    if (!stop.ok()) return stop.error();
    if (core::utf8_sequence_length(*content, 0) != content->size() || content->empty()) {
      return r.fail(path + ".content", "expected one character");
    }
    d.kind = Decoder::Kind::kStrip;
    d.content = *content;
    d.start = *start;
    d.stop = *stop;
  } else if (*type == "Metaspace") {
    auto replacement = r.string(node, path, "replacement");
    if (!replacement.ok()) return replacement.error();
    d.kind = Decoder::Kind::kMetaspace;
    d.content = *replacement;
    const json* scheme = Reader::member(node, "prepend_scheme");
    if (scheme != nullptr && scheme->is_string()) {
      d.prepend = scheme->get<std::string>() != "never";
    } else {
      auto add = r.boolean(node, path, "add_prefix_space", true);
      if (!add.ok()) return add.error();
      d.prepend = *add;
    }
  } else {
    return r.fail(path + ".type", "unsupported decoder '" + *type +
                                      "' (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence)");
  }
  out.push_back(std::move(d));
  return core::ok();
}

Result<void> parse_post_processor(const Reader& r, const json& node, const std::string& path,
                                  const std::unordered_map<std::string, std::int32_t>& token_ids,
                                  std::vector<TemplateItem>& out) {
  auto type = type_of(r, node, path);
  if (!type.ok()) return type.error();
  if (*type == "Sequence") {
    const json* list = Reader::member(node, "processors");
    if (list == nullptr || !list->is_array()) return r.fail(path + ".processors", "expected an array");
    for (std::size_t i = 0; i < list->size(); ++i) {
      AEGAEON_TRY(parse_post_processor(r, (*list)[i], path + ".processors[" + std::to_string(i) + "]",
                                       token_ids, out));
    }
    return core::ok();
  }
  if (*type == "ByteLevel") return core::ok();  // only adjusts offsets
  if (*type == "TemplateProcessing") {
    const json* single = Reader::member(node, "single");
    if (single == nullptr || !single->is_array()) return r.fail(path + ".single", "expected an array");
    const json* specials = Reader::member(node, "special_tokens");
    out.clear();
    for (std::size_t i = 0; i < single->size(); ++i) {
      const std::string item_path = path + ".single[" + std::to_string(i) + "]";
      const json& item = (*single)[i];
      if (Reader::member(item, "Sequence") != nullptr) {
        out.push_back(TemplateItem{true, {}});
        continue;
      }
      const json* special = Reader::member(item, "SpecialToken");
      const json* id = special != nullptr ? Reader::member(*special, "id") : nullptr;
      if (id == nullptr || !id->is_string()) {
        return r.fail(item_path, "expected {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}");
      }
      const std::string name = id->get<std::string>();
      const json* entry = specials != nullptr ? Reader::member(*specials, name.c_str()) : nullptr;
      const json* ids = entry != nullptr ? Reader::member(*entry, "ids") : nullptr;
      if (ids == nullptr || !ids->is_array()) {
        return r.fail(path + ".special_tokens", "expected an entry for '" + name + "' with an 'ids' array");
      }
      TemplateItem t;
      for (const json& v : *ids) {
        if (!v.is_number_integer()) return r.fail(path + ".special_tokens." + name + ".ids", "expected integers");
        t.ids.push_back(v.get<std::int32_t>());
      }
      out.push_back(std::move(t));
    }
    return core::ok();
  }
  if (*type == "RobertaProcessing" || *type == "BertProcessing") {
    // {"cls": ["<s>", 0], "sep": ["</s>", 2]}: cls A sep.
    TemplateItem cls, sep;
    for (auto [name, item] : {std::pair{"cls", &cls}, std::pair{"sep", &sep}}) {
      const json* v = Reader::member(node, name);
      if (v == nullptr || !v->is_array() || v->size() != 2 || !(*v)[1].is_number_integer()) {
        return r.fail(path + "." + name, "expected [token, id]");
      }
      item->ids.push_back((*v)[1].get<std::int32_t>());
    }
    out = {cls, TemplateItem{true, {}}, sep};
    return core::ok();
  }
  (void)token_ids;
  return r.fail(path + ".type", "unsupported post_processor '" + *type +
                                    "' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, "
                                    "BertProcessing, Sequence)");
}

void build_matcher(const std::vector<AddedToken>& tokens, bool normalized,
                   const std::vector<Normalizer>& normalizers, AddedTokenMatcher& m) {
  for (const AddedToken& t : tokens) {
    if (t.normalized != normalized || t.content.empty()) continue;
    m.patterns.push_back(normalized ? normalize_text(normalizers, t.content) : t.content);
    m.tokens.push_back(&t);
  }
  for (std::size_t i = 0; i < m.patterns.size(); ++i) {
    if (m.patterns[i].empty()) continue;
    m.by_first_byte[static_cast<unsigned char>(m.patterns[i][0])].push_back(i);
  }
  for (auto& bucket : m.by_first_byte) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](std::size_t a, std::size_t b) {
      return m.patterns[a].size() > m.patterns[b].size();
    });
  }
}

// Name of a bos/eos entry of tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  const json* v = Reader::member(config, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  const json* content = Reader::member(*v, "content");
  if (content != nullptr && content->is_string()) return content->get<std::string>();
  return std::nullopt;
}

Result<json> parse_json(std::string_view text, const std::string& source) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return core::error(ErrorCode::kInvalidArgument, source + ": not valid JSON");
  }
  return doc;
}

}  // namespace

// GPT-2's bytes_to_unicode(): the character each byte is spelled with in byte-level vocabularies.
std::array<char32_t, 256> tokenizer_detail::byte_level_chars() {
  std::array<char32_t, 256> map{};
  std::array<bool, 256> printable{};
  for (int b = 0; b < 256; ++b) {
    printable[static_cast<std::size_t>(b)] = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
  }
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    map[static_cast<std::size_t>(b)] = printable[static_cast<std::size_t>(b)] ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

Result<Tokenizer> Tokenizer::from_json(std::string_view json_text, std::string_view source,
                                       std::string_view config_json_text) {
  const Reader r{std::string(source)};
  auto parsed = parse_json(json_text, r.source());
  if (!parsed.ok()) return parsed.error();
  const json& doc = *parsed;
  if (!doc.is_object()) return r.fail("", "expected a JSON object at the top level");

  auto impl = std::make_shared<Impl>();
  impl->source = r.source();

  // ---- model ----
  const json* model = Reader::member(doc, "model");
  if (model == nullptr || !model->is_object()) return r.fail("model", "expected an object");
  const json* model_type = Reader::member(*model, "type");
  if (model_type != nullptr) {
    if (!model_type->is_string()) return r.fail("model.type", "expected a string");
    if (model_type->get<std::string>() != "BPE") {
      return r.fail("model.type", "unsupported model type '" + model_type->get<std::string>() +
                                      "' (supported: BPE)");
    }
  } else if (Reader::member(*model, "merges") == nullptr) {
    return r.fail("model.type", "missing, and the model has no 'merges' (only BPE is supported)");
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = Reader::member(*model, affix);
    if (v != nullptr && (!v->is_string() || !v->get<std::string>().empty())) {
      return r.fail(std::string("model.") + affix, "unsupported: expected null or \"\"");
    }
  }
  if (const json* dropout = Reader::member(*model, "dropout");
      dropout != nullptr && !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return r.fail("model.dropout", "unsupported: expected null (BPE dropout is for training)");
  }
  auto byte_fallback = r.boolean(*model, "model", "byte_fallback", false);
  auto ignore_merges = r.boolean(*model, "model", "ignore_merges", false);
  auto fuse_unk = r.boolean(*model, "model", "fuse_unk", false);
  if (!byte_fallback.ok()) return byte_fallback.error();
  if (!ignore_merges.ok()) return ignore_merges.error();
  if (!fuse_unk.ok()) return fuse_unk.error();
  BpeModel& bpe = impl->model;
  bpe.byte_fallback = *byte_fallback;
  bpe.ignore_merges = *ignore_merges;
  bpe.fuse_unk = *fuse_unk;

  const json* vocab = Reader::member(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object()) return r.fail("model.vocab", "expected an object of token → id");
  std::unordered_map<std::string, std::int32_t> text_vocab;
  text_vocab.reserve(vocab->size());
  std::int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
        it.value().get<std::int64_t>() > kMaxTokenId) {
      return r.fail("model.vocab." + it.key(), "expected an integer id in [0, " + std::to_string(kMaxTokenId) + "]");
    }
    const auto id = it.value().get<std::int32_t>();
    text_vocab.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }

  // ---- added tokens ----
  const json* added = Reader::member(doc, "added_tokens");
  if (added != nullptr && !added->is_array()) return r.fail("added_tokens", "expected an array");
  if (added != nullptr) {
    for (std::size_t i = 0; i < added->size(); ++i) {
      const std::string path = "added_tokens[" + std::to_string(i) + "]";
      const json& t = (*added)[i];
      const json* id = Reader::member(t, "id");
      if (id == nullptr || !id->is_number_integer() || id->get<std::int64_t>() < 0 ||
          id->get<std::int64_t>() > kMaxTokenId) {
        return r.fail(path + ".id", "expected an integer id in [0, " + std::to_string(kMaxTokenId) + "]");
      }
      auto content = r.string(t, path, "content");
      if (!content.ok()) return content.error();
      AddedToken a;
      a.id = id->get<std::int32_t>();
      a.content = *content;
      auto special = r.boolean(t, path, "special", false);
      auto single_word = r.boolean(t, path, "single_word", false);
      auto lstrip = r.boolean(t, path, "lstrip", false);
      auto rstrip = r.boolean(t, path, "rstrip", false);
      if (!special.ok()) return special.error();
      if (!single_word.ok()) return single_word.error();
      if (!lstrip.ok()) return lstrip.error();
      if (!rstrip.ok()) return rstrip.error();
      a.special = *special;
      auto normalized = r.boolean(t, path, "normalized", !a.special);
      if (!normalized.ok()) return normalized.error();
      a.single_word = *single_word;
      a.lstrip = *lstrip;
      a.rstrip = *rstrip;
      a.normalized = *normalized;
      max_id = std::max(max_id, a.id);
      impl->added_tokens.push_back(std::move(a));
    }
  }

  // ---- id tables ----
  const auto size = static_cast<std::size_t>(max_id + 1);
  impl->id_to_token.resize(size);
  impl->id_exists.assign(size, 0);
  impl->id_special.assign(size, 0);
  for (const auto& [token, id] : text_vocab) {
    impl->id_to_token[static_cast<std::size_t>(id)] = token;
    impl->id_exists[static_cast<std::size_t>(id)] = 1;
  }
  for (const AddedToken& a : impl->added_tokens) {
    impl->id_to_token[static_cast<std::size_t>(a.id)] = a.content;
    impl->id_exists[static_cast<std::size_t>(a.id)] = 1;
    impl->id_special[static_cast<std::size_t>(a.id)] = a.special ? 1 : 0;
  }
  impl->token_to_id = text_vocab;
  for (const AddedToken& a : impl->added_tokens) impl->token_to_id[a.content] = a.id;

  // ---- normalizer, pre-tokenizer, decoder, post-processor ----
  if (const json* n = Reader::member(doc, "normalizer")) {
    AEGAEON_TRY(parse_normalizer(r, *n, "normalizer", impl->normalizers));
  }
  if (const json* p = Reader::member(doc, "pre_tokenizer")) {
    AEGAEON_TRY(parse_pre_tokenizer(r, *p, "pre_tokenizer", impl->pre_tokenizers));
  }
  if (const json* d = Reader::member(doc, "decoder")) {
    AEGAEON_TRY(parse_decoder(r, *d, "decoder", impl->decoders));
    impl->has_decoder = true;
  }
  if (const json* p = Reader::member(doc, "post_processor")) {
    AEGAEON_TRY(parse_post_processor(r, *p, "post_processor", impl->token_to_id, impl->post_template));
  }
  bpe.byte_level = std::any_of(impl->pre_tokenizers.begin(), impl->pre_tokenizers.end(),
                               [](const PreTokenizer& p) { return p.kind == PreTokenizer::Kind::kByteLevel; });

  // ---- model vocabulary as the BPE sees it ----
  const std::array<char32_t, 256> chars = byte_level_chars();
  std::unordered_map<char32_t, unsigned char> inverse;
  for (int b = 0; b < 256; ++b) inverse.emplace(chars[static_cast<std::size_t>(b)], static_cast<unsigned char>(b));
  bpe.byte_ids.fill(-1);
  bpe.fallback_ids.fill(-1);
  bpe.vocab.reserve(text_vocab.size());
  for (const auto& [token, id] : text_vocab) {
    if (bpe.byte_level) {
      if (auto bytes = byte_level_to_bytes(token, inverse)) {
        if (bytes->size() == 1) bpe.byte_ids[static_cast<unsigned char>((*bytes)[0])] = id;
        bpe.vocab.emplace(std::move(*bytes), id);
      }
    } else {
      bpe.vocab.emplace(token, id);
    }
  }
  if (bpe.byte_fallback) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const std::string name = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
      if (auto it = text_vocab.find(name); it != text_vocab.end()) bpe.fallback_ids[static_cast<std::size_t>(b)] = it->second;
    }
  }
  if (const json* unk = Reader::member(*model, "unk_token")) {
    if (!unk->is_string()) return r.fail("model.unk_token", "expected a string or null");
    auto it = text_vocab.find(unk->get<std::string>());
    if (it == text_vocab.end()) {
      return r.fail("model.unk_token", "'" + unk->get<std::string>() + "' is not in model.vocab");
    }
    bpe.unk_id = it->second;
  }

  // ---- merges: "a b" strings or [a, b] pairs ----
  const json* merges = Reader::member(*model, "merges");
  if (merges == nullptr || !merges->is_array()) return r.fail("model.merges", "expected an array");
  bpe.merges.reserve(merges->size());
  for (std::size_t i = 0; i < merges->size(); ++i) {
    const std::string path = "model.merges[" + std::to_string(i) + "]";
    const json& m = (*merges)[i];
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const std::size_t space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 >= s.size() || s.find(' ', space + 1) != std::string::npos) {
        return r.fail(path, "expected \"a b\": two tokens separated by one space");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return r.fail(path, "expected a string \"a b\" or a pair of strings");
    }
    auto a = text_vocab.find(left);
    auto b = text_vocab.find(right);
    auto merged = text_vocab.find(left + right);
    if (a == text_vocab.end()) return r.fail(path, "token '" + left + "' is not in model.vocab");
    if (b == text_vocab.end()) return r.fail(path, "token '" + right + "' is not in model.vocab");
    if (merged == text_vocab.end()) return r.fail(path, "merged token '" + left + right + "' is not in model.vocab");
    const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a->second)) << 32) |
                              static_cast<std::uint32_t>(b->second);
    // The first (lowest-rank) occurrence of a pair wins, as in tokenizers.
    bpe.merges.emplace(key, std::pair{static_cast<std::uint32_t>(i), merged->second});
  }

  // A normalized added token decodes as its normalized spelling, as tokenizers does (its
  // id → token map holds the normalized content; token → id keeps the original).
  for (const AddedToken& a : impl->added_tokens) {
    if (a.normalized && !impl->normalizers.empty()) {
      impl->id_to_token[static_cast<std::size_t>(a.id)] = normalize_text(impl->normalizers, a.content);
    }
  }

  // ---- added-token matchers ----
  build_matcher(impl->added_tokens, false, impl->normalizers, impl->raw_matcher);
  build_matcher(impl->added_tokens, true, impl->normalizers, impl->normalized_matcher);

  // ---- tokenizer_config.json: bos / eos ----
  if (!config_json_text.empty()) {
    const std::string config_source = (std::filesystem::path(r.source()).parent_path() / "tokenizer_config.json").string();
    auto config = parse_json(config_json_text, config_source);
    if (!config.ok()) return config.error();
    for (auto [key, slot] : {std::pair{"bos_token", &impl->bos_id}, std::pair{"eos_token", &impl->eos_id}}) {
      if (auto name = config_token(*config, key)) {
        auto it = impl->token_to_id.find(*name);
        if (it == impl->token_to_id.end()) {
          return core::error(ErrorCode::kInvalidArgument, config_source + ": key '" + key + "': token '" +
                                                              *name + "' is not in " + r.source());
        }
        *slot = it->second;
      }
    }
  }
  return Tokenizer(std::shared_ptr<const Impl>(std::move(impl)));
}

Result<Tokenizer> Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  AEGAEON_TRY_ASSIGN(text, core::read_file(tokenizer_json));
  const std::filesystem::path config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
  std::string config_text;
  if (std::filesystem::exists(config_path)) {
    AEGAEON_TRY_ASSIGN(config, core::read_file(config_path));
    config_text = std::move(config);
  }
  return from_json(text, tokenizer_json.string(), config_text);
}

}  // namespace aegaeon::text
