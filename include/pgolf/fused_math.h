// The per-element and per-row arithmetic of the fused ops (fused.h), written
// once for both sides: the CUDA kernels (src/fused_kernels.cu) and the CPU
// loops (src/fused.cpp) call these same functions, so the CPU tests of the
// loops check the arithmetic the GPU runs. Plain math on T (float, or
// double in tests), no ATen; bf16 data is computed in float.
#pragma once
#include <math.h>

#if defined(__CUDACC__)
#define PGOLF_HD __host__ __device__
#else
#define PGOLF_HD
#endif

namespace pgolf::fused_math {

// Soft-cap: c * tanh(z / c).
template <class T>
PGOLF_HD inline T softcap(T z, T c) {
  return c * tanh(z / c);
}

// Running log-sum-exp of a stream of values: `max` so far and the sum of
// exp(v - max); adding v > max rescales the sum by exp(max - v) first.
template <class T>
struct LogSumExp {
  T max = -INFINITY, sum = 0;
};
template <class T>
PGOLF_HD inline void lse_add(LogSumExp<T>& s, T v) {
  if (v > s.max) {
    s.sum = s.sum * exp(s.max - v) + T(1);
    s.max = v;
  } else {
    s.sum += exp(v - s.max);
  }
}
// Two partial streams as one (a block reduction's step).
template <class T>
PGOLF_HD inline LogSumExp<T> lse_merge(LogSumExp<T> a, LogSumExp<T> b) {
  if (b.max > a.max) {
    const LogSumExp<T> t = a;
    a = b;
    b = t;
  }
  if (b.max == T(-INFINITY)) return a;
  a.sum += b.sum * exp(b.max - a.max);
  return a;
}
template <class T>
PGOLF_HD inline T lse_value(LogSumExp<T> s) {
  return s.max + log(s.sum);
}

// Cross-entropy of soft-capped logits, for one row of pre-cap logits z:
//   loss = lse - c_y,  c_j = softcap(z_j), lse = log sum_j exp(c_j).
// Its gradient with respect to z_j, given the row's upstream gradient g:
//   g * (exp(c_j - lse) - [j == y]) * (1 - tanh^2(z_j / cap)).
template <class T>
PGOLF_HD inline T softcap_ce_grad(T z, T cap, T lse, bool is_target, T g) {
  const T t = tanh(z / cap);
  const T p = exp(cap * t - lse);
  return g * (p - (is_target ? T(1) : T(0))) * (T(1) - t * t);
}

// relu(x)^2 and LeakyReLU(x, slope)^2 (slope 0: relu^2), with derivatives
// 2 a(x) a'(x): 2x for x > 0, 2 slope^2 x otherwise.
template <class T>
PGOLF_HD inline T leaky_relu2(T x, T slope) {
  const T a = x > T(0) ? x : slope * x;
  return a * a;
}
template <class T>
PGOLF_HD inline T leaky_relu2_grad(T x, T slope) {
  return x > T(0) ? T(2) * x : T(2) * slope * slope * x;
}

}  // namespace pgolf::fused_math
