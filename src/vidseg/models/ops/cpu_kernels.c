/* vidseg's float32 AVX-512F CPU kernels for the MiT inference fast path: softmax attention and LayerNorm.
 *
 * Built and loaded by vidseg/models/ops/cpu_kernels.py (see its docstring for why vidseg has its own kernels).
 * Both run on `threads` OpenMP threads of the runtime PyTorch loaded: its libgomp.so.1 is already in the process
 * when this library is opened, so the same worker threads run torch's ops and these kernels.
 *
 * Attention, out = softmax(q k^T) v. Shapes: q [B, H, N, D], v [B, H, M, D] with any batch/head/row strides and contiguous channels; kt holds the
 * keys, already multiplied by the softmax scale and transposed per (batch, head) to [D, Mp] with Mp = M rounded up
 * to 32 (the padding columns are never used); out [B, H, N, D] with any strides. D must be 16, 32, 48 or 64.
 *
 * Per block of R query rows (R * Mp scores stay in L1/L2):
 *   1. scores s = q kt for 32 keys at a time: 2*R accumulators, one broadcast of q per key vector pair;
 *   2. each row: max, then exp(s - max) with a degree-6 polynomial after range reduction (about 1 ulp, like
 *      Cephes' expf) and the row sum; the padding lanes are masked out;
 *   3. out = (p v) / sum with R*D/16 accumulators, one pass over the M value rows.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define INLINE static inline __attribute__((always_inline))

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

/* Scores of R rows against all keys into s [R, Mp]. The arrays have fixed sizes (R <= 8) so that, once R is a
 * constant after inlining, the accumulators live in registers. */
INLINE void block_scores(const int R, const int D, const float *q, int64_t q_rs, const float *kt, int64_t mp,
                         float *s) {
  for (int64_t j = 0; j < mp; j += 32) {
    __m512 a0[8], a1[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      a0[r] = _mm512_setzero_ps();
      a1[r] = _mm512_setzero_ps();
    }
    for (int c = 0; c < D; ++c) {
      const __m512 k0 = _mm512_loadu_ps(kt + c * mp + j), k1 = _mm512_loadu_ps(kt + c * mp + j + 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 qb = _mm512_set1_ps(q[r * q_rs + c]);
        a0[r] = _mm512_fmadd_ps(qb, k0, a0[r]);
        a1[r] = _mm512_fmadd_ps(qb, k1, a1[r]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(s + r * mp + j, a0[r]);
      _mm512_storeu_ps(s + r * mp + j + 16, a1[r]);
    }
  }
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

INLINE void block(const int R, const int DV, const float *q, int64_t q_rs, const float *kt, int64_t m, int64_t mp,
                  const float *v, int64_t v_rs, float *out, int64_t o_rs, float *s) {
  block_scores(R, DV * 16, q, q_rs, kt, mp, s);
  float inv[8];
  for (int r = 0; r < R; ++r) inv[r] = softmax_numerators(s + r * mp, m);
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

/* rows [r0, r1) of one (batch, head): blocks of R rows, then single rows */
#define ROWS(R, DV)                                                                                              \
  static void rows_##DV(const float *q, int64_t q_rs, const float *kt, int64_t m, int64_t mp, const float *v,  \
                        int64_t v_rs, float *out, int64_t o_rs, float *s, int64_t r0, int64_t r1) {             \
    int64_t r = r0;                                                                                              \
    for (; r + R <= r1; r += R) block(R, DV, q + r * q_rs, q_rs, kt, m, mp, v, v_rs, out + r * o_rs, o_rs, s);  \
    for (; r < r1; ++r) block(1, DV, q + r * q_rs, q_rs, kt, m, mp, v, v_rs, out + r * o_rs, o_rs, s);          \
  }
ROWS(8, 1)
ROWS(8, 2)
ROWS(6, 3)
ROWS(4, 4)

typedef void (*rows_fn)(const float *, int64_t, const float *, int64_t, int64_t, const float *, int64_t, float *,
                        int64_t, float *, int64_t, int64_t);

#define ROWS_PER_TASK 64

/* Every (batch, head) pair (bh = B * H) and query row, in tasks of 64 rows. Returns 0, -1 for unsupported sizes, -2 when out of
 * memory. Strides are in elements. */
int vidseg_attention(int64_t threads, int64_t bh, int64_t heads, int64_t n, int64_t d, int64_t m, int64_t mp,
                     const float *q, int64_t q_bs, int64_t q_hs, int64_t q_rs, const float *kt, const float *v,
                     int64_t v_bs, int64_t v_hs, int64_t v_rs, float *out, int64_t o_bs, int64_t o_hs, int64_t o_rs) {
  static const rows_fn by_width[4] = {rows_1, rows_2, rows_3, rows_4};
  if (threads < 1 || d < 16 || d > 64 || d % 16 != 0 || m < 1 || mp < m || mp % 32 != 0 || heads < 1 || n < 0)
    return -1;
  const int64_t per_head = (n + ROWS_PER_TASK - 1) / ROWS_PER_TASK, tasks = bh * per_head;
  int failed = 0;
#pragma omp parallel num_threads((int)threads) reduction(| : failed)
  {
    float *s = (float *)aligned_alloc(64, (size_t)(8 * mp) * sizeof(float));
    failed |= s == NULL;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      if (s == NULL) continue; /* every thread must still reach the loop's barrier */
      const int64_t i = task / per_head, b = i / heads, h = i % heads, r0 = task % per_head * ROWS_PER_TASK;
      const int64_t r1 = r0 + ROWS_PER_TASK < n ? r0 + ROWS_PER_TASK : n;
      by_width[d / 16 - 1](q + b * q_bs + h * q_hs, q_rs, kt + i * d * mp, m, mp, v + b * v_bs + h * v_hs, v_rs,
                           out + b * o_bs + h * o_hs, o_rs, s, r0, r1);
    }
    free(s);
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
#pragma omp parallel for num_threads((int)threads) schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t r0 = task * ROWS_PER_NORM_TASK;
    const int64_t r1 = r0 + ROWS_PER_NORM_TASK < rows ? r0 + ROWS_PER_NORM_TASK : rows;
    by_width[c / 16 - 1](x, x_rs, w, b, (float)eps, y, y_rs, r0, r1);
  }
  return 0;
}
