// Loading Hugging Face folders: config.json parsing and every validation error path, which must
// name the file and the tensor or key.
#include "gpu/model/model_loader.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "gpu/model/model_synthesizer.hpp"
#include "gpu/model/safetensors.hpp"
#include "model_test_util.hpp"

namespace aegaeon::model {
namespace {

using testing::TempDir;

std::unique_ptr<backend::cpu::CpuBackend> small_backend() {
  return std::move(backend::cpu::CpuBackend::create({std::size_t{16} << 20, 1})).value();
}

SynthSpec tiny(Architecture arch, backend::DType dtype = backend::DType::kF32) {
  return SynthSpec{synth_config(arch, 32, 2, 50), dtype, 7, 1};
}

void expect_error(const core::Result<HostModel>& result, core::ErrorCode code,
                  std::initializer_list<std::string> fragments) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, code) << result.error().message;
  for (const auto& fragment : fragments) {
    EXPECT_NE(result.error().message.find(fragment), std::string::npos)
        << "'" << fragment << "' not in: " << result.error().message;
  }
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every tensor of `file`, bytes included: tests edit the list and write it back.
std::vector<SafetensorsTensor> read_tensors(const std::filesystem::path& file) {
  auto entries = read_safetensors_header(file);
  EXPECT_TRUE(entries.ok());
  std::vector<SafetensorsTensor> tensors;
  if (!entries.ok()) return tensors;
  std::ifstream in(file, std::ios::binary);
  for (const auto& e : *entries) {
    SafetensorsTensor t{e.name, e.dtype, e.shape, std::vector<std::uint8_t>(e.bytes)};
    in.seekg(static_cast<std::streamoff>(e.file_offset));
    in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(e.bytes));
    tensors.push_back(std::move(t));
  }
  return tensors;
}

TEST(ModelConfigTest, ParsesLlama3RopeScalingGqaAndEos) {
  const char* json = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true,
    "eos_token_id": [5, 6], "torch_dtype": "bfloat16",
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})";
  auto c = parse_model_config(json, "config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->qkv_bias());
  EXPECT_FALSE(c->o_proj_bias());
  EXPECT_EQ(c->rope.scaling, backend::RopeScaling::kLlama3);
  EXPECT_FLOAT_EQ(c->rope.factor, 8.0f);
  EXPECT_EQ(c->rope.original_max_position, 8192);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int>{5, 6}));
  EXPECT_EQ(c->torch_dtype, backend::DType::kBF16);
}

TEST(ModelConfigTest, QwenAlwaysHasBiasesAndLinearScalingParses) {
  const char* json = R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
    "vocab_size": 100, "max_position_embeddings": 512,
    "rope_scaling": {"type": "linear", "factor": 2.0}})";
  auto c = parse_model_config(json, "config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->qkv_bias());
  EXPECT_FALSE(c->o_proj_bias());
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->rope.scaling, backend::RopeScaling::kLinear);
}

// Phi-3's config as Phi-3-mini-4k ships it (no biases, a window on every layer), and the
// Phi-4-mini and 128k variants' keys we cannot run yet refused by name.
TEST(ModelConfigTest, Phi3WindowsEveryLayerAndRefusesWhatItCannotRun) {
  const std::string base = R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 320,
    "max_position_embeddings": 4096, "rope_theta": 10000.0, "hidden_act": "silu")";
  auto mini = parse_model_config(base + R"(, "sliding_window": 2047})", "phi3/config.json");
  ASSERT_TRUE(mini.ok()) << mini.error().message;
  EXPECT_EQ(mini->architecture, Architecture::kPhi3);
  EXPECT_TRUE(mini->fused_projections());
  EXPECT_FALSE(mini->qkv_bias());
  EXPECT_EQ(mini->attention_window(0), 2047);
  EXPECT_EQ(mini->attention_window(1), 2047);
  auto no_window = parse_model_config(base + "}", "phi3/config.json");
  ASSERT_TRUE(no_window.ok()) << no_window.error().message;
  EXPECT_EQ(no_window->attention_window(0), 0);  // Phi3Config has no default window
  auto partial = parse_model_config(base + R"(, "partial_rotary_factor": 0.75})", "phi4-mini/config.json");
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.error().message.find("phi4-mini/config.json: key 'partial_rotary_factor'"), std::string::npos);
  auto longrope = parse_model_config(base + R"(, "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}})",
                                     "phi3-128k/config.json");
  ASSERT_FALSE(longrope.ok());
  EXPECT_NE(longrope.error().message.find("rope_scaling.rope_type"), std::string::npos);
}

TEST(ModelConfigTest, ErrorsNameTheKey) {
  auto unknown = parse_model_config(R"({"architectures": ["GPT2LMHeadModel"]})", "x/config.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("x/config.json: key 'architectures'"), std::string::npos);
  EXPECT_NE(unknown.error().message.find("GPT2LMHeadModel"), std::string::npos);
  auto missing = parse_model_config(R"({"architectures": ["LlamaForCausalLM"]})", "config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("'hidden_size'"), std::string::npos);
  auto bad_gqa = parse_model_config(R"({"architectures": ["MistralForCausalLM"],
    "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 9,
    "max_position_embeddings": 8})", "config.json");
  ASSERT_FALSE(bad_gqa.ok());
  EXPECT_NE(bad_gqa.error().message.find("num_key_value_heads"), std::string::npos);
  auto bad_rope = parse_model_config(R"({"architectures": ["LlamaForCausalLM"],
    "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 4, "vocab_size": 9, "max_position_embeddings": 8,
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})", "config.json");
  ASSERT_FALSE(bad_rope.ok());
  EXPECT_NE(bad_rope.error().message.find("rope_scaling.rope_type"), std::string::npos);
  EXPECT_FALSE(parse_model_config("{not json", "config.json").ok());
}

TEST(ModelLoaderTest, LoadsEveryArchitectureAndDtype) {
  for (auto arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kMistral, Architecture::kQwen3,
                    Architecture::kPhi3}) {
    for (auto dtype : {backend::DType::kF32, backend::DType::kBF16, backend::DType::kF16}) {
      TempDir dir("load");
      const SynthSpec spec = tiny(arch, dtype);
      ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
      auto backend = small_backend();
      auto model = load_host_model(dir.path(), *backend);
      ASSERT_TRUE(model.ok()) << model.error().message;
      EXPECT_EQ(model->config.architecture, arch);
      const bool qwen = arch == Architecture::kQwen2 || arch == Architecture::kQwen3;
      EXPECT_EQ(model->config.tie_word_embeddings, qwen);
      EXPECT_EQ(model->find("lm_head.weight") == nullptr, qwen);
      EXPECT_EQ(model->find("model.layers.1.self_attn.k_proj.bias") != nullptr,
                arch == Architecture::kQwen2);
      EXPECT_EQ(model->find("model.layers.1.self_attn.k_norm.weight") != nullptr, arch == Architecture::kQwen3);
      EXPECT_EQ(model->find("model.layers.1.mlp.gate_up_proj.weight") != nullptr, arch == Architecture::kPhi3);
      const HostTensor* q = model->find(arch == Architecture::kPhi3 ? "model.layers.0.self_attn.qkv_proj.weight"
                                                                    : "model.layers.0.self_attn.q_proj.weight");
      ASSERT_NE(q, nullptr);
      EXPECT_EQ(q->dtype, dtype);
      // The bytes in the buffer are the synthesized values.
      const auto expected = synth_tensor_values(spec, q->name, 64);
      std::vector<float> got(64);
      backend::convert_to_f32(dtype, model->buffer->data() + q->offset, got.data(), 64);
      EXPECT_EQ(got, expected);
    }
  }
}

TEST(ModelLoaderTest, ShardedIndexLoadsTheSameTensors) {
  TempDir single("single");
  TempDir sharded("sharded");
  SynthSpec spec = tiny(Architecture::kLlama, backend::DType::kBF16);
  ASSERT_TRUE(write_synthetic_model(single.path(), spec).ok());
  spec.num_shards = 3;
  ASSERT_TRUE(write_synthetic_model(sharded.path(), spec).ok());
  EXPECT_TRUE(std::filesystem::exists(sharded.path() / "model-00003-of-00003.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(sharded.path() / "model.safetensors"));
  auto backend = small_backend();
  auto a = load_host_model(single.path(), *backend);
  auto b = load_host_model(sharded.path(), *backend);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->weight_bytes, b->weight_bytes);
  EXPECT_EQ(std::memcmp(a->buffer->data(), b->buffer->data(), a->weight_bytes), 0);
}

TEST(ModelLoaderTest, MissingShardNamesTheFile) {
  TempDir dir("shard");
  SynthSpec spec = tiny(Architecture::kLlama);
  spec.num_shards = 2;
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  std::filesystem::remove(dir.path() / "model-00002-of-00002.safetensors");
  auto backend = small_backend();
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kNotFound,
               {"model-00002-of-00002.safetensors"});
}

TEST(ModelLoaderTest, TruncatedFileNamesFileAndTensor) {
  TempDir dir("trunc");
  ASSERT_TRUE(write_synthetic_model(dir.path(), tiny(Architecture::kMistral)).ok());
  const auto file = dir.path() / "model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 100);
  auto backend = small_backend();
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kDataLoss,
               {"model.safetensors", "truncated", "tensor '"});
  std::filesystem::resize_file(file, 5);
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kDataLoss,
               {"model.safetensors", "truncated"});
}

TEST(ModelLoaderTest, WrongShapeNamesTensorAndShapes) {
  TempDir dir("shape");
  ASSERT_TRUE(write_synthetic_model(dir.path(), tiny(Architecture::kLlama)).ok());
  // Claim a different MLP width than the weights have.
  std::string config = read_text(dir.path() / "config.json");
  auto c = parse_model_config(config, "config.json");
  ASSERT_TRUE(c.ok());
  c->intermediate_size += 16;
  write_text(dir.path() / "config.json", model_config_to_json(*c));
  auto backend = small_backend();
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kInvalidArgument,
               {"model.safetensors", "model.layers.0.mlp.gate_proj.weight", "expected [" +
                                                                                 std::to_string(c->intermediate_size)});
}

TEST(ModelLoaderTest, MissingTensorIsNamed) {
  TempDir dir("missing");
  SynthSpec spec = tiny(Architecture::kLlama);
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  // Rewrite the file without one tensor (keeping the others' bytes).
  auto kept = read_tensors(dir.path() / "model.safetensors");
  std::erase_if(kept, [](const SafetensorsTensor& t) {
    return t.name == "model.layers.1.post_attention_layernorm.weight";
  });
  ASSERT_TRUE(write_safetensors(dir.path() / "model.safetensors", kept).ok());
  auto backend = small_backend();
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kNotFound,
               {"model.safetensors", "missing tensor 'model.layers.1.post_attention_layernorm.weight'"});
}

TEST(ModelLoaderTest, LlamaAttentionBiasLoadsTheOutputProjectionBias) {
  TempDir dir("attention_bias");
  SynthSpec spec = tiny(Architecture::kLlama);
  spec.config.attention_bias = true;
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  auto backend = small_backend();
  auto model = load_host_model(dir.path(), *backend);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ(model->config.num_parameters(), spec.config.num_parameters());
  for (const char* name : {"q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias"}) {
    EXPECT_NE(model->find("model.layers.1.self_attn." + std::string(name)), nullptr) << name;
  }
  const HostTensor* o_bias = model->find("model.layers.0.self_attn.o_proj.bias");
  ASSERT_NE(o_bias, nullptr);
  EXPECT_EQ(o_bias->shape, (std::vector<std::int64_t>{spec.config.hidden_size}));
}

// A tensor config.json does not account for (here biases without attention_bias) would be
// dropped and the model would compute wrong logits, so loading fails naming file and tensor.
TEST(ModelLoaderTest, UnexpectedTensorIsRefusedWithFileAndName) {
  TempDir dir("unexpected");
  SynthSpec spec = tiny(Architecture::kLlama);
  spec.num_shards = 2;
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  const auto shard = dir.path() / "model-00002-of-00002.safetensors";
  auto tensors = read_tensors(shard);
  const auto hidden = static_cast<std::size_t>(spec.config.hidden_size);
  tensors.push_back({"model.layers.1.self_attn.o_proj.bias", backend::DType::kF32,
                     {spec.config.hidden_size}, std::vector<std::uint8_t>(hidden * 4)});
  ASSERT_TRUE(write_safetensors(shard, tensors).ok());
  auto backend = small_backend();
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kInvalidArgument,
               {"model-00002-of-00002.safetensors",
                "unexpected tensor 'model.layers.1.self_attn.o_proj.bias'"});
}

// transformers before 4.31 saved RoPE's inv_freq as a persistent buffer; it follows from
// config.json, so such checkpoints load (and the buffer is not copied to the device).
TEST(ModelLoaderTest, OldRotaryInvFreqBuffersAreSkipped) {
  TempDir dir("inv_freq");
  const SynthSpec spec = tiny(Architecture::kLlama);
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  const auto file = dir.path() / "model.safetensors";
  auto backend = small_backend();
  auto plain = load_host_model(dir.path(), *backend);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  auto tensors = read_tensors(file);
  const std::int64_t half = spec.config.head_dim / 2;
  tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", backend::DType::kF32,
                     {half}, std::vector<std::uint8_t>(static_cast<std::size_t>(half) * 4)});
  ASSERT_TRUE(write_safetensors(file, tensors).ok());
  auto with_buffer = load_host_model(dir.path(), *backend);
  ASSERT_TRUE(with_buffer.ok()) << with_buffer.error().message;
  EXPECT_EQ(with_buffer->tensors.size(), plain->tensors.size());
  EXPECT_EQ(with_buffer->weight_bytes, plain->weight_bytes);
}

TEST(ModelLoaderTest, BadHeaderAndBadDtypeAreReported) {
  TempDir dir("header");
  ASSERT_TRUE(write_synthetic_model(dir.path(), tiny(Architecture::kQwen2)).ok());
  const auto file = dir.path() / "model.safetensors";
  auto backend = small_backend();
  {
    // A header length far beyond the file.
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    const unsigned char huge[8] = {0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0};
    f.write(reinterpret_cast<const char*>(huge), 8);
  }
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kDataLoss,
               {"model.safetensors"});
  // Valid length, garbage JSON.
  const std::string garbage = "{\"a\": [1, 2";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(garbage.size());
  write_text(file, bytes + garbage);
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kDataLoss,
               {"model.safetensors", "bad header"});
  // An unsupported dtype names the tensor.
  const std::string header =
      R"({"model.embed_tokens.weight": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]}})";
  bytes.assign(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  write_text(file, bytes + header + "xx");
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kInvalidArgument,
               {"model.safetensors", "model.embed_tokens.weight", "I8"});
  // Offsets that disagree with the shape.
  const std::string wrong =
      R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}})";
  bytes[0] = static_cast<char>(wrong.size());
  write_text(file, bytes + wrong + std::string(16, 'x'));
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kDataLoss,
               {"model.safetensors", "tensor 'w'", "need 16"});
}

TEST(ModelLoaderTest, UnknownArchitectureAndMissingFilesAreReported) {
  TempDir dir("arch");
  auto backend = small_backend();
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kNotFound, {"config.json"});
  ASSERT_TRUE(write_synthetic_model(dir.path(), tiny(Architecture::kLlama)).ok());
  std::string config = read_text(dir.path() / "config.json");
  const auto pos = config.find("LlamaForCausalLM");
  config.replace(pos, std::string("LlamaForCausalLM").size(), "FalconForCausalLM");
  write_text(dir.path() / "config.json", config);
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kInvalidArgument,
               {"config.json", "architectures", "FalconForCausalLM"});
  ASSERT_TRUE(write_synthetic_model(dir.path(), tiny(Architecture::kLlama)).ok());
  std::filesystem::remove(dir.path() / "model.safetensors");
  expect_error(load_host_model(dir.path(), *backend), core::ErrorCode::kNotFound,
               {"model.safetensors"});
}

}  // namespace
}  // namespace aegaeon::model
