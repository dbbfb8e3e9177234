// `aegaeon generate`: one prompt through one model on the CPU backend, the same engine the
// server runs (HostModelCache + DeviceWorker: loader, runner, sampler), streaming the text as
// it is decoded and reporting prefill and decode speed.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/model_catalog.hpp"
#include "cmd/commands.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/worker/device_worker.hpp"
#include "text/tokenizer_incremental_decoder.hpp"

namespace aegaeon::cmd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct GenerateOptions {
  std::string model;
  std::string prompt;
  int max_tokens = 128;
  core::SamplingParams sampling = core::SamplingParams::greedy();
  std::uint64_t seed = 0;
  bool chat = false;
  bool quiet = false;  // the text only: no stats line
  int threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

template <typename T>
T or_fail(core::Result<T> result) {
  if (!result.ok()) throw CommandError(result.error().message);
  return std::move(result).value();
}

// The prompt's token ids: the chat template's rendering of one user message (which spells
// its own BOS, so none is added), or the raw text with the tokenizer's special tokens.
std::vector<std::int32_t> prompt_ids(const GenerateOptions& o, const actors::CatalogEntry& model) {
  if (!o.chat) return model.tokenizer.encode(o.prompt, /*add_special_tokens=*/true);
  if (!model.chat_template) throw CommandError("--chat: " + model.no_chat_template_reason, 2);
  const core::ChatTurn message{"user", o.prompt};
  const std::string text = or_fail(model.chat_template->render(std::span(&message, 1), /*add_generation_prompt=*/true));
  return model.tokenizer.encode(text, /*add_special_tokens=*/false);
}

void run_generate(GenerateOptions o) {
  if (o.sampling.top_p <= 0.0f) throw CommandError("--top-p: expected a value in (0, 1], got 0", 2);
  o.sampling.seed = o.seed;
  const auto started = Clock::now();
  const fs::path dir(o.model);
  if (std::error_code ec; !fs::is_directory(dir, ec)) {
    throw CommandError("--model: " + dir.string() + " is not a model folder (no such directory)", 2);
  }
  // The folder read as `aegaeon serve` reads it: tokenizer, chat template, stop ids.
  const std::vector<worker::ModelSpec> specs{{dir.filename().string(), dir}};
  const auto cache = or_fail(worker::HostModelCache::load(specs));
  const auto catalog = or_fail(actors::ModelCatalog::load(specs, *cache));
  const actors::CatalogEntry& model = catalog->at(0);
  const text::Tokenizer& tokenizer = model.tokenizer;
  const std::vector<std::int32_t> prompt = prompt_ids(o, model);
  if (prompt.empty()) throw CommandError("--prompt: the prompt has no tokens (empty text?)", 2);
  const worker::ModelInfo& info = cache->info(0);
  const std::int64_t context_tokens = static_cast<std::int64_t>(prompt.size()) + o.max_tokens;
  if (context_tokens > info.max_context_tokens) {
    throw CommandError("--max-tokens: the prompt (" + std::to_string(prompt.size()) + " tokens) plus " +
                           std::to_string(o.max_tokens) + " new tokens exceed the model's context of " +
                           std::to_string(info.max_context_tokens) + " tokens",
                       2);
  }
  worker::DeviceWorkerOptions options;
  options.threads = o.threads;
  options.weight_slots = 1;  // one model: nothing to prefetch
  options.host_kv_blocks = 0;       // nothing is swapped out
  options.max_batch_seqs = 1;
  // KV for the whole sequence, plus a block of slack for the partly filled last one.
  options.kv_bytes = static_cast<std::uint64_t>(context_tokens + 16) * info.kv_bytes_per_token;
  const auto device = or_fail(worker::DeviceWorker::create(options, cache));
  or_fail(device->switch_model(0));
  const double load_s = seconds_since(started);

  text::IncrementalDecoder decoder(tokenizer, /*skip_special_tokens=*/true);
  const auto emit = [](const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };
  constexpr worker::SeqId kSeq = 1;
  const auto prefill_start = Clock::now();
  const core::StopConditions stop{.max_tokens = o.max_tokens, .stop_token_ids = model.eos_ids};
  worker::SampledToken sampled =
      or_fail(device->prefill(std::vector<worker::PrefillItem>{{kSeq, prompt, o.sampling, 0, stop}})).front();
  const double prefill_s = seconds_since(prefill_start);

  // The device's sequence says when it ends: at an end-of-sequence token (not printed) or at
  // max tokens.
  int generated = 0;
  const auto decode_start = Clock::now();
  while (sampled.finish != core::FinishReason::kStop) {
    emit(decoder.step(sampled.token));
    ++generated;
    if (sampled.finish == core::FinishReason::kLength) break;
    const worker::SeqId seqs[] = {kSeq};
    sampled = or_fail(device->decode_step(seqs)).front();
  }
  const bool stopped = sampled.finish == core::FinishReason::kStop;
  const double decode_s = seconds_since(decode_start);
  emit(decoder.flush() + "\n");
  device->release(kSeq);
  if (o.quiet) return;

  // The first token comes from the prefill; decode steps produced the rest.
  const int decode_steps = std::max(0, generated - (stopped ? 0 : 1));
  std::fprintf(stderr,
               "generate: prompt %zu tokens, prefill %.3f s (%.1f tokens/s); %d tokens generated (%s), decode "
               "%.3f s (%.1f tokens/s); load %.3f s; total %.3f s\n",
               prompt.size(), prefill_s, static_cast<double>(prompt.size()) / prefill_s, generated,
               stopped ? "end of sequence" : "max tokens", decode_s,
               decode_steps > 0 ? decode_steps / decode_s : 0.0, load_s, seconds_since(started));
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* sub = app.add_subcommand(
      "generate",
      "Generate text from a prompt with a Hugging Face model folder on the CPU backend (the engine\n"
      "`aegaeon serve` runs). The text streams to stdout; prompt size and prefill/decode speed go\n"
      "to stderr (--quiet leaves them out). Greedy by default: the same prompt gives the same text.\n"
      "Example:\n"
      "  aegaeon model synth --out /tmp/tiny && aegaeon generate --model /tmp/tiny --prompt 'Hello' --chat");
  sub->add_option("--model", o->model, "Model folder (config.json, safetensors, tokenizer.json)")->required();
  sub->add_option("--prompt", o->prompt, "The prompt text")->required();
  sub->add_option("--max-tokens", o->max_tokens, "Stop after this many new tokens (or at end of sequence)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  sub->add_option("--temperature", o->sampling.temperature, "Sampling temperature; 0 is greedy")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub->add_option("--top-p", o->sampling.top_p, "Nucleus sampling: keep the most likely tokens up to this mass, (0, 1]")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--top-k", o->sampling.top_k, "Keep only the k most likely tokens; 0 keeps all")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--min-p", o->sampling.min_p, "Drop tokens below this share of the most likely one's probability")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "Sampling seed: same seed, same text")->capture_default_str();
  sub->add_flag("--chat", o->chat, "Wrap the prompt as a user message in the model's chat template");
  sub->add_flag("--quiet", o->quiet,
                "Print only the generated text and one newline (no stats on stderr), e.g. to compare it "
                "with a server's answer");
  sub->add_option("--threads", o->threads, "CPU compute threads")->check(CLI::Range(1, 1024))->capture_default_str();
  sub->callback([o] { run_generate(*o); });
}

}  // namespace aegaeon::cmd
