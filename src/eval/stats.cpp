#include "pgolf/eval/stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pgolf {
namespace {

// The continued fraction of I_x(a, b) (Abramowitz & Stegun 26.5.8):
//   I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * 1 / (1 + d_1 / (1 + d_2 / (1 + ...))),
//   d_(2m+1) = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1)),
//   d_(2m)   = m (b-m) x / ((a+2m-1)(a+2m)),
// which converges quickly for x < (a+1)/(a+b+2). The denominator
// g = 1 + d_1/(1 + d_2/(1 + ...)) is evaluated front to back by the modified
// Lentz method: with C_0 = 1, D_0 = 0, g_0 = 1 and for j = 1, 2, ...
//   D_j = 1 / (1 + d_j D_(j-1)),  C_j = 1 + d_j / C_(j-1),  g_j = g_(j-1) C_j D_j,
// until C_j D_j = 1 to double precision; a zero denominator is replaced by
// a tiny number, which the next step undoes.
double beta_fraction_denominator(double a, double b, double x) {
  constexpr double kTiny = 1e-300;
  constexpr double kEpsilon = 1e-15;
  constexpr int kMaxTerms = 20000;  // enough for a, b up to about 10^7
  double c = 1.0, d = 0.0, g = 1.0;
  for (int j = 1; j <= kMaxTerms; ++j) {
    const double m = j / 2;
    const double coeff = j % 2 == 1 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                                    : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1.0 + coeff * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    d = 1.0 / d;
    c = 1.0 + coeff / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    const double step = c * d;
    g *= step;
    if (std::fabs(step - 1.0) < kEpsilon) return g;
  }
  throw std::runtime_error("incomplete_beta: the continued fraction did not converge for a=" + std::to_string(a) +
                           " b=" + std::to_string(b) + " x=" + std::to_string(x));
}

}  // namespace

// For x beyond (a+1)/(a+b+2) the symmetry I_x(a, b) = 1 - I_(1-x)(b, a)
// moves the fraction to where it converges; B(a, b) comes from lgamma.
double incomplete_beta(double a, double b, double x) {
  if (!(std::isfinite(a) && a > 0 && std::isfinite(b) && b > 0 && x >= 0 && x <= 1))
    throw std::invalid_argument("incomplete_beta needs a > 0, b > 0 and 0 <= x <= 1, not a=" + std::to_string(a) +
                                " b=" + std::to_string(b) + " x=" + std::to_string(x));
  if (x == 0 || x == 1) return x;
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front / (a * beta_fraction_denominator(a, b, x));
  return 1.0 - front / (b * beta_fraction_denominator(b, a, 1.0 - x));
}

// With x = df / (df + t^2), P(|T| > |t|) = I_x(df/2, 1/2); half of it lies
// beyond t on each side, so F(t) = I_x/2 for t < 0 and 1 - I_x/2 for t >= 0.
double student_t_cdf(double t, double df) {
  if (!(std::isfinite(df) && df > 0)) throw std::invalid_argument("student_t_cdf needs df > 0, not " + std::to_string(df));
  if (std::isnan(t)) throw std::invalid_argument("student_t_cdf: t is NaN");
  const double tail = 0.5 * incomplete_beta(0.5 * df, 0.5, df / (df + t * t));
  return t < 0 ? tail : 1.0 - tail;
}

// mean = sum x_i / n,  std = sqrt(sum (x_i - mean)^2 / (n - 1)), in two
// passes. Equal values give exactly their value and std 0: the rounding of
// the sum would otherwise leave a spread of about 1e-16, and a t-test of two
// sets of identical runs a huge t instead of none.
SampleSummary summarize(const std::vector<double>& values) {
  if (values.empty()) throw std::invalid_argument("summarize: no values");
  SampleSummary s;
  s.n = values.size();
  if (std::all_of(values.begin(), values.end(), [&](double v) { return v == values.front(); })) {
    s.mean = values.front();
    return s;
  }
  for (double v : values) s.mean += v;
  s.mean /= static_cast<double>(s.n);
  if (s.n < 2) return s;
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(squares / static_cast<double>(s.n - 1));
  return s;
}

// H0: mean_B - mean_A <= margin against H1: mean_B - mean_A > margin. With
// v_A = s_A^2 / n_A and v_B = s_B^2 / n_B (sample variances s^2):
//   t  = ((mean_B - mean_A) - margin) / sqrt(v_A + v_B),
//   df = (v_A + v_B)^2 / (v_A^2 / (n_A - 1) + v_B^2 / (n_B - 1))   (Welch-Satterthwaite),
//   p  = P(T_df > t) = F(-t)  (by symmetry, without the cancellation of 1 - F(t)).
// Without a standard deviation in each set (n < 2), or with no spread in
// either (v_A + v_B = 0, where t would divide by zero), there is no test.
WelchTest welch_margin_test(const SampleSummary& a, const SampleSummary& b, double margin) {
  if (!std::isfinite(margin)) throw std::invalid_argument("welch_margin_test: the margin is not a finite number");
  WelchTest w;
  if (a.n < 2 || b.n < 2) {
    w.undefined = std::string("set ") + (a.n < 2 ? "A" : "B") + " has " + std::to_string(a.n < 2 ? a.n : b.n) +
                  " value; the test needs at least 2 in each set for their standard deviations";
    return w;
  }
  const double va = a.std * a.std / static_cast<double>(a.n), vb = b.std * b.std / static_cast<double>(b.n);
  if (va + vb == 0) {
    w.undefined = "no value differs from the others of its set (zero variance in both), so t = difference / 0 is undefined";
    return w;
  }
  w.t = ((b.mean - a.mean) - margin) / std::sqrt(va + vb);
  w.df = (va + vb) * (va + vb) / (va * va / static_cast<double>(a.n - 1) + vb * vb / static_cast<double>(b.n - 1));
  w.p = student_t_cdf(-w.t, w.df);
  return w;
}

}  // namespace pgolf
