/* vidseg's float32 AVX-512F CPU kernels for the MiT inference fast path: softmax attention, LayerNorm and the
 * fused Mix-FFN (fc1, 3x3 depthwise conv, erf GELU, fc2, residual).
 *
 * Built and loaded by vidseg/models/ops/cpu_kernels.py (see its docstring for why vidseg has its own kernels).
 * All run on `threads` OpenMP threads of the runtime PyTorch loaded: its libgomp.so.1 is already in the process
 * when this library is opened, so the same worker threads run torch's ops and these kernels.
 *
 * Attention, out = softmax(q k^T) v. Shapes: q [B, H, N, D], v [B, H, M, D] with any batch/head/row strides and
 * contiguous channels; kt holds the keys, already multiplied by the softmax scale and transposed per (batch,
 * head) to [D, Mp] with Mp = M rounded up to 32 (the padding columns are never used); out [B, H, N, D] with any
 * strides. D must be 16, 32, 48 or 64.
 *
 * Per block of 8 query rows (8 * Mp scores stay in L1/L2):
 *   1. scores s = q kt for 32 keys at a time: 16 accumulators, one broadcast of q per key vector pair;
 *   2. each row: max, then exp(s - max) with a degree-6 polynomial after range reduction (about 1 ulp, like
 *      Cephes' expf) and the row sum; the padding lanes are masked out;
 *   3. out = (p v) / sum, 4 or 8 rows at a time with up to 16 accumulators, one pass over the M value rows.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define INLINE static inline __attribute__((always_inline))

/* Each kernel thread flushes denormal inputs and results to zero while it runs (MXCSR FTZ + DAZ, restored at the
 * end): exponentials of very negative arguments are tiny, and arithmetic on denormals costs ~100 cycles each. The
 * values change only below 1.2e-38. */
INLINE unsigned int denormals_off(void) {
  const unsigned int csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040u);
  return csr;
}

/* exp(x) for x <= 0; below -87.34 (where expf is denormal or 0) it returns exp(-87.34) ~ 1.2e-38 */
INLINE __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x); /* x - n ln2, ln2 split in two parts */
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n); /* y * 2^n */
}

/* The GEMM micro-kernel of all three kernels: out[r, 0:32] = a[r, :] @ b[:, 0:32] (+ bias[0:32]) (+ add[r, 0:32])
 * for R <= 8 rows; a [R, k] (row stride a_rs), b [k, 32] (row stride b_rs), out and add with row stride out_rs.
 * The accumulators (2 per row) are fixed-size arrays so that, once R is a constant after inlining, they live in
 * registers; each step over k loads two vectors of b and broadcasts one value of each row of a. */
INLINE void gemm_rows_x32(const int R, const float *a, int64_t a_rs, int64_t k, const float *b, int64_t b_rs,
                          const float *bias, const float *add, float *out, int64_t out_rs) {
  __m512 a0[8], a1[8];
  const __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    a0[r] = add ? _mm512_add_ps(bias0, _mm512_loadu_ps(add + r * out_rs)) : bias0;
    a1[r] = add ? _mm512_add_ps(bias1, _mm512_loadu_ps(add + r * out_rs + 16)) : bias1;
  }
  for (int64_t c = 0; c < k; ++c) {
    const __m512 b0 = _mm512_loadu_ps(b + c * b_rs), b1 = _mm512_loadu_ps(b + c * b_rs + 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 ab = _mm512_set1_ps(a[r * a_rs + c]);
      a0[r] = _mm512_fmadd_ps(ab, b0, a0[r]);
      a1[r] = _mm512_fmadd_ps(ab, b1, a1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(out + r * out_rs, a0[r]);
    _mm512_storeu_ps(out + r * out_rs + 16, a1[r]);
  }
}

/* Scores of R rows against all keys into s [R, Mp], 32 keys at a time. */
INLINE void block_scores(const int R, const int D, const float *q, int64_t q_rs, const float *kt, int64_t mp,
                         float *s) {
  for (int64_t j = 0; j < mp; j += 32) gemm_rows_x32(R, q, q_rs, D, kt + j, mp, NULL, NULL, s + j, mp);
}

/* Row r of s [R, Mp] becomes exp(s - max) over its first m entries; returns 1 / their sum. */
INLINE float softmax_numerators(float *row, int64_t m) {
  const int64_t full = m / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (m - full)) - 1u);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < full; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + j));
  if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_loadu_ps(row + full));
  const __m512 mxb = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < full; j += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), mxb));
    _mm512_storeu_ps(row + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (tail) {
    const __m512 e = _mm512_maskz_mov_ps(tail, exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + full), mxb)));
    _mm512_storeu_ps(row + full, e);
    sum = _mm512_add_ps(sum, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

/* out rows = (p v) * inv for R rows of probabilities p (rows of s, stride mp): R * DV accumulators */
INLINE void weighted_values(const int R, const int DV, const float *s, int64_t m, int64_t mp, const float *v,
                            int64_t v_rs, const float *inv, float *out, int64_t o_rs) {
  __m512 o[8][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < DV; ++t) o[r][t] = _mm512_setzero_ps();
  for (int64_t j = 0; j < m; ++j) {
    __m512 vj[4];
#pragma GCC unroll 4
    for (int t = 0; t < DV; ++t) vj[t] = _mm512_loadu_ps(v + j * v_rs + 16 * t);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 p = _mm512_set1_ps(s[r * mp + j]);
#pragma GCC unroll 4
      for (int t = 0; t < DV; ++t) o[r][t] = _mm512_fmadd_ps(p, vj[t], o[r][t]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 4
    for (int t = 0; t < DV; ++t) _mm512_storeu_ps(out + r * o_rs + 16 * t, _mm512_mul_ps(o[r][t], scale));
  }
}

/* s[r, 0:m] += bias[r, 0:m] for R rows (bias row stride b_rs) */
INLINE void add_bias(const int R, float *s, int64_t mp, int64_t m, const float *bias, int64_t b_rs) {
  const int64_t full = m / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (m - full)) - 1u);
  for (int r = 0; r < R; ++r) {
    float *row = s + r * mp;
    const float *b = bias + r * b_rs;
    for (int64_t j = 0; j < full; j += 16)
      _mm512_storeu_ps(row + j, _mm512_add_ps(_mm512_loadu_ps(row + j), _mm512_loadu_ps(b + j)));
    if (tail)
      _mm512_mask_storeu_ps(row + full, tail,
                            _mm512_add_ps(_mm512_loadu_ps(row + full), _mm512_maskz_loadu_ps(tail, b + full)));
  }
}

/* R query rows: scores of all R rows at once (plus `bias` [R, m] with row stride b_rs unless NULL), then the
 * weighted values in groups of PR rows (PR * DV <= 16 accumulators) */
INLINE void block(const int R, const int PR, const int DV, const float *q, int64_t q_rs, const float *kt, int64_t m,
                  int64_t mp, const float *v, int64_t v_rs, float *out, int64_t o_rs, float *s, const float *bias,
                  int64_t b_rs) {
  block_scores(R, DV * 16, q, q_rs, kt, mp, s);
  if (bias) add_bias(R, s, mp, m, bias, b_rs);
  float inv[8];
  for (int r = 0; r < R; ++r) inv[r] = softmax_numerators(s + r * mp, m);
#pragma GCC unroll 2
  for (int r = 0; r < R; r += PR)
    weighted_values(PR, DV, s + r * mp, m, mp, v, v_rs, inv + r, out + r * o_rs, o_rs);
}

/* rows [r0, r1) of one (batch, head): blocks of R rows, then single rows */
#define ROWS(PR, DV)                                                                                             \
  static void rows_##DV(const float *q, int64_t q_rs, const float *kt, int64_t m, int64_t mp, const float *v,  \
                        int64_t v_rs, float *out, int64_t o_rs, float *s, int64_t r0, int64_t r1,              \
                        const float *bias, int64_t b_rs) {                                                       \
    int64_t r = r0;                                                                                              \
    for (; r + 8 <= r1; r += 8)                                                                                  \
      block(8, PR, DV, q + r * q_rs, q_rs, kt, m, mp, v, v_rs, out + r * o_rs, o_rs, s,                          \
            bias ? bias + r * b_rs : NULL, b_rs);                                                                \
    for (; r < r1; ++r)                                                                                          \
      block(1, 1, DV, q + r * q_rs, q_rs, kt, m, mp, v, v_rs, out + r * o_rs, o_rs, s,                           \
            bias ? bias + r * b_rs : NULL, b_rs);                                                                \
  }
ROWS(8, 1)
ROWS(8, 2)
ROWS(4, 3)
ROWS(4, 4)

typedef void (*rows_fn)(const float *, int64_t, const float *, int64_t, int64_t, const float *, int64_t, float *,
                        int64_t, float *, int64_t, int64_t, const float *, int64_t);
static const rows_fn rows_by_width[4] = {rows_1, rows_2, rows_3, rows_4};

#define ROWS_PER_TASK 64

/* Every (batch, head) pair (bh = B * H) and query row, in tasks of 64 rows. Returns 0, -1 for unsupported sizes,
 * -2 when out of memory. Strides are in elements. */
int vidseg_attention(int64_t threads, int64_t bh, int64_t heads, int64_t n, int64_t d, int64_t m, int64_t mp,
                     const float *q, int64_t q_bs, int64_t q_hs, int64_t q_rs, const float *kt, const float *v,
                     int64_t v_bs, int64_t v_hs, int64_t v_rs, float *out, int64_t o_bs, int64_t o_hs, int64_t o_rs) {
  if (threads < 1 || d < 16 || d > 64 || d % 16 != 0 || m < 1 || mp < m || mp % 32 != 0 || heads < 1 || n < 0)
    return -1;
  const int64_t per_head = (n + ROWS_PER_TASK - 1) / ROWS_PER_TASK, tasks = bh * per_head;
  int failed = 0;
#pragma omp parallel num_threads((int)threads) reduction(| : failed)
  {
    const unsigned int csr = denormals_off();
    float *s = (float *)aligned_alloc(64, (size_t)(8 * mp) * sizeof(float));
    failed |= s == NULL;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      if (s == NULL) continue; /* every thread must still reach the loop's barrier */
      const int64_t i = task / per_head, b = i / heads, h = i % heads, r0 = task % per_head * ROWS_PER_TASK;
      const int64_t r1 = r0 + ROWS_PER_TASK < n ? r0 + ROWS_PER_TASK : n;
      rows_by_width[d / 16 - 1](q + b * q_bs + h * q_hs, q_rs, kt + i * d * mp, m, mp, v + b * v_bs + h * v_hs,
                                v_rs, out + b * o_bs + h * o_hs, o_rs, s, r0, r1, NULL, 0);
    }
    free(s);
    _mm_setcsr(csr);
  }
  return failed ? -2 : 0;
}

/* Keys (times `scale`, transposed to kt [d, mp], padding columns zero) and values (vals [m, d]) of one window
 * and head, gathered from a token table with row stride t_rs: key j starts at keys + rows[j] t_rs, its value at
 * values + rows[j] t_rs. */
static void gather_window(int64_t t_rs, const int64_t *rows, int64_t m, int64_t mp, int64_t d, const float *keys,
                          const float *values, float scale, float *kt, float *vals) {
  for (int64_t j = 0; j < m; ++j) {
    const int64_t offset = rows[j] * t_rs;
    for (int64_t c = 0; c < d; ++c) kt[c * mp + j] = keys[offset + c] * scale;
    for (int64_t c = 0; c < d; c += 16) _mm512_storeu_ps(vals + j * d + c, _mm512_loadu_ps(values + offset + c));
  }
  for (int64_t c = 0; c < d; ++c)
    for (int64_t j = m; j < mp; ++j) kt[c * mp + j] = 0.0f;
}

/* Windowed attention with gathered keys (CFFM): for every window w < windows and head h,
 * out[w, h] = softmax(scale q[w, h] k^T + bias[w % bias_windows, h]) v, where k and v are the table rows
 * rows[w, 0:m] (keys from column k_col + h d, values from column v_col + h d of a [*, t_rs] table). q, out:
 * [windows, heads, nq, d] with any strides (channels contiguous); bias [bias_windows, heads, nq, m] contiguous.
 * Tasks are (window, head) pairs; each gathers its keys and values into thread-local buffers, so the gathered
 * [windows, heads, m, d] tensors never exist. Returns 0, -1 for unsupported sizes, -2 when out of memory. */
int vidseg_window_attention(int64_t threads, int64_t windows, int64_t heads, int64_t nq, int64_t d, int64_t m,
                            const float *q, int64_t q_ws, int64_t q_hs, int64_t q_rs, const float *table,
                            int64_t t_rs, int64_t k_col, int64_t v_col, const int64_t *rows, const float *bias,
                            int64_t bias_windows, double scale, float *out, int64_t o_ws, int64_t o_hs,
                            int64_t o_rs) {
  if (threads < 1 || d < 16 || d > 64 || d % 16 != 0 || m < 1 || heads < 1 || nq < 0 || bias_windows < 1) return -1;
  const int64_t mp = (m + 31) / 32 * 32, tasks = windows * heads;
  int failed = 0;
#pragma omp parallel num_threads((int)threads) reduction(| : failed)
  {
    const unsigned int csr = denormals_off();
    float *s = (float *)aligned_alloc(64, (size_t)((8 + d) * mp + m * d) * sizeof(float));
    failed |= s == NULL;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      if (s == NULL) continue; /* every thread must still reach the loop's barrier */
      const int64_t w = task / heads, h = task % heads;
      float *kt = s + 8 * mp, *vals = kt + d * mp;
      gather_window(t_rs, rows + w * m, m, mp, d, table + k_col + h * d, table + v_col + h * d, (float)scale, kt,
                    vals);
      rows_by_width[d / 16 - 1](q + w * q_ws + h * q_hs, q_rs, kt, m, mp, vals, d, out + w * o_ws + h * o_hs, o_rs,
                                s, 0, nq, bias + ((w % bias_windows) * heads + h) * nq * m, m);
    }
    free(s);
    _mm_setcsr(csr);
  }
  return failed ? -2 : 0;
}

/* LayerNorm of rows of C = 16 * CV channels (CV <= 32): the row is held in registers, mean and variance are
 * computed in two passes over them (as a float32 two-pass reference would), then y = (x - mean) / sqrt(var + eps)
 * * weight + bias. */
INLINE void layer_norm_rows(const int CV, const float *x, int64_t x_rs, const float *w, const float *b, float eps,
                            float *y, int64_t y_rs, int64_t r0, int64_t r1) {
  const float inv_c = 1.0f / (float)(16 * CV);
  for (int64_t r = r0; r < r1; ++r) {
    const float *xr = x + r * x_rs;
    float *yr = y + r * y_rs;
    __m512 row[32], acc = _mm512_setzero_ps();
#pragma GCC unroll 32
    for (int t = 0; t < CV; ++t) {
      row[t] = _mm512_loadu_ps(xr + 16 * t);
      acc = _mm512_add_ps(acc, row[t]);
    }
    const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(acc) * inv_c);
    __m512 squares = _mm512_setzero_ps();
#pragma GCC unroll 32
    for (int t = 0; t < CV; ++t) {
      row[t] = _mm512_sub_ps(row[t], mean);
      squares = _mm512_fmadd_ps(row[t], row[t], squares);
    }
    const __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(squares) * inv_c + eps));
#pragma GCC unroll 32
    for (int t = 0; t < CV; ++t)
      _mm512_storeu_ps(yr + 16 * t, _mm512_fmadd_ps(_mm512_mul_ps(row[t], rstd), _mm512_loadu_ps(w + 16 * t),
                                                    _mm512_loadu_ps(b + 16 * t)));
  }
}

#define LAYER_NORM(CV)                                                                                           \
  static void layer_norm_##CV(const float *x, int64_t x_rs, const float *w, const float *b, float eps, float *y, \
                              int64_t y_rs, int64_t r0, int64_t r1) {                                           \
    layer_norm_rows(CV, x, x_rs, w, b, eps, y, y_rs, r0, r1);                                                    \
  }
LAYER_NORM(1) LAYER_NORM(2) LAYER_NORM(3) LAYER_NORM(4) LAYER_NORM(5) LAYER_NORM(6) LAYER_NORM(7) LAYER_NORM(8)
LAYER_NORM(9) LAYER_NORM(10) LAYER_NORM(11) LAYER_NORM(12) LAYER_NORM(13) LAYER_NORM(14) LAYER_NORM(15)
LAYER_NORM(16) LAYER_NORM(17) LAYER_NORM(18) LAYER_NORM(19) LAYER_NORM(20) LAYER_NORM(21) LAYER_NORM(22)
LAYER_NORM(23) LAYER_NORM(24) LAYER_NORM(25) LAYER_NORM(26) LAYER_NORM(27) LAYER_NORM(28) LAYER_NORM(29)
LAYER_NORM(30) LAYER_NORM(31) LAYER_NORM(32)

typedef void (*layer_norm_fn)(const float *, int64_t, const float *, const float *, float, float *, int64_t, int64_t,
                              int64_t);

#define ROWS_PER_NORM_TASK 256

/* LayerNorm over the last dimension of `rows` rows x [rows, c] (row stride x_rs, channels contiguous) into y
 * (row stride y_rs). c must be a multiple of 16 up to 512. Returns 0, or -1 for unsupported sizes. */
int vidseg_layer_norm(int64_t threads, int64_t rows, int64_t c, const float *x, int64_t x_rs, const float *w,
                      const float *b, double eps, float *y, int64_t y_rs) {
  static const layer_norm_fn by_width[32] = {
      layer_norm_1,  layer_norm_2,  layer_norm_3,  layer_norm_4,  layer_norm_5,  layer_norm_6,  layer_norm_7,
      layer_norm_8,  layer_norm_9,  layer_norm_10, layer_norm_11, layer_norm_12, layer_norm_13, layer_norm_14,
      layer_norm_15, layer_norm_16, layer_norm_17, layer_norm_18, layer_norm_19, layer_norm_20, layer_norm_21,
      layer_norm_22, layer_norm_23, layer_norm_24, layer_norm_25, layer_norm_26, layer_norm_27, layer_norm_28,
      layer_norm_29, layer_norm_30, layer_norm_31, layer_norm_32};
  if (threads < 1 || c < 16 || c > 512 || c % 16 != 0 || rows < 0) return -1;
  const int64_t tasks = (rows + ROWS_PER_NORM_TASK - 1) / ROWS_PER_NORM_TASK;
#pragma omp parallel num_threads((int)threads)
  {
    const unsigned int csr = denormals_off();
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t r0 = task * ROWS_PER_NORM_TASK;
      const int64_t r1 = r0 + ROWS_PER_NORM_TASK < rows ? r0 + ROWS_PER_NORM_TASK : rows;
      by_width[c / 16 - 1](x, x_rs, w, b, (float)eps, y, y_rs, r0, r1);
    }
    _mm_setcsr(csr);
  }
  return 0;
}

/* ---- Mix-FFN: out = residual + fc2(GELU(dwconv3x3(fc1(x)))) on channels-last maps, streamed row by row ---- */

/* erf GELU, 0.5 x (1 + erf(x / sqrt 2)), with erf from Abramowitz & Stegun 7.1.26 (absolute error below
 * 1.5e-7): erf(z) = 1 - t P(t) exp(-z^2), t = 1 / (1 + p z), z >= 0. The GELU's error is below 1e-7 |x|. */
INLINE __m512 gelu_erf(__m512 x) {
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
  const __m512 d = _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f));
  __m512 t = _mm512_rcp14_ps(d);
  t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.0f))); /* one Newton step: ~1e-8 relative */
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  /* q = 1 - erf(z), at least exp(-80) t P(t) (a normal float) */
  const __m512 q = _mm512_mul_ps(_mm512_mul_ps(p, t),
                                 exp_nonpositive(_mm512_max_ps(_mm512_mul_ps(z, _mm512_sub_ps(_mm512_setzero_ps(), z)),
                                                               _mm512_set1_ps(-80.0f))));
  /* x >= 0: 1 + erf = 2 - q; x < 0: 1 - erf = q */
  const __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  const __m512 one_plus_erf = _mm512_mask_sub_ps(q, positive, _mm512_set1_ps(2.0f), q);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), one_plus_erf);
}

/* y[w, n0:n0+32] = x[w, :] @ wt[:, n0:n0+32] + bias (+ add[w, :]) for R pixels of one row: x [R, k], wt [k, n],
 * y and add [R, n]. */
INLINE void row_gemm(const int R, const float *x, int64_t k, const float *wt, int64_t n, const float *bias,
                     const float *add, float *y, int64_t n0) {
  gemm_rows_x32(R, x, k, k, wt + n0, n, bias + n0, add ? add + n0 : NULL, y + n0, n);
}

#define ROW_GEMM(R)                                                                                              \
  static void row_gemm_##R(const float *x, int64_t k, const float *wt, int64_t n, const float *bias,           \
                           const float *add, float *y, int64_t n0) {                                            \
    row_gemm(R, x, k, wt, n, bias, add, y, n0);                                                                  \
  }
ROW_GEMM(1) ROW_GEMM(2) ROW_GEMM(3) ROW_GEMM(4) ROW_GEMM(5) ROW_GEMM(6) ROW_GEMM(7) ROW_GEMM(8)

typedef void (*row_gemm_fn)(const float *, int64_t, const float *, int64_t, const float *, const float *, float *,
                            int64_t);

/* y [width, n] = x [width, k] @ wt [k, n] + bias (+ add [width, n]): blocks of 8 pixels, then one block of the
 * remaining 1-7 */
static void linear_row(const float *x, int64_t width, int64_t k, const float *wt, int64_t n, const float *bias,
                       const float *add, float *y) {
  static const row_gemm_fn by_rows[8] = {row_gemm_1, row_gemm_2, row_gemm_3, row_gemm_4,
                                         row_gemm_5, row_gemm_6, row_gemm_7, row_gemm_8};
  for (int64_t w = 0; w < width; w += 8) {
    const int64_t rows = width - w < 8 ? width - w : 8;
    for (int64_t n0 = 0; n0 < n; n0 += 32)
      by_rows[rows - 1](x + w * k, k, wt, n, bias, add ? add + w * n : NULL, y + w * n, n0);
  }
}

/* One output row of the depthwise 3x3 convolution (zero padding 1) + bias + GELU. rows[0..2]: hidden rows
 * r-1, r, r+1 ([width, n] each; NULL outside the map); taps [9, n] (tap-major); out [width, n]. */
static void dwconv_gelu_row(const float *const rows[3], int64_t width, int64_t n, const float *taps,
                            const float *bias, float *out) {
  for (int64_t n0 = 0; n0 < n; n0 += 16) {
    __m512 tap[9];
    for (int t = 0; t < 9; ++t) tap[t] = _mm512_loadu_ps(taps + t * n + n0);
    const __m512 b = _mm512_loadu_ps(bias + n0);
    for (int64_t w = 0; w < width; ++w) {
      __m512 acc = b;
      for (int dy = 0; dy < 3; ++dy) {
        const float *row = rows[dy];
        if (row == NULL) continue;
        if (w > 0) acc = _mm512_fmadd_ps(_mm512_loadu_ps(row + (w - 1) * n + n0), tap[dy * 3], acc);
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(row + w * n + n0), tap[dy * 3 + 1], acc);
        if (w + 1 < width) acc = _mm512_fmadd_ps(_mm512_loadu_ps(row + (w + 1) * n + n0), tap[dy * 3 + 2], acc);
      }
      _mm512_storeu_ps(out + w * n + n0, gelu_erf(acc));
    }
  }
}

/* Rows [r0, r1) of one image: the hidden rows live in a ring of 3 (each fc1 row is computed once, plus one halo
 * row above r0), so the [H, W, hidden] activation never leaves the cache. */
static void mix_ffn_band(int64_t height, int64_t width, int64_t c, int64_t hidden, const float *x, const float *w1t,
                         const float *b1, const float *taps, const float *bd, const float *w2t, const float *b2,
                         const float *residual, float *out, int64_t r0, int64_t r1, float *ring, float *act) {
  const int64_t row_in = width * c, row_hidden = width * hidden;
  int64_t ready = r0 > 0 ? r0 - 1 : 0; /* next hidden row to compute */
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t last = r + 1 < height ? r + 1 : r;
    for (; ready <= last; ++ready)
      linear_row(x + ready * row_in, width, c, w1t, hidden, b1, NULL, ring + (ready % 3) * row_hidden);
    const float *rows[3] = {r > 0 ? ring + ((r - 1) % 3) * row_hidden : NULL, ring + (r % 3) * row_hidden,
                            r + 1 < height ? ring + ((r + 1) % 3) * row_hidden : NULL};
    dwconv_gelu_row(rows, width, hidden, taps, bd, act);
    linear_row(act, width, hidden, w2t, c, b2, residual + r * row_in, out + r * row_in);
  }
}

/* x, residual, out: [batch, height, width, c] contiguous; w1t [c, hidden]; taps [9, hidden]; w2t [hidden, c];
 * c and hidden multiples of 32. Work: `threads` bands of rows per image. Returns 0, -1 for unsupported sizes,
 * -2 when out of memory. */
int vidseg_mix_ffn(int64_t threads, int64_t batch, int64_t height, int64_t width, int64_t c, int64_t hidden,
                   const float *x, const float *w1t, const float *b1, const float *taps, const float *bd,
                   const float *w2t, const float *b2, const float *residual, float *out) {
  if (threads < 1 || batch < 0 || height < 1 || width < 1 || c < 32 || c % 32 != 0 || hidden < 32 || hidden % 32 != 0)
    return -1;
  const int64_t bands = threads < height ? threads : height, tasks = batch * bands;
  const int64_t image = height * width * c;
  int failed = 0;
#pragma omp parallel num_threads((int)threads) reduction(| : failed)
  {
    const unsigned int csr = denormals_off();
    float *ring = (float *)aligned_alloc(64, (size_t)(4 * width * hidden) * sizeof(float));
    failed |= ring == NULL;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      if (ring == NULL) continue;
      const int64_t b = task / bands, band = task % bands;
      const int64_t r0 = height * band / bands, r1 = height * (band + 1) / bands;
      mix_ffn_band(height, width, c, hidden, x + b * image, w1t, b1, taps, bd, w2t, b2, residual + b * image,
                   out + b * image, r0, r1, ring, ring + 3 * width * hidden);
    }
    free(ring);
    _mm_setcsr(csr);
  }
  return failed ? -2 : 0;
}
