// The statistics of `pgolf compare` against scipy and closed forms.
//
// The reference values were computed once with scipy 1.17.1 (Python 3.11) in
// a scratch virtual environment, outside the repository:
//   scipy.special.betainc(a, b, x)                       (incomplete beta)
//   scipy.stats.t.cdf(t, df), scipy.stats.t.sf(t, df)    (Student's t)
//   scipy.stats.ttest_ind(B - margin, A, equal_var=False, alternative="greater")
//     -> statistic, df, pvalue                           (the margin subtracted by hand)
// and are printed here with repr()'s 17 significant digits.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "pgolf/eval/stats.h"

using namespace pgolf;

namespace {

// Within `rel` of `ref`, relative to its size.
void expect_close(double value, double ref, double rel, const std::string& what) {
  EXPECT_NEAR(value, ref, rel * std::abs(ref)) << what;
}

}  // namespace

TEST(Stats, IncompleteBetaMatchesScipy) {
  struct Case {
    double a, b, x, ref;
  };
  const std::vector<Case> cases = {
      {0.5, 0.5, 0.3, 0.36901011956554536}, {2, 3, 0.4, 0.5247999999999999},
      {5.5, 0.5, 0.9, 0.2925184553957732},  {10, 20, 0.33, 0.5019142489967602},
      {0.7, 3.2, 0.95, 0.9999634385298988}, {100, 80, 0.55, 0.43831966794519533},
      {1.9, 0.5, 0.02, 0.0002283536554609006},
  };
  for (const Case& c : cases)
    expect_close(incomplete_beta(c.a, c.b, c.x), c.ref, 1e-12,
                 "I_x(a, b) at a=" + std::to_string(c.a) + " b=" + std::to_string(c.b) + " x=" + std::to_string(c.x));
}

// I_x(1, 1) = x, I_x(a, 1) = x^a, I_x(1, b) = 1 - (1-x)^b and the symmetry
// I_x(a, b) = 1 - I_(1-x)(b, a); the ends are 0 and 1.
TEST(Stats, IncompleteBetaClosedFormsAndSymmetry) {
  for (double x : {0.01, 0.2, 0.5, 0.77, 0.999}) {
    EXPECT_NEAR(incomplete_beta(1, 1, x), x, 1e-14) << x;
    EXPECT_NEAR(incomplete_beta(3.5, 1, x), std::pow(x, 3.5), 1e-14) << x;
    EXPECT_NEAR(incomplete_beta(1, 2.25, x), 1 - std::pow(1 - x, 2.25), 1e-14) << x;
    EXPECT_NEAR(incomplete_beta(2.7, 0.4, x), 1 - incomplete_beta(0.4, 2.7, 1 - x), 1e-14) << x;
  }
  EXPECT_EQ(incomplete_beta(2, 3, 0), 0);
  EXPECT_EQ(incomplete_beta(2, 3, 1), 1);
  EXPECT_THROW(incomplete_beta(0, 1, 0.5), std::invalid_argument);
  EXPECT_THROW(incomplete_beta(1, -2, 0.5), std::invalid_argument);
  EXPECT_THROW(incomplete_beta(1, 1, 1.5), std::invalid_argument);
  EXPECT_THROW(incomplete_beta(1, 1, NAN), std::invalid_argument);
}

TEST(Stats, StudentTCdfMatchesScipy) {
  struct Case {
    double t, df, ref;
  };
  const std::vector<Case> cases = {
      {0.5, 1, 0.6475836176504333},       {-2.0, 3, 0.06966298427942152},  {1.7, 2.5, 0.8971938914200581},
      {3.21, 3.8, 0.9824715802411523},    {-0.3, 7.25, 0.38629841688197364}, {2.5, 30, 0.9909421754659666},
      {-4.0, 120.5, 5.485604040482104e-05}, {10.0, 4.3, 0.9998059114090717}, {-25.0, 2.2, 0.00048048686854944484},
  };
  for (const Case& c : cases)
    expect_close(student_t_cdf(c.t, c.df), c.ref, 1e-11, "F(t) at t=" + std::to_string(c.t) + " df=" + std::to_string(c.df));
  // Upper tails, as the test's p-values take them (F(-t) = 1 - F(t)): scipy's t.sf.
  expect_close(student_t_cdf(-10.0, 4.3), 0.00019408859092833857, 1e-11, "sf(10, 4.3)");
  expect_close(student_t_cdf(-40.0, 2.5), 7.09781714524669e-05, 1e-11, "sf(40, 2.5)");
  EXPECT_EQ(student_t_cdf(0, 5), 0.5);
  EXPECT_THROW(student_t_cdf(1, 0), std::invalid_argument);
  EXPECT_THROW(student_t_cdf(NAN, 3), std::invalid_argument);
}

// df = 1 is the Cauchy distribution, F(t) = 1/2 + atan(t)/pi; df = 2 has
// F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
TEST(Stats, StudentTCdfClosedFormsForOneAndTwoDegreesOfFreedom) {
  for (double t : {-50.0, -3.0, -0.7, -0.01, 0.0, 0.2, 1.0, 2.5, 8.0, 1e3}) {
    EXPECT_NEAR(student_t_cdf(t, 1), 0.5 + std::atan(t) / M_PI, 1e-14) << t;
    EXPECT_NEAR(student_t_cdf(t, 2), 0.5 + t / (2 * std::sqrt(2 + t * t)), 1e-14) << t;
  }
  EXPECT_EQ(student_t_cdf(INFINITY, 3), 1);
  EXPECT_EQ(student_t_cdf(-INFINITY, 3), 0);
}

TEST(Stats, SummaryIsMeanAndSampleStd) {
  const SampleSummary s = summarize({1.0, 2.0, 4.0});
  EXPECT_EQ(s.n, 3u);
  EXPECT_NEAR(s.mean, 7.0 / 3, 1e-15);
  // sum of squares about the mean: (4/3)^2 + (1/3)^2 + (5/3)^2 = 42/9, over n - 1 = 2
  EXPECT_NEAR(s.std, std::sqrt(42.0 / 9 / 2), 1e-15);
  EXPECT_EQ(summarize({1.9}).std, 0);
  // Equal values: exactly that mean and no spread, whatever the rounding of their sum.
  const SampleSummary same = summarize({1.9, 1.9, 1.9});
  EXPECT_EQ(same.mean, 1.9);
  EXPECT_EQ(same.std, 0);
  EXPECT_THROW(summarize({}), std::invalid_argument);
}

// Four runs of A and three of B: A is 0.0079 nats better, short of a
// significant 0.005 (p = 0.074); far from a significant 0.02 (p = 0.9995).
TEST(Stats, WelchMarginTestMatchesScipy) {
  const SampleSummary a = summarize({1.9012, 1.9050, 1.8998, 1.9031});
  const SampleSummary b = summarize({1.9105, 1.9121, 1.9079});
  const WelchTest w = welch_margin_test(a, b, 0.005);
  ASSERT_TRUE(w.undefined.empty()) << w.undefined;
  expect_close(w.t, 1.7342847550275742, 1e-10, "t");
  expect_close(w.df, 4.628681460890786, 1e-10, "df");
  expect_close(w.p, 0.07404151606337303, 1e-10, "p");
  const WelchTest far = welch_margin_test(a, b, 0.02);
  expect_close(far.t, -7.2620050405038095, 1e-10, "t, margin 0.02");
  expect_close(far.df, 4.628681460890786, 1e-10, "df, margin 0.02");
  expect_close(far.p, 0.9994660161803557, 1e-10, "p, margin 0.02");
  const WelchTest clear = welch_margin_test(summarize({1.9000, 1.9004, 1.8998, 1.9002}), summarize({1.9102, 1.9110, 1.9098}), 0.005);
  expect_close(clear.t, 13.931497197831776, 1e-10, "t, clear improvement");
  expect_close(clear.df, 2.5412005671972464, 1e-10, "df, clear improvement");
  expect_close(clear.p, 0.0009089384924807303, 1e-9, "p, clear improvement");
}

// One set without spread: the other's variance alone, df = n - 1 (scipy
// agrees). Both without spread, or a set of one run: no test, and why.
TEST(Stats, WelchMarginTestWithoutSpreadOrWithOneRun) {
  const WelchTest one_flat = welch_margin_test(summarize({1.9, 1.9, 1.9}), summarize({1.910, 1.912, 1.908}), 0.005);
  ASSERT_TRUE(one_flat.undefined.empty()) << one_flat.undefined;
  expect_close(one_flat.t, 4.330127018922481, 1e-10, "t");
  EXPECT_NEAR(one_flat.df, 2.0, 1e-12);
  expect_close(one_flat.p, 0.02470681210663852, 1e-9, "p");

  const WelchTest flat = welch_margin_test(summarize({1.90, 1.90}), summarize({1.91, 1.91, 1.91}), 0.005);
  EXPECT_NE(flat.undefined.find("zero variance in both"), std::string::npos) << flat.undefined;
  const WelchTest single = welch_margin_test(summarize({1.90, 1.901}), summarize({1.91}), 0.005);
  EXPECT_NE(single.undefined.find("set B has 1 value"), std::string::npos) << single.undefined;
  EXPECT_THROW(welch_margin_test(summarize({1.90, 1.901}), summarize({1.91, 1.92}), NAN), std::invalid_argument);
}
