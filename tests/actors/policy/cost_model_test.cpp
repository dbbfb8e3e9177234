#include "actors/policy/cost_model.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include <vector>

namespace aegaeon::policy {
namespace {

TEST(LinearFit3, RecoversExactCoefficients) {
  LinearFit3 fit;
  // y = 0.01 + 2e-5·x1 + 3e-4·x2 on a grid.
  for (double x1 : {100.0, 1000.0, 5000.0}) {
    for (double x2 : {1.0, 8.0, 32.0}) fit.add(x1, x2, 0.01 + 2e-5 * x1 + 3e-4 * x2);
  }
  auto p = fit.solve();
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR((*p)[0], 0.01, 1e-9);
  EXPECT_NEAR((*p)[1], 2e-5, 1e-12);
  EXPECT_NEAR((*p)[2], 3e-4, 1e-11);
}

TEST(LinearFit3, FailsWithTooFewOrDegenerateSamples) {
  LinearFit3 fit;
  fit.add(1, 1, 1);
  fit.add(2, 2, 2);
  EXPECT_FALSE(fit.solve().ok());
  fit.add(3, 3, 3);  // x2 == x1 always: collinear
  EXPECT_FALSE(fit.solve().ok());
}

TEST(ExecutionEstimator, FitsProfileRowsAndRefitsOnline) {
  // Rows generated from prefill = 0.005 + 1e-4·Σlen + 1e-8·Σlen², decode = 0.008 + 2e-6·Σctx + 1e-4·B.
  std::vector<ProfileSample> rows;
  for (double len : {64.0, 256.0, 1024.0}) {
    for (double b : {1.0, 4.0, 16.0}) {
      const double sum = len * b;
      rows.push_back({len, b, 0.005 + 1e-4 * sum + 1e-8 * len * len * b, 0.008 + 2e-6 * sum + 1e-4 * b});
    }
  }
  auto est = ExecutionEstimator::fit(rows);
  ASSERT_TRUE(est.ok());
  EXPECT_NEAR(est->decode().estimate_s(512, 1), 0.008 + 2e-6 * 512 + 1e-4, 1e-9);
  EXPECT_NEAR(est->prefill().single_s(2048), 0.005 + 1e-4 * 2048 + 1e-8 * 2048 * 2048, 1e-7);
  // Online measurements from a device twice as slow pull the fit towards them.
  const double before = est->decode().estimate_s(4096, 8);
  for (int i = 0; i < 200; ++i) est->observe_decode(4096, 8, 2.0 * before);
  est->refit();
  EXPECT_GT(est->decode().estimate_s(4096, 8), 1.8 * before);
}

// A failed step reports no time; weighted by 1/t² it would turn every estimate into NaN.
TEST(ExecutionEstimator, TimesThatAreNotPositiveAreIgnored) {
  ExecutionEstimator est({0.005, 2e-4, 0}, {0.01, 1e-6, 1e-4});
  est.observe_decode(100, 2, 0.012);
  est.observe_decode(300, 4, 0.0);
  est.observe_prefill(64, 64.0 * 64, 0.0);
  est.refit();
  EXPECT_TRUE(std::isfinite(est.decode().estimate_s(512, 4)));
  EXPECT_TRUE(std::isfinite(est.prefill().single_s(512)));
}

TEST(ExecutionEstimator, PromptsOfOneLengthDoNotBendTheQuadraticTerm) {
  // A burst of short prompts (10..13 tokens) measured online, their times a few ms apart as a
  // busy machine makes them; then a prompt of 2,000 tokens. A quadratic through those points
  // predicts over half an hour for it; the prior (5 ms + 0.2 ms/token) must stay.
  ExecutionEstimator est(PrefillCost{0.005, 2e-4, 0}, DecodeCost{});
  const double measured[] = {0.005, 0.005, 0.006, 0.008};
  for (int i = 0; i < 64; ++i) {
    const double len = 10 + i % 4;
    est.observe_prefill(len, len * len, measured[i % 4]);
    est.refit();
  }
  EXPECT_LT(est.prefill().single_s(2000), 10 * (0.005 + 2e-4 * 2000)) << "a, b, c = " << est.prefill().a_s << ", "
                                                                        << est.prefill().b_s << ", " << est.prefill().c_s;
  // Once measured lengths span a range, the fit follows them: here a device with a quadratic
  // term the prior lacks.
  auto truth = [](double len) { return 0.005 + 2e-4 * len + 2e-7 * len * len; };
  for (int i = 0; i < 8; ++i) {
    for (double len : {64.0, 256.0, 1024.0}) est.observe_prefill(len, len * len, truth(len));
  }
  est.refit();
  EXPECT_NEAR(est.prefill().single_s(1024), truth(1024), 0.1 * truth(1024));
  EXPECT_GT(est.prefill().single_s(1024), 1.5 * (0.005 + 2e-4 * 1024)) << "still the prior";
}

TEST(TransferCost, BytesOverEffectiveBandwidth) {
  TransferCost link{64.0 * (1 << 30), 0.5, 0.0};
  EXPECT_DOUBLE_EQ(link.estimate_s(16.0 * (1 << 30)), 0.5);  // 16 GiB at 32 GiB/s effective
  EXPECT_DOUBLE_EQ(link.estimate_s(0.0), 0.0);
}

}  // namespace
}  // namespace aegaeon::policy
