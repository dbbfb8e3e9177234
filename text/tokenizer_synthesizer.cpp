#include "text/tokenizer_synthesizer.hpp"

#include <fstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <nlohmann/json.hpp>

#include "text/tokenizer_trainer.hpp"

namespace aegaeon::text {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr std::string_view kTrainingText =
#include "text/tokenizer_training_text.inc"
    ;

// The families' pre-tokenizer regexes exactly as their tokenizer.json files carry them.
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekkenRegex =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The chat templates the families' instruct models ship (Qwen2.5, Llama-3, Mistral v0.1).
constexpr std::string_view kChatMlTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
constexpr std::string_view kLlama3Template =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ "
    "content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
constexpr std::string_view kMistralTemplate =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % "
    "2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') "
    "}}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% "
    "elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ "
    "raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

// How one family lays out its tokenizer.
struct Layout {
  std::string_view regex;
  bool nfc = false;
  bool ignore_merges = false;
  std::vector<std::string> leading_specials;   // ids 0.. before the BPE vocabulary (Tekken)
  std::vector<std::string> trailing_specials;  // ids right after the BPE vocabulary
  std::string bos;                             // the model's BOS token
  bool tokenizer_adds_bos = false;             // a TemplateProcessing post-processor adds it
  bool config_names_bos = false;               // tokenizer_config.json has a bos_token
  std::vector<std::string> eos;                // first: tokenizer_config's eos_token
  std::string pad;
  std::string_view chat_template;
  std::string_view tokenizer_class;
  int model_max_length = 0;
};

Layout layout_of(TokenizerLayout layout) {
  switch (layout) {
    case TokenizerLayout::kQwen2:
      return {kQwen2Regex, true, false, {}, {"<|endoftext|>", "<|im_start|>", "<|im_end|>"},
              "<|endoftext|>", false, false, {"<|im_end|>", "<|endoftext|>"}, "<|endoftext|>",
              kChatMlTemplate, "Qwen2Tokenizer", 32768};
    case TokenizerLayout::kLlama3:
      return {kLlama3Regex, false, true, {},
              {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
              "<|begin_of_text|>", true, true, {"<|eot_id|>", "<|end_of_text|>"}, "",
              kLlama3Template, "PreTrainedTokenizerFast", 131072};
    case TokenizerLayout::kMistralTekken:
      return {kTekkenRegex, false, false, {"<unk>", "<s>", "</s>", "[INST]", "[/INST]"}, {}, "<s>", true, true,
              {"</s>"}, "", kMistralTemplate, "PreTrainedTokenizerFast", 32768};
  }
  return {};
}

ordered_json added_token(std::int32_t id, const std::string& content) {
  return {{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},    {"normalized", false}, {"special", true}};
}

ordered_json byte_level_step(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", trim_offsets},
          {"use_regex", use_regex}};
}

ordered_json bos_template(const std::string& bos, std::int32_t bos_id) {
  auto special = [&](int type_id) { return ordered_json{{"SpecialToken", {{"id", bos}, {"type_id", type_id}}}}; };
  auto sequence = [](const char* id, int type_id) {
    return ordered_json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  return {{"type", "TemplateProcessing"},
          {"single", {special(0), sequence("A", 0)}},
          {"pair", {special(0), sequence("A", 0), special(1), sequence("B", 1)}},
          {"special_tokens", {{bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}}}};
}

}  // namespace

std::string_view to_string(TokenizerLayout layout) {
  switch (layout) {
    case TokenizerLayout::kQwen2: return "qwen2";
    case TokenizerLayout::kLlama3: return "llama3";
    case TokenizerLayout::kMistralTekken: return "mistral-tekken";
  }
  return "?";
}

std::string_view tokenizer_training_text() { return kTrainingText; }

int min_synth_vocab_size(TokenizerLayout layout) {
  const Layout f = layout_of(layout);
  return static_cast<int>(256 + f.leading_specials.size() + f.trailing_specials.size());
}

core::Result<SynthTokenizer> synth_tokenizer(TokenizerLayout layout, int vocab_size) {
  const Layout f = layout_of(layout);
  if (vocab_size < min_synth_vocab_size(layout)) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "vocab_size " + std::to_string(vocab_size) + " is too small for " +
                           "the " + std::string(to_string(layout)) + " layout" + ": it needs at least " +
                           std::to_string(min_synth_vocab_size(layout)) + " (256 bytes + " +
                           std::to_string(min_synth_vocab_size(layout) - 256) + " special tokens)");
  }
  const auto first_bpe_id = static_cast<std::int32_t>(f.leading_specials.size());
  BpeTrainerOptions options{std::string(f.regex), f.nfc,
                            static_cast<std::size_t>(vocab_size) - f.leading_specials.size() -
                                f.trailing_specials.size()};
  auto trained = train_byte_level_bpe(kTrainingText, options);
  if (!trained.ok()) return trained.error();
  const ByteLevelBpe& bpe = *trained;

  // A vocabulary larger than the text supports is filled with tokens composed of two merged
  // tokens: no merge produces them, but a random model that samples them prints words, where
  // reserved special tokens would print nothing.
  const std::size_t merged = bpe.tokens.size() - 256;
  const auto too_large = [&](std::size_t supported) {
    return core::error(core::ErrorCode::kInvalidArgument,
                       "vocab_size " + std::to_string(vocab_size) + " is too large: the built-in text supports at most " +
                           std::to_string(vocab_size - (options.max_tokens - supported)));
  };
  if (options.max_tokens > bpe.tokens.size() + merged * merged) return too_large(bpe.tokens.size() + merged * merged);
  std::vector<std::string> tokens = bpe.tokens;
  std::unordered_set<std::string> known(tokens.begin(), tokens.end());
  for (std::size_t a = 256; a < bpe.tokens.size() && tokens.size() < options.max_tokens; ++a) {
    for (std::size_t b = 256; b < bpe.tokens.size() && tokens.size() < options.max_tokens; ++b) {
      std::string token = bpe.tokens[a] + bpe.tokens[b];
      if (known.insert(token).second) tokens.push_back(std::move(token));
    }
  }
  if (tokens.size() < options.max_tokens) return too_large(tokens.size());

  // Ids: leading specials, BPE tokens, trailing specials.
  std::vector<std::string> specials = f.leading_specials;
  for (const auto& s : f.trailing_specials) specials.push_back(s);
  const auto bpe_end = static_cast<std::int32_t>(first_bpe_id + tokens.size());
  std::unordered_map<std::string, std::int32_t> special_ids;
  ordered_json added = ordered_json::array();
  for (std::size_t i = 0; i < specials.size(); ++i) {
    const auto id = static_cast<std::int32_t>(i < f.leading_specials.size() ? i : bpe_end + i - f.leading_specials.size());
    special_ids[specials[i]] = id;
    added.push_back(added_token(id, specials[i]));
  }
  const std::int32_t bos_id = special_ids.at(f.bos);

  // Leading control tokens are in the model vocabulary too: Hugging Face keeps an added token's
  // id only when the vocabulary has it, and numbers the others after the vocabulary. Entries go
  // straight into the ordered map's vector (tokens are unique): its operator[] searches linearly.
  ordered_json vocab = ordered_json::object();
  auto& entries = static_cast<std::vector<std::pair<const std::string, ordered_json>>&>(
      vocab.get_ref<ordered_json::object_t&>());
  entries.reserve(f.leading_specials.size() + tokens.size());
  for (std::size_t i = 0; i < f.leading_specials.size(); ++i) {
    entries.emplace_back(f.leading_specials[i], static_cast<std::int32_t>(i));
  }
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    entries.emplace_back(to_byte_level_alphabet(tokens[i]), first_bpe_id + static_cast<std::int32_t>(i));
  }
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : bpe.merges) {
    merges.push_back({to_byte_level_alphabet(left), to_byte_level_alphabet(right)});
  }
  const ordered_json split = {{"type", "Split"},
                              {"pattern", {{"Regex", f.regex}}},
                              {"behavior", "Isolated"},
                              {"invert", false}};
  ordered_json post_processor;
  if (layout == TokenizerLayout::kLlama3) {
    post_processor = {{"type", "Sequence"},
                      {"processors", {byte_level_step(true, false, true), bos_template(f.bos, bos_id)}}};
  } else if (f.tokenizer_adds_bos) {
    post_processor = bos_template(f.bos, bos_id);
  } else {
    post_processor = byte_level_step(false, false, false);
  }
  const ordered_json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", f.nfc ? ordered_json{{"type", "NFC"}} : ordered_json(nullptr)},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {split, byte_level_step(false, false, false)}}}},
      {"post_processor", post_processor},
      {"decoder", byte_level_step(false, false, false)},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", f.ignore_merges},
        {"vocab", vocab},
        {"merges", merges}}}};

  ordered_json config = {{"add_bos_token", f.tokenizer_adds_bos},
                         {"add_eos_token", false},
                         {"bos_token", f.config_names_bos ? ordered_json(f.bos) : ordered_json(nullptr)},
                         {"eos_token", f.eos.front()},
                         {"pad_token", f.pad.empty() ? ordered_json(nullptr) : ordered_json(f.pad)},
                         {"unk_token", nullptr},
                         {"chat_template", f.chat_template},
                         {"clean_up_tokenization_spaces", false},
                         {"model_max_length", f.model_max_length},
                         {"tokenizer_class", f.tokenizer_class}};
  if (!f.leading_specials.empty()) config["unk_token"] = f.leading_specials.front();

  SynthTokenizer out;
  out.tokenizer_json = tokenizer.dump(1) + "\n";
  out.tokenizer_config_json = config.dump(2) + "\n";
  out.bos_id = bos_id;
  for (const auto& eos : f.eos) out.eos_ids.push_back(special_ids.at(eos));
  out.pad_id = f.pad.empty() ? -1 : special_ids.at(f.pad);
  out.trained_tokens = bpe.tokens.size();
  return out;
}

core::Result<void> write_synth_tokenizer(const std::filesystem::path& dir, const SynthTokenizer& tokenizer) {
  for (const auto& [name, text] : {std::pair{"tokenizer.json", &tokenizer.tokenizer_json},
                                   std::pair{"tokenizer_config.json", &tokenizer.tokenizer_config_json}}) {
    const auto path = dir / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(text->data(), static_cast<std::streamsize>(text->size()));
    if (!out) return core::error(core::ErrorCode::kUnavailable, path.string() + ": write failed");
  }
  return core::ok();
}

}  // namespace aegaeon::text
