// `aegaeon model synth`: writes a complete Hugging Face model folder with seeded random
// weights (gpu/model/model_synthesizer) and a BPE tokenizer trained on a built-in text
// (text/tokenizer_synthesizer): the models the tests, benchmarks and demos run.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cmd/commands.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "text/tokenizer_synthesizer.hpp"

namespace aegaeon::cmd {
namespace {

namespace fs = std::filesystem;
using model::Architecture;

// Shapes by name; -1 fields keep synth_config's choice for the hidden size.
struct Preset {
  int hidden, layers, heads, kv_heads, intermediate, vocab, max_positions;
};

const std::map<std::string, Preset>& presets() {
  static const std::map<std::string, Preset> kPresets = {
      // Fast enough for unit and integration tests.
      {"tiny", {64, 2, -1, -1, -1, 1024, 4096}},
      // ~100M parameters (GPT-2-small-like widths): the smaller benchmark model.
      {"100m", {768, 12, 12, 4, 2048, 32000, 4096}},
      // Qwen2.5-0.5B's shapes (~494M parameters with --arch qwen2's tied embeddings).
      {"500m", {896, 24, 14, 2, 4864, 151936, 32768}},
  };
  return kPresets;
}

struct SynthOptions {
  std::string arch = "qwen2";
  std::string preset = "tiny";
  int hidden = 0, layers = 0, heads = 0, kv_heads = 0, intermediate = 0, vocab = 0;
  std::string dtype = "bf16";
  std::uint64_t seed = 1;
  int shards = 1;
  std::string out;
};

CommandError usage(const std::string& message) { return CommandError(message, 2); }

// The model shape: the preset, then any flag given explicitly.
model::SynthSpec build_spec(const SynthOptions& o, Architecture arch) {
  const Preset& p = presets().at(o.preset);
  const int hidden = o.hidden > 0 ? o.hidden : p.hidden;
  const int vocab = o.vocab > 0 ? o.vocab : p.vocab;
  model::SynthSpec spec;
  spec.config = model::synth_config(arch, hidden, o.layers > 0 ? o.layers : p.layers, vocab);
  model::ModelConfig& c = spec.config;
  const int heads = o.heads > 0 ? o.heads : (o.hidden > 0 || p.heads < 0 ? c.num_heads : p.heads);
  if (hidden % heads != 0 || (hidden / heads) % 2 != 0) {
    throw usage("--heads: " + std::to_string(heads) + " heads must divide --hidden " + std::to_string(hidden) +
                " into an even head size");
  }
  c.num_heads = heads;
  c.head_dim = hidden / heads;
  const int kv_heads = o.kv_heads > 0 ? o.kv_heads : (o.hidden > 0 || p.kv_heads < 0 ? std::max(1, heads / 2) : p.kv_heads);
  if (heads % kv_heads != 0) {
    throw usage("--kv-heads: " + std::to_string(kv_heads) + " must divide the " + std::to_string(heads) +
                " attention heads");
  }
  c.num_kv_heads = kv_heads;
  if (o.intermediate > 0) {
    c.intermediate_size = o.intermediate;
  } else if (o.hidden <= 0 && p.intermediate > 0) {
    c.intermediate_size = p.intermediate;
  }
  c.max_position_embeddings = p.max_positions;
  spec.seed = o.seed;
  spec.num_shards = o.shards;
  spec.dtype = o.dtype == "f32" ? backend::DType::kF32 : o.dtype == "f16" ? backend::DType::kF16 : backend::DType::kBF16;
  return spec;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw CommandError(path.string() + ": cannot write");
}

// Prints "weights: 40% (...)" at every 10% step, to stderr so stdout stays the summary.
class Progress {
 public:
  void operator()(std::size_t done_bytes, std::size_t total_bytes) {
    const int percent = static_cast<int>(100.0 * static_cast<double>(done_bytes) / static_cast<double>(total_bytes));
    if (total_bytes < (std::size_t{64} << 20) || percent / 10 == last_decile_) return;  // small: no output
    last_decile_ = percent / 10;
    std::fprintf(stderr, "  weights: %3d%% (%.0f of %.0f MiB)\n", percent, static_cast<double>(done_bytes) / (1 << 20),
                 static_cast<double>(total_bytes) / (1 << 20));
  }

 private:
  int last_decile_ = 0;
};

void run_synth(const SynthOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  const Architecture arch = o.arch == "llama"     ? Architecture::kLlama
                            : o.arch == "mistral" ? Architecture::kMistral
                            : o.arch == "qwen3"   ? Architecture::kQwen3
                            : o.arch == "phi3"    ? Architecture::kPhi3
                                                  : Architecture::kQwen2;
  // Each architecture's tokenizer as its real models ship it.
  const text::TokenizerLayout layout = o.arch == "llama" || o.arch == "phi3" ? text::TokenizerLayout::kLlama3
                                       : o.arch == "mistral" ? text::TokenizerLayout::kMistralTekken
                                                             : text::TokenizerLayout::kQwen2;
  model::SynthSpec spec = build_spec(o, arch);
  auto tokenizer = text::synth_tokenizer(layout, spec.config.vocab_size);
  if (!tokenizer.ok()) throw usage("--vocab: " + tokenizer.error().message);
  spec.config.bos_token_id = tokenizer->bos_id;
  spec.config.eos_token_ids = tokenizer->eos_ids;

  const fs::path dir(o.out);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) throw usage("--out: " + dir.string() + " is not a directory");
  std::fprintf(stderr, "synthesizing %s (%s, %.1fM parameters, %s) into %s\n", o.arch.c_str(),
               std::string(model::to_string(arch)).c_str(), static_cast<double>(spec.config.num_parameters()) / 1e6,
               o.dtype.c_str(), dir.string().c_str());
  spec.progress = Progress();
  if (auto written = model::write_synthetic_model(dir, spec); !written.ok()) throw CommandError(written.error().message);
  if (auto written = text::write_synth_tokenizer(dir, *tokenizer); !written.ok()) {
    throw CommandError(written.error().message);
  }
  nlohmann::ordered_json generation = {{"bos_token_id", tokenizer->bos_id}, {"eos_token_id", tokenizer->eos_ids}};
  if (tokenizer->pad_id >= 0) generation["pad_token_id"] = tokenizer->pad_id;
  write_text(dir / "generation_config.json", generation.dump(2) + "\n");

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto others = static_cast<std::size_t>(spec.config.vocab_size) - tokenizer->trained_tokens;
  std::printf("wrote %s: %s, hidden %d, %d layers, %d heads (%d KV) of %d, intermediate %d, vocab %d "
              "(%zu trained BPE tokens + %zu composed and special), %s, %d shard(s), seed %llu, in %.1f s\n",
              dir.string().c_str(), std::string(model::to_string(arch)).c_str(), spec.config.hidden_size,
              spec.config.num_layers, spec.config.num_heads, spec.config.num_kv_heads, spec.config.head_dim,
              spec.config.intermediate_size, spec.config.vocab_size, tokenizer->trained_tokens, others,
              o.dtype.c_str(), spec.num_shards, static_cast<unsigned long long>(spec.seed), seconds);
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto* model = app.add_subcommand("model", "Model folders: `aegaeon model synth --help`");
  model->require_subcommand(1);
  auto o = std::make_shared<SynthOptions>();
  auto* synth = model->add_subcommand(
      "synth",
      "Write a Hugging Face model folder with seeded random weights: config.json, model.safetensors\n"
      "(or shards + index), tokenizer.json (byte-level BPE trained on a built-in text, laid out like\n"
      "the architecture's real tokenizer), tokenizer_config.json (chat template, special tokens) and\n"
      "generation_config.json. Same flags, same bytes. Existing files of those names are replaced.\n"
      "The weights are random (the text it generates is gibberish) but scaled so continuations vary.\n"
      "Examples:\n"
      "  aegaeon model synth --out /tmp/tiny-qwen2\n"
      "  aegaeon model synth --arch llama --hidden 256 --layers 4 --vocab 4096 --dtype f32 --out /tmp/llama\n"
      "  aegaeon model synth --preset 500m --shards 2 --out /tmp/qwen2.5-0.5b-shaped");
  synth->add_option("--arch", o->arch, "Architecture and tokenizer family: qwen2 (Qwen2.5: tied, q/k/v biases, ChatML), "
                                       "qwen3 (Qwen3: tied, q/k RMSNorm per head, Qwen2.5's tokenizer), "
                                       "phi3 (Phi-3/Phi-4: fused qkv and gate_up projections, a byte-level BPE "
                                       "tokenizer like Phi-4's in the Llama-3 layout), "
                                       "llama (Llama-3: untied GQA), mistral (untied GQA, [INST] template)")
      ->check(CLI::IsMember({"qwen2", "qwen3", "phi3", "llama", "mistral"}))
      ->capture_default_str();
  synth->add_option("--preset", o->preset, "Starting shape: tiny (hidden 64, 2 layers, vocab 1024), 100m (~100M "
                                           "parameters), 500m (Qwen2.5-0.5B's shapes, vocab 151936); flags below override it")
      ->check(CLI::IsMember({"tiny", "100m", "500m"}))
      ->capture_default_str();
  synth->add_option("--hidden", o->hidden, "Hidden size (heads, KV heads and intermediate size follow from it "
                                           "unless given)")
      ->check(CLI::Range(8, 65536));
  synth->add_option("--layers", o->layers, "Decoder layers")->check(CLI::Range(1, 1024));
  synth->add_option("--heads", o->heads, "Attention heads (must divide --hidden into an even head size)")
      ->check(CLI::Range(1, 4096));
  synth->add_option("--kv-heads", o->kv_heads, "Key/value heads for GQA (must divide --heads)")->check(CLI::Range(1, 4096));
  synth->add_option("--intermediate", o->intermediate, "MLP intermediate size")->check(CLI::Range(1, 1 << 20));
  synth->add_option("--vocab", o->vocab, "Vocabulary size, special tokens included; what the built-in text cannot "
                                         "fill with merges becomes tokens composed of two merged ones")
      ->check(CLI::Range(256, 1 << 22));
  synth->add_option("--dtype", o->dtype, "Weight dtype: f32, bf16 or f16")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}))
      ->capture_default_str();
  synth->add_option("--seed", o->seed, "Weight seed: another seed, other weights (the tokenizer stays the same)")
      ->capture_default_str();
  synth->add_option("--shards", o->shards, "Safetensors files (> 1 adds model.safetensors.index.json)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  synth->add_option("--out", o->out, "Folder to write (created if missing)")->required();
  synth->callback([o] { run_synth(*o); });
}

}  // namespace aegaeon::cmd
