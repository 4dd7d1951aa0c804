// The statistics of `pgolf compare`: a set of runs' mean and spread, and
// whether one set beats another by a margin (the challenge's rule: a new
// record beats the previous one by at least 0.005 nats at p < 0.01).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace pgolf {

// The regularised incomplete beta function
//   I_x(a, b) = B(x; a, b) / B(a, b),  B(x; a, b) = integral_0^x s^(a-1) (1-s)^(b-1) ds,
// for a, b > 0 and 0 <= x <= 1; anything else throws std::invalid_argument.
// Relative error about 1e-13 for a, b up to a few hundred (B(a, b) comes
// from lgamma, whose rounding grows with its argument: about 1e-10 at 10^6).
double incomplete_beta(double a, double b, double x);

// P(T <= t) for Student's t distribution with df > 0 degrees of freedom
// (df need not be a whole number).
double student_t_cdf(double t, double df);

// Count, mean and sample standard deviation (n - 1 in the denominator; 0
// when n < 2) of a set of values.
struct SampleSummary {
  std::size_t n = 0;
  double mean = 0, std = 0;
};
SampleSummary summarize(const std::vector<double>& values);

// The one-sided Welch t-test that the mean of B exceeds the mean of A by
// more than `margin` (for losses: A improves on B by more than the margin).
// `undefined` says why there is no test (empty when t, df and p hold it).
struct WelchTest {
  double t = 0, df = 0, p = 0;
  std::string undefined;
};
WelchTest welch_margin_test(const SampleSummary& a, const SampleSummary& b, double margin);

}  // namespace pgolf
