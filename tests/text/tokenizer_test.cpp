// Tokenizer: hand-checked encodes/decodes on tiny tokenizer.json files built here, merges format
// variants, added and special tokens, byte fallback, streaming decode, and every load error.
#include "text/tokenizer.hpp"
#include "text/tokenizer_incremental_decoder.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aegaeon::text {
namespace {

using nlohmann::json;
using Ids = std::vector<std::int32_t>;

const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path() / "testdata" / "tokenizers";

// GPT-2's byte → character alphabet, so tests can spell byte-level vocabularies.
std::string byte_char(int b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      const bool p = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
      if (!p) ++n;
    }
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

// A byte-level BPE tokenizer.json: ids 0..255 are the bytes, merged tokens follow in order.
json byte_level(const std::vector<std::pair<std::string, std::string>>& merges, bool merges_as_pairs = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json merge_list = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    merge_list.push_back(merges_as_pairs ? json::array({a, b}) : json(a + " " + b));
  }
  return {
      {"version", "1.0"},
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}},
  };
}

Tokenizer make(const json& doc) {
  auto t = Tokenizer::from_json(doc.dump(), "tokenizer.json");
  EXPECT_TRUE(t.ok()) << t.error().message;
  return std::move(t).value();
}

std::string load_error(const json& doc, std::string_view config = {}) {
  auto t = Tokenizer::from_json(doc.dump(), "tokenizer.json", config);
  EXPECT_FALSE(t.ok());
  return t.ok() ? std::string() : t.error().message;
}

// "Ġ" is the byte-level spelling of a space.
const std::vector<std::pair<std::string, std::string>> kHelloMerges = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"\xC4\xA0", "w"}};

TEST(TokenizerTest, ByteLevelMergesByRank) {
  const Tokenizer t = make(byte_level(kHelloMerges));
  // "he"=256 "ll"=257 "hell"=258 "hello"=259 "Ġw"=260.
  EXPECT_EQ(t.encode("hello world", false), (Ids{259, 260, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(t.encode("hel", false), (Ids{256, 'l'}));
  EXPECT_EQ(t.decode(Ids{259, 260, 'o', 'r', 'l', 'd'}, false), "hello world");
  EXPECT_EQ(t.vocab_size(), 261U);
  EXPECT_EQ(t.token_to_id("\xC4\xA0w"), 260);
  EXPECT_EQ(t.id_to_token(260), "\xC4\xA0w");
  EXPECT_EQ(t.id_to_token(9999), std::nullopt);
}

TEST(TokenizerTest, LowerRankMergeWinsOverLeftmost) {
  // "b c" outranks "a b": abc → a + bc; the other order gives ab + c.
  EXPECT_EQ(make(byte_level({{"b", "c"}, {"a", "b"}})).encode("abc", false), (Ids{'a', 256}));
  EXPECT_EQ(make(byte_level({{"a", "b"}, {"b", "c"}})).encode("abc", false), (Ids{256, 'c'}));
}

TEST(TokenizerTest, MergesAsPairsEqualMergesAsStrings) {
  const Tokenizer strings = make(byte_level(kHelloMerges, false));
  const Tokenizer pairs = make(byte_level(kHelloMerges, true));
  for (const char* text : {"hello world", "hellohello", " w w", "shell"}) {
    EXPECT_EQ(strings.encode(text, false), pairs.encode(text, false)) << text;
  }
}

TEST(TokenizerTest, IgnoreMergesTakesWholeWordFromVocab) {
  json doc = byte_level({{"a", "b"}});
  doc["model"]["vocab"]["abc"] = 300;  // reachable only as a whole word
  EXPECT_EQ(make(doc).encode("abc", false), (Ids{256, 'c'}));
  doc["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(doc).encode("abc", false), (Ids{300}));
}

TEST(TokenizerTest, InvalidUtf8IsRepairedLikeReplacementCharacter) {
  const Tokenizer t = make(byte_level({}));
  EXPECT_EQ(t.encode("a\xFF" "b", false), t.encode("a\xEF\xBF\xBD" "b", false));
  EXPECT_EQ(t.encode("\xE4\xBD", false), t.encode("\xEF\xBF\xBD", false));  // truncated 3-byte char
  // Decoding bytes that are not UTF-8 gives U+FFFD, as Hugging Face does.
  EXPECT_EQ(t.decode(Ids{0xE4, 0xBD}, false), "\xEF\xBF\xBD");
}

TEST(TokenizerTest, AddedTokensSplitFirstAndSpecialOnesAreSkippable) {
  json doc = byte_level(kHelloMerges);
  doc["added_tokens"] = json::array({
      {{"id", 261}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
      {{"id", 262}, {"content", "<tool>"}, {"special", false}, {"normalized", false}},
      {{"id", 263}, {"content", "<|end|>x"}, {"special", true}, {"normalized", false}},
  });
  const Tokenizer t = make(doc);
  EXPECT_EQ(t.encode("hello<|end|> world", false), (Ids{259, 261, 260, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(t.encode("<|end|>xhello", false), (Ids{263, 259}));  // leftmost-longest
  EXPECT_EQ(t.encode("<tool>hello", false), (Ids{262, 259}));
  EXPECT_TRUE(t.is_special(261));
  EXPECT_FALSE(t.is_special(262));
  EXPECT_EQ(t.decode(Ids{259, 261, 262}, false), "hello<|end|><tool>");
  EXPECT_EQ(t.decode(Ids{259, 261, 262}, true), "hello<tool>");
  EXPECT_EQ(t.token_to_id("<tool>"), 262);
  EXPECT_EQ(t.vocab_size(), 264U);
}

TEST(TokenizerTest, AddedTokenStripFlagsEatWhitespace) {
  json doc = byte_level({});
  doc["added_tokens"] = json::array({
      {{"id", 256}, {"content", "<L>"}, {"special", true}, {"lstrip", true}},
      {{"id", 257}, {"content", "<R>"}, {"special", true}, {"rstrip", true}},
  });
  const Tokenizer t = make(doc);
  EXPECT_EQ(t.encode("a  <L>b", false), (Ids{'a', 256, 'b'}));
  EXPECT_EQ(t.encode("a<R>  b", false), (Ids{'a', 257, 'b'}));
}

TEST(TokenizerTest, TemplatePostProcessorAddsBos) {
  json doc = byte_level({});
  doc["added_tokens"] = json::array({{{"id", 256}, {"content", "<bos>"}, {"special", true}}});
  doc["post_processor"] = json::parse(R"({
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<bos>": {"id": "<bos>", "ids": [256], "tokens": ["<bos>"]}}})");
  const Tokenizer t = make(doc);
  EXPECT_EQ(t.encode("hi", true), (Ids{256, 'h', 'i'}));
  EXPECT_EQ(t.encode("hi", false), (Ids{'h', 'i'}));
}

// A SentencePiece-style BPE as Llama-2 ships it: ▁ for spaces, <0xNN> byte fallback.
json sentence_piece(bool byte_fallback) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) vocab[std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">"] = 3 + b;
  vocab["\xE2\x96\x81"] = 259;  // ▁
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab["\xE2\x96\x81" "a"] = 262;
  return {
      {"added_tokens", json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                    {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                    {{"id", 2}, {"content", "</s>"}, {"special", true}}})},
      {"normalizer", {{"type", "Sequence"},
                      {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                   {{"type", "Replace"}, {"pattern", {{"String", " "}}},
                                                    {"content", "\xE2\x96\x81"}}})}}},
      {"pre_tokenizer", nullptr},
      {"decoder", {{"type", "Sequence"},
                   {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}},
                                              {"content", " "}},
                                             {{"type", "ByteFallback"}},
                                             {{"type", "Fuse"}},
                                             {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", byte_fallback},
                 {"vocab", vocab}, {"merges", json::array({"\xE2\x96\x81 a"})}}},
  };
}

TEST(TokenizerTest, SentencePieceByteFallback) {
  const Tokenizer t = make(sentence_piece(true));
  EXPECT_EQ(t.encode("a b", false), (Ids{262, 259, 261}));
  // é is not in the vocabulary: its UTF-8 bytes C3 A9 become <0xC3> <0xA9>.
  const Ids e = t.encode("\xC3\xA9", false);
  EXPECT_EQ(e, (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t.decode(e, false), "\xC3\xA9");
  EXPECT_EQ(t.decode(Ids{262, 259, 261}, false), "a b");
  // A lone continuation byte is not UTF-8: one U+FFFD per byte token.
  EXPECT_EQ(t.decode(Ids{260, 3 + 0xA9, 3 + 0xA9}, false), "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

// What logprobs report for one token: its bytes inside a text, partial UTF-8 kept as it is.
TEST(TokenizerTest, TokenBytesAreWhatTheTokenStandsForInsideAText) {
  const Tokenizer sp = make(sentence_piece(true));
  EXPECT_EQ(sp.token_bytes(3 + 0xC3), "\xC3");  // a byte token alone: not repaired
  EXPECT_EQ(sp.token_bytes(262), " a");          // "▁a": its space kept, as inside a text
  const std::string text = "Hello world, caf\xC3\xA9 \xE2\x82\xAC" "5";
  const auto joined = [](const Tokenizer& t, const Ids& ids) {
    std::string out;
    for (auto id : ids) out += t.token_bytes(id);
    return out;
  };
  auto llama2 = Tokenizer::load(kData / "llama2" / "tokenizer.json");
  ASSERT_TRUE(llama2.ok()) << llama2.error().message;
  EXPECT_EQ(joined(*llama2, llama2->encode(text, false)), " " + text);  // SentencePiece's prefix space
  auto qwen = Tokenizer::load(kData / "qwen2" / "tokenizer.json");
  ASSERT_TRUE(qwen.ok()) << qwen.error().message;
  const Ids ids = qwen->encode(text, false);
  EXPECT_EQ(joined(*qwen, ids), text);
  EXPECT_TRUE(std::any_of(ids.begin(), ids.end(), [&](auto id) { return qwen->token_bytes(id).front() == ' '; }));
  EXPECT_EQ(qwen->token_bytes(-1), "");
}

TEST(TokenizerTest, SentencePieceWithoutFallbackFusesUnknowns) {
  const Tokenizer t = make(sentence_piece(false));
  EXPECT_EQ(t.encode("a\xC3\xA9\xC3\xA9" "b", false), (Ids{262, 0, 261}));
}

TEST(TokenizerTest, LoadsFamiliesWithBosAndEosFromConfig) {
  auto llama3 = Tokenizer::load(kData / "llama3" / "tokenizer.json");
  ASSERT_TRUE(llama3.ok()) << llama3.error().message;
  EXPECT_EQ(llama3->bos_id(), llama3->token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(llama3->eos_id(), llama3->token_to_id("<|eot_id|>"));
  EXPECT_EQ(llama3->encode("Hi", true).front(), *llama3->bos_id());
  auto llama2 = Tokenizer::load(kData / "llama2" / "tokenizer.json");
  ASSERT_TRUE(llama2.ok()) << llama2.error().message;
  EXPECT_EQ(llama2->bos_id(), 1);  // {"__type": "AddedToken", "content": "<s>"}
  EXPECT_EQ(llama2->eos_id(), 2);
  auto qwen2 = Tokenizer::load(kData / "qwen2" / "tokenizer.json");
  ASSERT_TRUE(qwen2.ok()) << qwen2.error().message;
  EXPECT_EQ(qwen2->bos_id(), std::nullopt);  // "bos_token": null
  EXPECT_EQ(qwen2->eos_id(), qwen2->token_to_id("<|im_end|>"));
}

TEST(TokenizerTest, QwenNormalizesToNfc) {
  auto t = Tokenizer::load(kData / "qwen2" / "tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  // e + combining acute composes to é before tokenization.
  EXPECT_EQ(t->encode("Cafe\xCC\x81", false), t->encode("Caf\xC3\xA9", false));
  EXPECT_EQ(t->decode(t->encode("Cafe\xCC\x81", false), false), "Caf\xC3\xA9");
}

TEST(TokenizerTest, MetaspaceDecoderMatchesHuggingFace) {
  // Expected strings from tokenizers 0.23.2 (npm) with this decoder on the mistral test file.
  std::ifstream in(kData / "mistral" / "tokenizer.json");
  json doc = json::parse(in);
  for (const auto& [scheme, first_expected] : {std::pair{"first", "world it"}, std::pair{"never", " world it"}}) {
    doc["decoder"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", scheme}, {"split", false}};
    const Tokenizer t = make(doc);
    const auto id = [&](const char* token) { return *t.token_to_id(token); };
    EXPECT_EQ(t.decode(Ids{id("\xE2\x96\x81wor"), id("ld"), id("\xE2\x96\x81it")}, false), first_expected) << scheme;
    EXPECT_EQ(t.decode(Ids{id("ld"), id("\xE2\x96\x81it"), id("\xE2\x96\x81")}, false), "ld it ") << scheme;
    EXPECT_EQ(t.decode(Ids{id("<s>"), id("\xE2\x96\x81wor")}, false), "<s> wor") << scheme;
  }
}

TEST(TokenizerTest, ConcurrentEncodesAgreeWithSerialOnes) {
  auto t = Tokenizer::load(kData / "qwen2" / "tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("request " + std::to_string(i * 31) + " says héllo wörld 你好 " + std::to_string(i));
  std::vector<Ids> serial;
  for (const auto& s : texts) serial.push_back(t->encode(s, false));
  auto fresh = Tokenizer::load(kData / "qwen2" / "tokenizer.json");  // an empty word cache
  ASSERT_TRUE(fresh.ok());
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (std::size_t i = 0; i < texts.size(); ++i) {
        const std::size_t j = (i * 7 + static_cast<std::size_t>(k) * 13) % texts.size();
        if (fresh->encode(texts[j], false) != serial[j]) ++mismatches[static_cast<std::size_t>(k)];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0, 0, 0}));
}

// ---- streaming decode ----------------------------------------------------------------------

TEST(IncrementalDecoderTest, HoldsSplitMultiByteCharacterUntilComplete) {
  const Tokenizer t = make(byte_level({}));
  IncrementalDecoder d(t, false);
  EXPECT_EQ(d.step('a'), "a");
  EXPECT_EQ(d.step(0xC3), "");       // first byte of é
  EXPECT_EQ(d.step(0xA9), "\xC3\xA9");
  EXPECT_EQ(d.step(0xF0), "");       // 😀 = F0 9F 98 80
  EXPECT_EQ(d.step(0x9F), "");
  EXPECT_EQ(d.step(0x98), "");
  EXPECT_EQ(d.step(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(d.step(0xE4), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");  // the stream ended inside a character
}

TEST(IncrementalDecoderTest, ConcatenationEqualsFullDecodeForEveryFamily) {
  const std::string text = "Hello, world! 你好 😀👍🏽 café\n\n  <|im_end|> it's 12345";
  for (const char* family : {"gpt2", "qwen2", "llama3", "llama2", "mistral"}) {
    auto t = Tokenizer::load(kData / family / "tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.error().message;
    const Ids ids = t->encode(text, true);
    for (bool skip : {false, true}) {
      IncrementalDecoder d(*t, skip);
      std::string streamed;
      for (std::int32_t id : ids) {
        const std::string piece = d.step(id);
        EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << family << " emitted a broken character";
        streamed += piece;
      }
      streamed += d.flush();
      EXPECT_EQ(streamed, t->decode(ids, skip)) << family;
    }
  }
}

TEST(IncrementalDecoderTest, InvalidBytesAreNotHeldForever) {
  const Tokenizer t = make(byte_level({}));
  IncrementalDecoder d(t, false);
  std::string out;
  for (int i = 0; i < 20; ++i) out += d.step(0xFF);  // never valid UTF-8
  out += d.step('a');
  out += d.flush();
  EXPECT_EQ(out, t.decode(Ids(20, 0xFF), false) + "a");
  IncrementalDecoder held(t, false);
  for (std::size_t i = 0; i < IncrementalDecoder::kMaxHeldIds; ++i) EXPECT_EQ(held.step(0xFF), "");
  EXPECT_NE(held.step(0xFF), "");  // past the limit the U+FFFDs go out
}

TEST(IncrementalDecoderTest, ByteFallbackRunIsHeldUntilComplete) {
  auto t = Tokenizer::load(kData / "llama2" / "tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Ids ids = t->encode("\xF0\x9F\x98\x80", false);  // ▁ then four <0xNN> tokens
  ASSERT_EQ(ids.size(), 5U);
  IncrementalDecoder d(*t, false);
  std::vector<std::string> pieces;
  for (std::int32_t id : ids) pieces.push_back(d.step(id));
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "", "", "", "\xF0\x9F\x98\x80"}));
}

// ---- load errors ---------------------------------------------------------------------------

TEST(TokenizerErrorTest, MissingFile) {
  auto t = Tokenizer::load(kData / "nope" / "tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, core::ErrorCode::kNotFound);
  EXPECT_NE(t.error().message.find("nope/tokenizer.json: no such file"), std::string::npos);
}

TEST(TokenizerErrorTest, NotJson) {
  auto t = Tokenizer::from_json("{\"model\": ", "tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message, "tokenizer.json: not valid JSON");
}

TEST(TokenizerErrorTest, UnknownModelType) {
  json doc = byte_level({});
  doc["model"]["type"] = "Unigram";
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.type': unsupported model type 'Unigram' (supported: BPE)");
}

TEST(TokenizerErrorTest, MalformedMerges) {
  json doc = byte_level({{"a", "b"}});
  doc["model"]["merges"].push_back(12);
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.merges[1]': expected a string \"a b\" or a pair of strings");
  doc["model"]["merges"][1] = "a b c";
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.merges[1]': expected \"a b\": two tokens separated by one space");
  doc["model"]["merges"][1] = json::array({"a", "zz"});
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.merges[1]': token 'zz' is not in model.vocab");
  doc["model"]["merges"][1] = json::array({"b", "a"});
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.merges[1]': merged token 'ba' is not in model.vocab");
}

TEST(TokenizerErrorTest, MalformedVocabAndAddedTokens) {
  json doc = byte_level({});
  doc["model"]["vocab"]["x y"] = "seven";
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.vocab.x y': expected an integer id in [0, 16777215]");
  doc["model"]["vocab"]["x y"] = 2000000000;  // would index a 2G-entry table
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.vocab.x y': expected an integer id in [0, 16777215]");
  doc = byte_level({});
  doc["added_tokens"] = json::array({{{"id", "1"}, {"content", "<x>"}}});
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'added_tokens[0].id': expected an integer id in [0, 16777215]");
  doc["added_tokens"] = json::array({{{"id", 300}, {"content", "<x>"}, {"special", "yes"}}});
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'added_tokens[0].special': expected true or false");
  doc = byte_level({});
  doc["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.unk_token': '<unk>' is not in model.vocab");
  doc = byte_level({});
  doc.erase("model");
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model': expected an object");
}

TEST(TokenizerErrorTest, UnsupportedOrMalformedPipelineSteps) {
  json doc = byte_level({});
  doc["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_EQ(load_error(doc),
            "tokenizer.json: key 'pre_tokenizer.type': unsupported pre_tokenizer 'Whitespace' (supported: Split, "
            "ByteLevel, Metaspace, Digits, Sequence)");
  doc["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", json::array({{{"type", "Split"},
                                                          {"pattern", {{"Regex", "(?<!x"}}},
                                                          {"behavior", "Isolated"}}})}};
  EXPECT_NE(load_error(doc).find("tokenizer.json: key 'pre_tokenizer.pretokenizers[0].pattern': invalid regex at offset"),
            std::string::npos);
  doc["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "\\s+"}};
  doc["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
  EXPECT_EQ(load_error(doc),
            "tokenizer.json: key 'pre_tokenizer.pretokenizers[0].behavior': expected Isolated, Removed, "
            "MergedWithPrevious, MergedWithNext or Contiguous");
  doc = byte_level({});
  doc["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFKC"}}})}};
  EXPECT_EQ(load_error(doc),
            "tokenizer.json: key 'normalizer.normalizers[0].type': unsupported normalizer 'NFKC' (supported: NFC, "
            "Prepend, Replace, Strip, Sequence)");
  doc = byte_level({});
  doc["decoder"] = {{"type", "WordPiece"}};
  EXPECT_NE(load_error(doc).find("tokenizer.json: key 'decoder.type': unsupported decoder 'WordPiece'"),
            std::string::npos);
  doc = byte_level({});
  doc["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", json::array({{{"SpecialToken", {{"id", "<bos>"}}}}})},
                           {"special_tokens", json::object()}};
  EXPECT_EQ(load_error(doc),
            "tokenizer.json: key 'post_processor.special_tokens': expected an entry for '<bos>' with an 'ids' array");
  doc = byte_level({});
  doc["model"]["continuing_subword_prefix"] = "##";
  EXPECT_EQ(load_error(doc), "tokenizer.json: key 'model.continuing_subword_prefix': unsupported: expected null or \"\"");
}

TEST(TokenizerErrorTest, ConfigNamesTokenMissingFromVocabulary) {
  EXPECT_EQ(load_error(byte_level({}), R"({"bos_token": "<s>"})"),
            "tokenizer_config.json: key 'bos_token': token '<s>' is not in tokenizer.json");
  EXPECT_EQ(load_error(byte_level({}), "[1,"), "tokenizer_config.json: not valid JSON");
}

// ---- throughput ----------------------------------------------------------------------------

TEST(TokenizerThroughputTest, EncodesLongTextFast) {
  auto t = Tokenizer::load(kData / "llama3" / "tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.error().message;
  std::string text;
  for (int i = 0; i < 4000; ++i) {
    text += "Serving request " + std::to_string(i * 7919 % 100000) +
            ": the scheduler's quota was exceeded, so it switched models (see log #" + std::to_string(i) +
            "). 你好, café 😀\n";
  }
  const auto start = std::chrono::steady_clock::now();
  const Ids ids = t->encode(text, false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double tokens_per_s = static_cast<double>(ids.size()) / seconds;
  RecordProperty("tokens", static_cast<int>(ids.size()));
  RecordProperty("tokens_per_s", static_cast<int>(tokens_per_s));
  std::printf("encode: %zu bytes -> %zu tokens in %.3f s = %.0f tokens/s (%.1f MB/s)\n", text.size(), ids.size(),
              seconds, tokens_per_s, static_cast<double>(text.size()) / seconds / 1e6);
  EXPECT_EQ(t->decode(ids, false), text);
  EXPECT_GT(tokens_per_s, 100000.0);
}

}  // namespace
}  // namespace aegaeon::text
