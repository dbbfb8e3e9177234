// Synthesized random weights must behave like a model, not a constant: a greedy continuation
// wanders over many tokens instead of collapsing onto one repeated token, for every
// architecture and at more than one width (the scaling in synth_tensor_values is what keeps it so).
#include "gpu/model/model_synthesizer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "model_test_util.hpp"

namespace aegaeon::model {
namespace {

struct Shape {
  Architecture arch;
  int hidden, layers, vocab;
};

class SynthesizedModelTest : public ::testing::TestWithParam<Shape> {};

TEST_P(SynthesizedModelTest, GreedyContinuationUsesManyDistinctTokens) {
  const Shape& s = GetParam();
  testing::TempDir dir("synth");
  const SynthSpec spec{synth_config(s.arch, s.hidden, s.layers, s.vocab), backend::DType::kBF16, 7, 1};
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  auto engine = testing::load_engine(dir.path());
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->kv->add_sequence(1).ok());
  std::vector<std::int32_t> tokens = {1, 17, 42, 5, 99};
  const std::vector<SequenceChunk> prompt = {{1, tokens}};
  auto logits = engine->runner->prefill(prompt);
  ASSERT_TRUE(logits.ok()) << logits.error().message;
  std::vector<std::int32_t> generated;
  for (int step = 0; step < 32; ++step) {
    const auto row = logits->row(0);
    generated.push_back(static_cast<std::int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
    const memory::SeqId seqs[] = {1};
    logits = engine->runner->decode_step(seqs, std::span(&generated.back(), 1));
    ASSERT_TRUE(logits.ok()) << logits.error().message;
  }
  const std::set<std::int32_t> distinct(generated.begin(), generated.end());
  // A collapsed model repeats one or two tokens; a varied one uses a good share of 32 steps.
  EXPECT_GE(distinct.size(), 8U) << "greedy continuation collapsed";
}

INSTANTIATE_TEST_SUITE_P(Shapes, SynthesizedModelTest,
                         ::testing::Values(Shape{Architecture::kQwen2, 64, 2, 1024}, Shape{Architecture::kLlama, 64, 2, 1024},
                                           Shape{Architecture::kMistral, 64, 2, 1024},
                                           Shape{Architecture::kQwen2, 256, 4, 4096},
                                           Shape{Architecture::kLlama, 256, 4, 4096}),
                         [](const auto& info) {
                           return std::string(to_string(info.param.arch)).substr(0, 5) + "_" +
                                  std::to_string(info.param.hidden);
                         });

}  // namespace
}  // namespace aegaeon::model
