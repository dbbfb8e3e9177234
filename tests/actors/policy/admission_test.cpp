#include "actors/policy/admission.hpp"

#include <gtest/gtest.h>

namespace aegaeon::policy {
namespace {

TEST(Admission, RejectsWhenTtftInfeasibleWithRetryAfterOfExcess) {
  auto d = decide_admission(AdmissionConfig{}, Slo{10.0, 0.1}, AdmissionInput{0.6, 13.5, 5.0});
  EXPECT_FALSE(d.admit);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 3.5);
  EXPECT_NE(d.reason.find("first token"), std::string::npos);
}

TEST(Admission, RejectsWhenAlphaExceedsLimitWithDrainHint) {
  auto d = decide_admission(AdmissionConfig{}, Slo{10.0, 0.1}, AdmissionInput{1.2, 2.0, 7.0});
  EXPECT_FALSE(d.admit);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 7.0);
  EXPECT_NE(d.reason.find("between tokens"), std::string::npos);
  // Retry-After is clamped to [1, 60].
  EXPECT_DOUBLE_EQ(decide_admission(AdmissionConfig{}, Slo{}, AdmissionInput{1.2, 0, 0.1}).retry_after_s, 1.0);
}

TEST(Admission, AdmitsFeasibleOrWhenDisabled) {
  EXPECT_TRUE(decide_admission(AdmissionConfig{}, Slo{10.0, 0.1}, AdmissionInput{1.0, 10.0, 0}).admit);
  AdmissionConfig off;
  off.enabled = false;
  EXPECT_TRUE(decide_admission(off, Slo{10.0, 0.1}, AdmissionInput{3.0, 99.0, 0}).admit);
}

}  // namespace
}  // namespace aegaeon::policy
