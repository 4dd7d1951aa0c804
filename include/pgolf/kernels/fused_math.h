// The per-element and per-row arithmetic of the fused ops (fused.h), written
// once for both sides: the CUDA kernels (src/kernels/<op>.cu) and the CPU
// loops (src/kernels/<op>.cpp) call these same functions, so the CPU tests of the
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

// RMSNorm + RoPE + gain of one head vector x of N elements, rotating the
// pairs (i, i + H) for i < H (H = rotated dims / 2; dims from 2H on pass):
//   r = 1 / sqrt(sum(x^2) / N + eps),  n = r x,
//   out_i = g (n_i c_i + n_{i+H} s_i),  out_{i+H} = g (n_{i+H} c_i - n_i s_i),  out_j = g n_j.
template <class T>
PGOLF_HD inline T rms_inverse(T sum_sq, T count, T eps) {
  return T(1) / sqrt(sum_sq / count + eps);
}
template <class T>
PGOLF_HD inline void rope_rotate(T a, T b, T c, T s, T& out_a, T& out_b) {
  out_a = a * c + b * s;
  out_b = b * c - a * s;
}
// The backward of the rotation: the transpose, (u_a, u_b) -> (u_a c - u_b s, u_a s + u_b c).
template <class T>
PGOLF_HD inline void rope_rotate_back(T ua, T ub, T c, T s, T& ga, T& gb) {
  ga = ua * c - ub * s;
  gb = ua * s + ub * c;
}
// The backward of n = r x, given gn = dL/dn and dot = sum(gn n) over the vector:
//   dL/dx_j = r (gn_j - n_j dot / N).
template <class T>
PGOLF_HD inline T rms_norm_back(T gn, T n, T dot, T r, T count) {
  return r * (gn - n * dot / count);
}

// A block's residual arithmetic for one element: p x + q y, the entry's
// resid_mix (p = mix0, q = mix1, y = x0) or a branch's add (p = 1, q = its scale).
template <class T>
PGOLF_HD inline T residual_mix(T x, T y, T p, T q) {
  return p * x + q * y;
}

// SmearGate of one element, g = sigmoid(gate): (1 - g) cur + g prev. The
// same form carries gradients backwards: dL/dx_t = (1 - g) dL/ds_t + g dL/ds_{t+1}.
template <class T>
PGOLF_HD inline T smear(T cur, T prev, T g) {
  return (T(1) - g) * cur + g * prev;
}
// d smear / d gate, the parameter under the sigmoid: (prev - cur) g (1 - g).
template <class T>
PGOLF_HD inline T smear_gate_grad(T cur, T prev, T g) {
  return (prev - cur) * g * (T(1) - g);
}
template <class T>
PGOLF_HD inline T sigmoid(T z) {
  return T(1) / (T(1) + exp(-z));
}

// XSA of one head vector y against its KV group's unit value vector
// u = v / max(|v|, 1e-12):  out = y - a u,  a = y . u.
// Backward, with b = g . u for the head's upstream gradient g:
//   dL/dy = g - b u;
//   dL/du_i = -sum over the group's heads of (b y_i + a g_i) =: gu_i, so gu . u = -2 sum a b =: c;
//   dL/dv_i = (gu_i - c u_i) / |v|  (|v| > 1e-12; below, the clamped norm is a constant: gu_i / 1e-12).
template <class T>
PGOLF_HD inline T clamped_norm(T sum_sq) {
  const T n = sqrt(sum_sq);
  return n > T(1e-12) ? n : T(1e-12);
}
template <class T>
PGOLF_HD inline T xsa_remove(T y, T a, T u) {
  return y - a * u;
}
template <class T>
PGOLF_HD inline T xsa_value_grad(T gu, T c, T u, T norm, bool clamped) {
  return clamped ? gu / norm : (gu - c * u) / norm;
}

}  // namespace pgolf::fused_math
