// config.json's sliding-window and bias keys, read as transformers reads them (MistralConfig,
// Qwen2Config, LlamaConfig), and their round trip through model_config_to_json.
#include "gpu/model/model_config.hpp"

#include <gtest/gtest.h>

#include <string>

namespace aegaeon::model {
namespace {

// A valid 4-layer config of `architecture` with `extra` JSON members appended.
core::Result<ModelConfig> parse_with(const std::string& architecture, const std::string& extra) {
  const std::string text = R"({"architectures": [")" + architecture + R"("],
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "max_position_embeddings": 256)" +
                           (extra.empty() ? "" : ", " + extra) + "}";
  return parse_model_config(text, "m/config.json");
}

std::vector<int> windows(const ModelConfig& c) {
  std::vector<int> out;
  for (int l = 0; l < c.num_layers; ++l) out.push_back(c.attention_window(l));
  return out;
}

void expect_error_naming(const core::Result<ModelConfig>& result, const std::string& key) {
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("m/config.json: key '" + key + "'"), std::string::npos)
      << result.error().message;
}

TEST(ModelConfigTest, MistralWindowsEveryLayerWithMistralConfigDefaults) {
  auto configured = parse_with("MistralForCausalLM", R"("sliding_window": 32)");
  ASSERT_TRUE(configured.ok()) << configured.error().message;
  EXPECT_EQ(windows(*configured), (std::vector<int>{32, 32, 32, 32}));
  // MistralConfig's default when the key is absent; null turns the window off (Mistral v0.2+).
  auto absent = parse_with("MistralForCausalLM", "");
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(windows(*absent), (std::vector<int>{4096, 4096, 4096, 4096}));
  auto null = parse_with("MistralForCausalLM", R"("sliding_window": null)");
  ASSERT_TRUE(null.ok());
  EXPECT_EQ(windows(*null), (std::vector<int>{0, 0, 0, 0}));
  expect_error_naming(parse_with("MistralForCausalLM", R"("sliding_window": 0)"), "sliding_window");
  expect_error_naming(parse_with("MistralForCausalLM", R"("sliding_window": "4k")"),
                      "sliding_window");
}

TEST(ModelConfigTest, Qwen2WindowsOnlyWithUseSlidingWindowFromMaxWindowLayersOn) {
  // Qwen2.5 checkpoints ship use_sliding_window false: full attention whatever the other keys say.
  auto off =
      parse_with("Qwen2ForCausalLM",
                 R"("use_sliding_window": false, "sliding_window": 8, "max_window_layers": 1)");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(windows(*off), (std::vector<int>{0, 0, 0, 0}));
  auto on =
      parse_with("Qwen2ForCausalLM",
                 R"("use_sliding_window": true, "sliding_window": 8, "max_window_layers": 2)");
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(windows(*on), (std::vector<int>{0, 0, 8, 8}));
  // Qwen2Config's default max_window_layers is 28: none of these 4 layers.
  auto default_layers =
      parse_with("Qwen2ForCausalLM", R"("use_sliding_window": true, "sliding_window": 8)");
  ASSERT_TRUE(default_layers.ok());
  EXPECT_EQ(windows(*default_layers), (std::vector<int>{0, 0, 0, 0}));
  expect_error_naming(parse_with("Qwen2ForCausalLM", R"("use_sliding_window": true,
    "sliding_window": 8, "max_window_layers": -1)"),
                      "max_window_layers");
  expect_error_naming(parse_with("Qwen2ForCausalLM", R"("use_sliding_window": "yes")"),
                      "use_sliding_window");
}

TEST(ModelConfigTest, Qwen2LayerTypesOverrideMaxWindowLayersAndMustBeASuffix) {
  auto typed = parse_with("Qwen2ForCausalLM", R"("use_sliding_window": true,
    "sliding_window": 8, "max_window_layers": 0, "layer_types": ["full_attention",
    "full_attention", "full_attention", "sliding_attention"])");
  ASSERT_TRUE(typed.ok()) << typed.error().message;
  EXPECT_EQ(windows(*typed), (std::vector<int>{0, 0, 0, 8}));
  // Windowed layers between full ones are not something Qwen2Config produces; refused clearly.
  expect_error_naming(parse_with("Qwen2ForCausalLM", R"("use_sliding_window": true,
    "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention",
    "full_attention", "full_attention"])"),
                      "layer_types");
  expect_error_naming(parse_with("Qwen2ForCausalLM", R"("use_sliding_window": true,
    "sliding_window": 8, "layer_types": ["full_attention"])"),
                      "layer_types");
  expect_error_naming(parse_with("Qwen2ForCausalLM", R"("use_sliding_window": true,
    "sliding_window": 8, "layer_types": ["full_attention", "full_attention",
    "full_attention", "chunked_attention"])"),
                      "layer_types");
}

TEST(ModelConfigTest, LlamaHasNoWindow) {
  auto llama = parse_with("LlamaForCausalLM", R"("use_sliding_window": true, "sliding_window": 8)");
  ASSERT_TRUE(llama.ok());
  EXPECT_EQ(windows(*llama), (std::vector<int>{0, 0, 0, 0}));
}

TEST(ModelConfigTest, WindowSurvivesTheJsonRoundTrip) {
  for (const char* extra :
       {R"("use_sliding_window": true, "sliding_window": 8, "max_window_layers": 3)",
        R"("use_sliding_window": false)"}) {
    auto qwen2 = parse_with("Qwen2ForCausalLM", extra);
    ASSERT_TRUE(qwen2.ok());
    auto again = parse_model_config(model_config_to_json(*qwen2), "again.json");
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(windows(*again), windows(*qwen2)) << extra;
  }
  for (const char* extra : {R"("sliding_window": 5)", R"("sliding_window": null)"}) {
    auto mistral = parse_with("MistralForCausalLM", extra);
    ASSERT_TRUE(mistral.ok());
    auto again = parse_model_config(model_config_to_json(*mistral), "again.json");
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(windows(*again), windows(*mistral)) << extra;
  }
}

// LlamaAttention biases q/k/v and o_proj with attention_bias; Qwen2Attention always biases
// q/k/v (never o_proj) and MistralAttention nothing, whatever the key says.
TEST(ModelConfigTest, AttentionBiasesFollowEachFamilysAttention) {
  struct Case {
    const char* architecture;
    const char* extra;
    bool qkv, o_proj;
  };
  for (const Case& e : {Case{"LlamaForCausalLM", "", false, false},
                        Case{"LlamaForCausalLM", R"("attention_bias": true)", true, true},
                        Case{"Qwen2ForCausalLM", R"("attention_bias": false)", true, false},
                        Case{"Qwen2ForCausalLM", R"("attention_bias": true)", true, false},
                        Case{"MistralForCausalLM", R"("attention_bias": true)", false, false}}) {
    SCOPED_TRACE(std::string(e.architecture) + " " + e.extra);
    auto c = parse_with(e.architecture, e.extra);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->qkv_bias(), e.qkv);
    EXPECT_EQ(c->o_proj_bias(), e.o_proj);
    auto again = parse_model_config(model_config_to_json(*c), "again.json");
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(again->qkv_bias(), e.qkv);
    EXPECT_EQ(again->o_proj_bias(), e.o_proj);
  }
  expect_error_naming(parse_with("LlamaForCausalLM", R"("attention_bias": 1)"), "attention_bias");
  // Llama's MLP biases are refused rather than dropped; the other families have none to drop.
  expect_error_naming(parse_with("LlamaForCausalLM", R"("mlp_bias": true)"), "mlp_bias");
  EXPECT_TRUE(parse_with("MistralForCausalLM", R"("mlp_bias": true)").ok());
}

}  // namespace
}  // namespace aegaeon::model
